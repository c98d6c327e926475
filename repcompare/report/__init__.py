"""Turning results into terminal tables, files and pictures.

Each analysis result becomes one ``Report`` (``model.py``; built by ``cka_report``,
``invariance_report`` and ``class_fit_report``), which the renderers read: ``files.py``
(CSV, JSON, PNG/SVG and ``write_report``), ``markdown.py`` and ``terminal.py``.
"""
