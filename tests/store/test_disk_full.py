"""A write that fails mid-run (a file size limit): one RunError, no crash, finished rows kept."""

import subprocess
import sys

import h5py
import numpy as np

from repcompare.store.file_format import activation_path
from tests.support.activation_files import settings, write

WRITE_UNDER_A_LIMIT = """
import resource, signal, sys
from pathlib import Path
from repcompare.store.writer import ActivationWriter, prepare
from tests.support.activation_files import batches, shapes, settings

s = settings(num_samples=400, batch_size=16)
path = Path(sys.argv[1])
prepare(path, shapes(s), {}, force=False)
writer = ActivationWriter(path, shapes(s))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
try:
    for batch in batches(s):
        writer.submit(batch)
    writer.close(complete=True)
except Exception as error:
    print(type(error).__name__, error)
"""


def test_a_write_past_the_size_limit_stops_cleanly_and_the_rerun_resumes(tmp_path):
    s = settings(num_samples=400, batch_size=16)
    whole, partial = tmp_path / "whole.h5", tmp_path / "partial.h5"
    write(whole, s)
    with h5py.File(whole) as f:  # the limit falls on batch 10 of the last dataset written
        limit = f[activation_path(1, "fc")].id.get_chunk_info(10).byte_offset
    child = subprocess.run(
        [sys.executable, "-c", WRITE_UNDER_A_LIMIT, str(partial), str(limit)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout == (
        f"RunError the file size limit (ulimit -f) was reached while writing {partial}; "
        "raise it and rerun the same command to resume\n"
    )
    assert child.stderr == ""  # no HDF5 complaints, no crash
    with h5py.File(partial) as got, h5py.File(whole) as want:
        done = int(got["rows_done"][()])
        assert done == 160 and not got.attrs["complete"]
        for name in (activation_path(1, "fc"), "labels", "sample_index"):
            np.testing.assert_array_equal(got[name][:done], want[name][:done])
    write(partial, s)  # the rerun resumes at rows_done
    with h5py.File(partial) as got, h5py.File(whole) as want:
        assert got.attrs["complete"]
        for name in ("labels", "input_digest", activation_path(0, "layer1.0")):
            assert got[name][()].tobytes() == want[name][()].tobytes()
