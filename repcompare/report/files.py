"""A report's files: ``<stem>.csv`` (its records), ``<stem>.json`` (its document),
``<stem>.md`` and every figure as PNG and SVG."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from matplotlib.figure import Figure

from repcompare.report.heatmap import cell_areas
from repcompare.report.markdown import render_markdown
from repcompare.report.model import FIGURE_SUFFIXES, Report, csv_cell

FIGURE_DPI = 150


def write_csv(records: list[dict], path: Path) -> Path:
    """One row per record, the first record's keys as the header; cells by ``csv_cell``
    (6 decimals, undefined as an empty cell)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]) if records else [])
        writer.writeheader()
        writer.writerows({k: csv_cell(v) for k, v in r.items()} for r in records)
    return path


def write_json(document: dict, path: Path) -> Path:
    """The document, indented; anything JSON cannot hold as its text."""
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


def save_figure(figure: Figure, stem: Path) -> list[Path]:
    """``stem.png`` and ``stem.svg`` at 150 dpi, with one layout: the first save lays the
    figure out and the others keep it (a second constrained layout costs a tenth of a second
    and moves things by a pixel)."""
    paths = [stem.parent / f"{stem.name}{suffix}" for suffix in FIGURE_SUFFIXES]
    for path in paths:
        figure.savefig(path, dpi=FIGURE_DPI)
        figure.set_layout_engine("none")
    return paths


def write_report(report: Report, out: Path, cells: dict | None = None) -> list[Path]:
    """Every file of ``report`` in ``out`` (created if needed), in ``report.file_names()``
    order: CSV, JSON, Markdown, each figure's PNG and SVG, then the attachments. ``cells``,
    when given, receives each heatmap's cells by figure stem (``heatmap.cell_areas``)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [
        write_csv(report.records, out / f"{report.stem}.csv"),
        write_json(report.document, out / f"{report.stem}.json"),
    ]
    markdown = out / f"{report.stem}.md"
    markdown.write_text(render_markdown(report))
    written.append(markdown)
    for spec in report.figures:
        figure = spec.draw()
        written += save_figure(figure, out / spec.stem)
        areas = cell_areas(figure, FIGURE_DPI) if cells is not None else None
        if areas:
            cells[spec.stem] = areas
    for name, write in report.attachments.items():
        write(out / name)
        written.append(out / name)
    return written
