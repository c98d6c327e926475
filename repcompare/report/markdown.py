"""A report as Markdown: ``<stem>.md`` beside the CSV, JSON and pictures it links to."""

from __future__ import annotations

from repcompare.report.model import Report, Table


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(table: Table) -> list[str]:
    """The lines of a Markdown table: a header, numbers right-aligned, ``format_value`` cells
    ("undefined" where a value is)."""
    lines = ["| " + " | ".join(_cell(h) for h in table.columns.values()) + " |"]
    lines.append("|" + "|".join("---:" if table.numeric(k) else "---" for k in table.columns) + "|")
    for record in table.records:
        lines.append("| " + " | ".join(_cell(c) for c in table.cells(record)) + " |")
    return lines


def render_markdown(report: Report) -> str:
    """Title, summary paragraphs, every figure (its PNG), the tables and the closing notes."""
    lines = [f"# {report.title}", ""]
    for paragraph in report.summary:
        lines += [paragraph, ""]
    if report.figures:
        lines += [f"![{f.alt}]({f.stem}.png)" for f in report.figures]
        lines.append("")
    for table in report.tables:
        lines += [*markdown_table(table), ""]
    for note in report.notes:
        lines += [note, ""]
    return "\n".join(lines)
