"""Rich tables for the terminal: capture points, extract summaries, and reports."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from repcompare.progress import process_rank
from repcompare.report.model import Report, is_undefined
from repcompare.report.model import Table as ReportTable

WIDTH_WHEN_PIPED = 160


def stdout_console() -> Console:
    """A console for results: the terminal's width, or a wide page when piped to a file;
    silent on the ranks of a torchrun job other than 0."""
    quiet = process_rank() != 0
    console = Console(quiet=quiet)
    return console if console.is_terminal else Console(width=WIDTH_WHEN_PIPED, quiet=quiet)


def layers_table(rows: list[dict], title: str, reduction: str) -> Table:
    """Capture points with kind, per-example output shape and reduced width."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right", style="dim")
    table.add_column("layer", style="bold", overflow="fold")
    table.add_column("graph node", style="dim", overflow="fold")
    table.add_column("type")
    table.add_column("output shape")
    table.add_column(f"width ({reduction})", justify="right")
    table.add_column("preset")
    for i, row in enumerate(rows):
        table.add_row(
            str(i),
            row["name"],
            "" if row["name"] == row["node"] else row["node"],
            row["kind"],
            "x".join(map(str, row["shape"])),
            "n/a" if row["width"] is None else f"{row['width']:,}",
            ", ".join(row["presets"]),
        )
    return table


def extract_summary(result) -> Table:
    """Layers written by an extract run, with the file's size and the run's speed."""
    s = result.settings
    size_mb = result.path.stat().st_size / 1e6
    resumed = f", resumed at {result.rows_before}" if result.rows_before else ""
    speed = result.images / result.seconds if result.seconds else 0.0
    table = Table(
        title=(
            f"{result.path}: {s.num_samples} images x {s.views} view(s), {len(s.layers)} layers, "
            f"{'per-batch float32 Grams' if s.store == 'grams' else s.dtype}, "
            f"{size_mb:.1f} MB on disk{resumed}"
        ),
        caption=(
            f"{result.images} images in {result.seconds:.1f} s ({speed:.1f} img/s), "
            f"{result.bytes_written / 1e6:.1f} MB written; transform: {s.transform}"
        ),
        title_justify="left",
        caption_justify="left",
    )
    table.add_column("layer", style="bold", overflow="fold")
    table.add_column("output shape")
    table.add_column(f"stored width ({s.reduction})", justify="right")
    for layer, width in zip(s.layers, result.widths, strict=True):
        table.add_row(layer, "x".join(map(str, result.layer_shapes[layer])), f"{width:,}")
    return table


def rich_table(table: ReportTable) -> Table:
    """``table`` for the terminal: its title and caption, numbers right-aligned, a section per
    run of ``section_by`` (a model), every cell by ``format_value``; undefined ones dim."""
    shown = Table(
        title=table.title or None,
        caption=table.caption or None,
        title_justify="left",
        caption_justify="left",
    )
    for key, header in table.columns.items():
        shown.add_column(header, justify="right" if table.numeric(key) else "left", overflow="fold")
    for i, section in enumerate(table.sections()):
        if i:
            shown.add_section()
        for record in section:
            shown.add_row(
                *(
                    Text(text, style="dim" if is_undefined(record[key]) else "")
                    for key, text in zip(table.columns, table.cells(record), strict=True)
                )
            )
    return shown


def report_table(report: Report) -> Table:
    """The terminal table of a report (its first table)."""
    return rich_table(report.tables[0])
