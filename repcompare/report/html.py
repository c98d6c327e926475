"""A study's report as one self-contained HTML page: every picture embedded as a data URI,
the style inline, no script and nothing loaded from anywhere, so it opens from a mail
attachment; links to the CSV and JSON files beside it are plain relative links."""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from html import escape

from PIL import Image

from repcompare.report.heatmap import Cell
from repcompare.report.model import Report, Table
from repcompare.report.study import StudyReport, StudySection

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
.summary { background: #f5f7fa; border-left: 4px solid #4a78b5; padding: 0.6em 1.2em; }
.guide { color: #555; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
.cells { position: relative; display: inline-block; max-width: 100%; }
.cells img { display: block; }
.cells svg { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5em; }
.pair section { min-width: 0; } .pair table { font-size: 0.85em; }
nav.toc { background: #f7f7f7; padding: 0.5em 1em; border-radius: 4px; }
nav.toc ol { margin: 0.2em 0; } p.method { color: #555; font-size: 0.9em; }
.cells rect { fill: transparent; } .cells rect:hover { stroke: #fff; stroke-width: 1; }
figcaption { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.8em 0; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
details { margin: 0.5em 0; }
"""


METHODS = (
    "CKA (Kornblith et al. 2019) compares two layers' representations of the same images: "
    "1 alike up to a rotation and a scaling, 0 sharing nothing linear. By default it is the "
    "minibatch estimator (Nguyen et al. 2021): the unbiased HSIC_1 of each batch, averaged "
    "over batches, so every layer pair streams over any number of images; the exact and "
    "debiased estimators on all images are options.",
    "Intervals are 95% percentile intervals over bootstrap resamples of the minibatches. A "
    "difference is called one only where two intervals do not overlap.",
    "Invariance: the CKA between the representations of two augmented views of the same "
    "images, layer by layer, mean over view pairs.",
    "Class structure: class CKA (the CKA with the one-hot labels), the crowding ratio (mean "
    "within-class over mean between-class distance of L2-normalised pooled features), and "
    "the held-out accuracy of a cosine kNN vote and a linear probe on a seeded stratified "
    "split.",
    "Baselines: each model's untrained network is the same architecture with random weights "
    "(seeded); it is measured in the same passes, on the same images and views.",
)


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.columns.values())
    rows = []
    numeric = {k: table.numeric(k) for k in table.columns}
    for record in table.records:
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if numeric[k] else f"<td>{escape(c)}</td>"
            for k, c in zip(table.columns, table.cells(record), strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


NOTEBOOK_ROWS = 12  # rows of the main table in a notebook's view of a result


def report_html(report: Report) -> str:
    """A result's short HTML view: its title, the first rows of its main table, and where
    the rest is."""
    table = report.tables[0]
    shown = replace(table, records=table.records[:NOTEBOOK_ROWS])
    more = len(table.records) - len(shown.records)
    rest = f"<p>{more} more rows: <code>.records()</code>.</p>" if more > 0 else ""
    return f"<p><strong>{escape(report.title)}</strong></p>{_table(shown)}{rest}"


def study_html(report: StudyReport) -> str:
    """A study's short HTML view: its title and summary sentences."""
    sentences = "".join(f"<li>{escape(s.text)}</li>" for s in report.summary)
    return f"<p><strong>{escape(report.title)}</strong></p><ul>{sentences}</ul>"


def _image(png: bytes, alt: str, cells: list[Cell] | None = None) -> str:
    """A picture embedded as a data URI; a heatmap's ``cells`` become transparent SVG
    rectangles over it, each with its value as a ``<title>`` shown on hover (no script)."""
    data = base64.b64encode(png).decode("ascii")
    image = f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'
    if cells:
        width, height = Image.open(io.BytesIO(png)).size
        rects = "".join(
            f'<rect x="{c.x:.1f}" y="{c.y:.1f}" width="{c.width:.1f}" height="{c.height:.1f}">'
            f"<title>{escape(c.text)}</title></rect>"
            for c in cells
        )
        overlay = f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none">{rects}</svg>'
        image = f'<div class="cells">{image}{overlay}</div>'
    return f"<figure>{image}<figcaption>{escape(alt)}</figcaption></figure>"


def render_html(
    report: StudyReport,
    pictures: dict[tuple[str, str], bytes],
    cells: dict[tuple[str, str], list[Cell]] | None = None,
) -> str:
    """The page; ``pictures[(folder, stem)]`` holds each figure's PNG, ``cells`` each
    heatmap's cells (their values on hover)."""
    cells = cells or {}
    contents = [("summary", "Summary")] + [(s.folder, s.heading) for s in report.sections]
    contents += [("methods", "Methods"), ("provenance", "Settings and provenance")]
    toc = "".join(f'<li><a href="#{anchor}">{escape(name)}</a></li>' for anchor, name in contents)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>',
        '<div class="summary" id="summary"><h2 style="border:0;margin-top:0.4em">Summary</h2>',
        *(f"<p>{escape(s.text)}</p>" for s in report.summary),
        *(f"<p>{escape(n)}</p>" for n in report.notes),
        "</div>",
    ]
    for section in report.sections:  # within A and within B side by side, to compare them
        if section.key == "within_a":
            parts.append('<div class="pair">')
        parts += ["<section>", *_section_html(section, pictures, cells), "</section>"]
        if section.key == "within_b":
            parts.append("</div>")
    rows = "".join(
        f"<tr><th>{escape(what)}</th><td>{escape(value)}</td></tr>"
        for what, value in report.provenance
    )
    parts += [
        '<h2 id="methods">Methods</h2>',
        *(f"<p>{escape(line)}</p>" for line in METHODS),
        '<h2 id="provenance">Settings and provenance</h2>',
        f"<table>{rows}</table>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _section_html(
    section: StudySection,
    pictures: dict[tuple[str, str], bytes],
    cells: dict[tuple[str, str], list[Cell]],
) -> list[str]:
    """One analysis: heading, reading guide, estimator line, pictures, table and links."""
    stem = section.report.stem
    links = ", ".join(
        f'<a href="{section.folder}/{name}">{name}</a>'
        for name in (f"{stem}.csv", f"{stem}.json", f"{stem}.md")
    )
    method = section.report.summary[0] if section.report.summary else ""
    return [
        f'<h2 id="{section.folder}">{escape(section.heading)}</h2>',
        *(f'<p class="guide">{escape(line)}</p>' for line in section.guide),
        f'<p class="method">Shown: {escape(method)} <a href="#methods">Methods</a>.</p>'
        if method
        else "",
        *(
            _image(pictures[key], f.alt, cells.get(key))
            for f in section.report.figures
            for key in [(section.folder, f.stem)]
        ),
        f"<details open><summary>{escape(section.table.title or 'Table')}</summary>",
        _table(section.table),
        "</details>",
        f"<p>All values: {links} in <code>{section.folder}/</code> (these links need the "
        "report's folder beside the page; the table above travels with it).</p>",
    ]
