"""What a command reports, apart from how it is shown: the report model.

A command's result yields one ``Report`` (built by ``cka_report``,
``invariance_report`` or ``class_fit_report``); every renderer reads only the
model:

- ``report.files``: ``<stem>.csv`` from ``records`` (one row per dict),
  ``<stem>.json`` from ``document``, every figure as PNG and SVG, and
  ``write_report`` for the whole set;
- ``report.markdown``: ``<stem>.md`` (title, summary, figures, tables, notes);
- ``report.terminal``: ``report_table``, a rich table of the first ``Table``.

Every renderer prints a value with ``format_value``, the one place that decides
how a number reads and what an undefined one (NaN, None) says. Prose (summary
paragraphs, notes) is plain text in which backticks mark code, file and option
names, as in Markdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from repcompare.results.fields import is_number, is_undefined

if TYPE_CHECKING:
    from matplotlib.figure import Figure

UNDEFINED = "undefined"
DIGITS = 3
# the CSV files' convention: 6 decimals, an undefined value as an empty cell
CSV_DIGITS = 6
CSV_UNDEFINED = ""
FIGURE_SUFFIXES = (".png", ".svg")


def format_value(value: Any, digits: int = DIGITS, undefined: str = UNDEFINED) -> str:
    """How every report prints a value: a float to ``digits`` decimals, an integer as it is,
    NaN and None as ``undefined``, anything else as its text."""
    if is_undefined(value):
        return undefined
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    if is_number(value):
        return str(int(value))
    return str(value)


def csv_cell(value: Any) -> str:
    """``format_value`` in the CSV flavour: 6 decimals, undefined as an empty cell."""
    return format_value(value, CSV_DIGITS, CSV_UNDEFINED)


@dataclass
class Table:
    """A table for people: ``columns`` ({record key: header}) of ``records``, in order.

    ``title`` and ``caption`` head and foot it in the terminal; a new section starts
    wherever the value of ``section_by`` changes from one record to the next.
    """

    records: list[dict]
    columns: dict[str, str]
    title: str = ""
    caption: str = ""
    section_by: str | None = None

    def numeric(self, key: str) -> bool:
        """Whether column ``key`` holds numbers (right-aligned)."""
        return any(is_number(r[key]) for r in self.records)

    def sections(self) -> Iterator[list[dict]]:
        """The records in runs of equal ``section_by`` (one run without it)."""
        run: list[dict] = []
        for record in self.records:
            if run and self.section_by and record[self.section_by] != run[-1][self.section_by]:
                yield run
                run = []
            run.append(record)
        if run:
            yield run

    def cells(self, record: dict) -> list[str]:
        """One row of text, ``format_value`` of each column's value."""
        return [format_value(record[k]) for k in self.columns]


@dataclass
class FigureSpec:
    """One picture: ``draw()`` returns a new matplotlib Figure; files ``<stem>.png/.svg``."""

    stem: str
    alt: str
    draw: Callable[[], Figure]


@dataclass
class Report:
    """Everything one run of a command reports.

    ``records``: the machine-readable rows (``<stem>.csv``, one dict per row);
    ``tables``: what people read in the terminal and the Markdown (for ``cka`` the
    best match per layer, while ``records`` hold every pair); ``figures``: the
    pictures, drawn on demand; ``document``: the JSON document (JSON-ready: NaN
    already null); ``summary``: paragraphs under the ``title``; ``notes``: closing
    sentences (where the rest of the results are); ``attachments``: other files by name,
    each written by its function given the path (an HDF5 copy of large matrices).
    """

    stem: str
    title: str
    summary: list[str]
    records: list[dict]
    tables: list[Table]
    figures: list[FigureSpec]
    document: dict
    notes: list[str] = field(default_factory=list)
    attachments: dict[str, Callable[[Path], None]] = field(default_factory=dict)

    def file_names(self) -> list[str]:
        """The files ``write_report`` writes, in order: CSV, JSON, Markdown, PNG/SVG each,
        then the attachments."""
        names = [f"{self.stem}.csv", f"{self.stem}.json", f"{self.stem}.md"]
        names += [f"{f.stem}{suffix}" for f in self.figures for suffix in FIGURE_SUFFIXES]
        return names + list(self.attachments)


def report_figures(report: Report) -> list[Figure]:
    """Every figure of ``report``, newly drawn (labelled with its file stem). They are not
    registered with pyplot: nothing to close, and drawing needs no display."""
    figures = []
    for spec in report.figures:
        figure = spec.draw()
        figure.set_label(spec.stem)
        figures.append(figure)
    return figures
