"""The report of a ``cka`` run: every pair (CSV), the matrix and provenance (JSON), the best
match per layer (terminal, Markdown) and heatmaps."""

from __future__ import annotations

from functools import partial

import numpy as np

from repcompare.report.heatmap import CKA_SCALE, ColourScale, draw_heatmap, measure_scale
from repcompare.report.model import FigureSpec, Report, Table
from repcompare.results.cka import CKAResult

# the files a run writes into --out: replaced together, stale ones removed
OWNED_FILES = ("cka.csv", "cka.json", "cka.md", "heatmap*.png", "heatmap*.svg")

PAPER_SPLIT = (
    ("block", "block outputs", "heatmap_blocks"),
    ("residual", "residual branches", "heatmap_residual"),
)


def _label(result: CKAResult) -> str:
    return "CKA" if result.settings.measure == "cka" else result.settings.measure


def _how(result: CKAResult) -> str:
    s = result.settings
    if s.measure == "cka":
        how = f"{s.estimator}, {s.kernel} kernel, {s.n_examples} examples"
    else:
        how = s.method or f"{s.n_examples} examples"
    return f"{how}; {s.caveat_short}" if s.caveat_short else how


def _title(result: CKAResult, suffix: str = "") -> str:
    return f"{_label(result)} {result.side_a} vs {result.side_b}{suffix}\n{_how(result)}"


def _scale(result: CKAResult) -> ColourScale:
    spec = result.measure_spec()
    return CKA_SCALE if spec.name == "cka" else measure_scale(spec.name, spec.kind, spec.range)


def best_match_table(result: CKAResult) -> Table:
    """For each layer of A: the most similar layer of B and its CKA ("undefined" for a
    constant layer); the same-named layer's CKA where B has namesakes (else blank)."""
    m, key, label = result.matrix, result.settings.measure, _label(result)
    records = []
    for row in result.best_matches():
        layer = row["layer_a"]
        same = float(m.value(layer, layer)) if layer in m.names_b else ""  # blank: no namesake
        records.append(row | {f"same_layer_{key}": same})
    columns = {
        "layer_a": f"layer of {result.side_a}",
        "best_b": f"most similar layer of {result.side_b}",
        f"best_{key}": label,
    }
    if any(name in m.names_b for name in m.names_a):
        columns[f"same_layer_{key}"] = f"same layer {label}"
    title = f"{label} {result.side_a} (rows) vs {result.side_b}: {_how(result)}"
    return Table(records, columns, title=title)


def cka_figures(result: CKAResult) -> list[FigureSpec]:
    """The heatmap of every pair; with the paper preset on both sides (block outputs and
    residual branches, ``result.roles_a``/``roles_b``), one of each kind too (Grigg et al.)."""
    m, roles_a, roles_b = result.matrix, result.roles_a, result.roles_b
    rows, columns = list(m.names_a), list(m.names_b)
    a, b = result.side_a, result.side_b
    figures = [
        FigureSpec(
            "heatmap",
            f"{_label(result)} of every layer of {a} (rows) with every layer of {b} (columns)",
            partial(
                draw_heatmap, m.values, rows, columns, a, b, _title(result), scale=_scale(result)
            ),
        )
    ]
    mixed_roles = {roles_a.get(n) for n in rows} >= {"block", "residual"}
    for role, label, stem in PAPER_SPLIT if mixed_roles else ():
        keep_a = [i for i, n in enumerate(rows) if roles_a.get(n) == role]
        keep_b = [j for j, n in enumerate(columns) if roles_b.get(n) == role]
        if keep_b:
            figures.append(
                FigureSpec(
                    stem,
                    f"{_label(result)} of the {label} of {a} (rows) with the {label} of {b} "
                    "(columns)",
                    partial(
                        draw_heatmap,
                        m.values[np.ix_(keep_a, keep_b)],
                        [rows[i] for i in keep_a],
                        [columns[j] for j in keep_b],
                        a,
                        b,
                        _title(result, f": {label}"),
                        scale=_scale(result),
                    ),
                )
            )
    return figures


def cka_report(result: CKAResult) -> Report:
    """The report of a ``CKAResult``."""
    s = result.settings
    intervals = f", {s.bootstrap} bootstrap resamples (95% intervals in cka.csv)"
    settings = (
        f"{s.estimator} estimator, {s.kernel} kernel, {s.n_examples} examples, "
        f"batch size {s.batch_size}{intervals if s.bootstrap else ''}."
        if s.measure == "cka"
        else f"{result.measure_spec().reference}; {result.measure_spec().kind} "
        f"({'lower' if result.measure_spec().is_distance else 'higher'} is more alike), {s.method}."
    )
    return Report(
        stem="cka",
        title=f"{_label(result)}: {result.side_a} vs {result.side_b}",
        summary=[settings, *([f"Caveat: {s.caveat}."] if s.caveat else [])],
        records=result.records(),
        tables=[best_match_table(result)],
        figures=cka_figures(result),
        document=result.to_document(),
        notes=["Every pair is in `cka.csv`; the matrix and provenance in `cka.json`."],
    )
