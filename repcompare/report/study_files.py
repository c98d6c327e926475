"""A study's files: each analysis's files in its folder, ``report.html`` (self-contained),
``report.md`` (the same text and tables, pictures linked) and ``study.json``."""

from __future__ import annotations

from pathlib import Path

from repcompare.report.files import write_json, write_report
from repcompare.report.html import render_html
from repcompare.report.markdown import markdown_table
from repcompare.report.study import StudyReport


def render_study_markdown(report: StudyReport) -> str:
    """The report's text and tables as Markdown, the pictures as relative links."""
    lines = [f"# {report.title}", "", "## Summary", ""]
    for paragraph in [*(s.text for s in report.summary), *report.notes]:
        lines += [paragraph, ""]
    for section in report.sections:
        stem = section.report.stem
        lines += [f"## {section.heading}", "", *section.guide, ""]
        lines += [f"![{f.alt}]({section.folder}/{f.stem}.png)" for f in section.report.figures]
        lines += ["", *markdown_table(section.table), ""]
        links = ", ".join(
            f"[{name}]({section.folder}/{name})" for name in (f"{stem}.csv", f"{stem}.json")
        )
        lines += [f"All values: {links}.", ""]
    lines += ["## Settings and provenance", "", "| what | value |", "|---|---|"]
    lines += [f"| {what} | {value.replace('|', '/')} |" for what, value in report.provenance]
    return "\n".join(lines) + "\n"


def write_study(report: StudyReport, out: Path) -> list[Path]:
    """Every file of the study in ``out``: the analyses' folders, then ``report.md``,
    ``report.html`` and ``study.json``. The paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written, cells = [], {}
    for section in report.sections:
        found: dict = {}
        written += write_report(section.report, out / section.folder, found)
        cells |= {(section.folder, stem): areas for stem, areas in found.items()}
    pictures = {
        (s.folder, f.stem): (out / s.folder / f"{f.stem}.png").read_bytes()
        for s in report.sections
        for f in s.report.figures
    }
    markdown = out / "report.md"
    markdown.write_text(render_study_markdown(report))
    html = out / "report.html"
    html.write_text(render_html(report, pictures, cells))
    return [*written, markdown, html, write_json(report.document, out / "study.json")]
