"""The HDF5 activation format: layout, background writer, streaming reader."""
