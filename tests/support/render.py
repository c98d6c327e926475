"""Reading rendered reports back: terminal text and Markdown tables as rows of cells."""

from __future__ import annotations

from rich.console import Console


def terminal_text(table) -> str:
    """A rich Table as the plain text a 200-column terminal shows."""
    console = Console(record=True, width=200)
    console.print(table)
    return console.export_text()


def _cells(line: str, bar: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip(bar).split(bar)]


def terminal_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and the body rows of a rich table's text."""
    header = next(_cells(line, "┃") for line in text.splitlines() if line.startswith("┃"))
    rows = [_cells(line, "│") for line in text.splitlines() if line.startswith("│")]
    return header, rows


def markdown_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and the body rows of the (only) Markdown table in ``text``."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header, rule, *body = lines
    assert set(rule) <= set("|-:"), rule
    return _cells(header, "|"), [_cells(line, "|") for line in body]
