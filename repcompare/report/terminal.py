"""Rich tables for the terminal."""

from __future__ import annotations

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
