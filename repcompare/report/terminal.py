"""Rich tables for the terminal."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

WIDTH_WHEN_PIPED = 160


def stdout_console() -> Console:
    """A console for results: the terminal's width, or a wide page when piped to a file."""
    console = Console()
    return console if console.is_terminal else Console(width=WIDTH_WHEN_PIPED)


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
            f"{s.dtype}, {size_mb:.1f} MB on disk{resumed}"
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


def cka_table(result, rows: list[dict]) -> Table:
    """For each layer of A: the most similar layer of B and its CKA; the same layer's CKA."""
    s = result.settings
    table = Table(
        title=f"CKA {result.side_a} (rows) vs {result.side_b}: {s.estimator}, {s.kernel}, "
        f"{s.n_examples} examples",
        title_justify="left",
    )
    table.add_column(f"layer of {result.side_a}", style="bold", overflow="fold")
    table.add_column(f"most similar in {result.side_b}", overflow="fold")
    table.add_column("CKA", justify="right")
    show_same = any(r["same_layer_cka"] is not None for r in rows)
    if show_same:
        table.add_column("same layer", justify="right")
    for row in rows:
        cells = [
            row["layer_a"],
            row["best_b"] or "[dim]undefined[/]",
            "undefined" if row["best_cka"] is None else f"{row['best_cka']:.3f}",
        ]
        if show_same:
            same = row["same_layer_cka"]
            cells.append("" if same is None else f"{same:.3f}")
        table.add_row(*cells)
    return table


def records_table(records: list[dict], columns: dict[str, str], title: str, caption: str) -> Table:
    """``columns`` ({key: header}) of ``records``, a section per model; numbers to 3 decimals."""
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for key, header in columns.items():
        numeric = isinstance(records[0][key], float)
        table.add_column(header, justify="right" if numeric else "left", overflow="fold")
    for i, record in enumerate(records):
        if i and record["model"] != records[i - 1]["model"]:
            table.add_section()
        table.add_row(
            *(
                ("[dim]undefined[/]" if math.isnan(value) else f"{value:.3f}")
                if isinstance(value, float)
                else str(value)
                for value in (record[k] for k in columns)
            )
        )
    return table
