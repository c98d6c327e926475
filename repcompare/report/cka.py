"""The report of a ``cka`` run: every pair (CSV), the matrix and provenance (JSON), the best
match per layer (terminal, Markdown) and heatmaps."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from repcompare.report.heatmap import CKA_SCALE, ColourScale, draw_heatmap, measure_scale
from repcompare.report.model import FigureSpec, Report, Table, json_matrix, json_number
from repcompare.similarity.measures import measure_spec

# the files a run writes into --out: replaced together, stale ones removed
OWNED_FILES = ("cka.csv", "cka.json", "cka.md", "heatmap*.png", "heatmap*.svg")

PAPER_SPLIT = (
    ("block", "block outputs", "heatmap_blocks"),
    ("residual", "residual branches", "heatmap_residual"),
)
UNDEFINED_NOTE = "undefined: constant layer"


def _measure(result):
    """The measure of the matrix (``cka``, or one of ``repcompare.similarity.MEASURES``)."""
    return measure_spec(result.settings.measure)


def _label(result) -> str:
    return "CKA" if result.settings.measure == "cka" else result.settings.measure


def _how(result) -> str:
    s = result.settings
    if s.measure == "cka":
        how = f"{s.estimator}, {s.kernel} kernel, {s.n_examples} examples"
    else:
        how = s.method or f"{s.n_examples} examples"
    return f"{how}; {s.caveat_short}" if s.caveat_short else how


def _title(result, suffix: str = "") -> str:
    return f"{_label(result)} {result.side_a} vs {result.side_b}{suffix}\n{_how(result)}"


def _scale(result) -> ColourScale:
    spec = _measure(result)
    return CKA_SCALE if spec.name == "cka" else measure_scale(spec.name, spec.kind, spec.range)


def best_matches(result) -> list[dict]:
    """For each layer of A: the most similar layer of B (the minimum of a distance), and the
    same-named layer if any (JSON-ready: None where undefined or where B has no such
    layer)."""
    m, spec = result.matrix, _measure(result)
    pick = np.nanargmin if spec.is_distance else np.nanargmax
    rows = []
    for i, layer in enumerate(m.names_a):
        values = m.values[i]
        defined = ~np.isnan(values)
        best = int(pick(values)) if defined.any() else None
        same = m.names_b.index(layer) if layer in m.names_b else None
        rows.append(
            {
                "layer_a": layer,
                "best_b": None if best is None else m.names_b[best],
                f"best_{spec.name}": None if best is None else json_number(values[best]),
                f"same_layer_{spec.name}": None if same is None else json_number(values[same]),
            }
        )
    return rows


def cka_records(result) -> list[dict]:
    """One record per pair (A's layers in order, then B's): layer_a, layer_b, cka, the 95%
    interval (None without bootstrap), and a note; NaN where the pair is undefined."""
    m, key = result.matrix, result.settings.measure
    records = []
    for i, a in enumerate(m.names_a):
        for j, b in enumerate(m.names_b):
            value = float(m.values[i, j])
            undefined = a in m.degenerate_a or b in m.degenerate_b or math.isnan(value)
            low = high = None
            if result.ci_low is not None:
                low, high = float(result.ci_low[i, j]), float(result.ci_high[i, j])
                if undefined:
                    low = high = math.nan
            records.append(
                {
                    "layer_a": a,
                    "layer_b": b,
                    key: math.nan if undefined else value,
                    "ci_low": low,
                    "ci_high": high,
                    "note": UNDEFINED_NOTE if undefined else "",
                }
            )
    return records


def best_match_table(result) -> Table:
    """For each layer of A: the most similar layer of B and its CKA ("undefined" for a
    constant layer); the same-named layer's CKA where B has namesakes (else blank)."""
    m, key, label = result.matrix, result.settings.measure, _label(result)
    records = []
    for row in best_matches(result):
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


def cka_figures(result) -> list[FigureSpec]:
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


def cka_document(result) -> dict:
    """Matrix, intervals, layer lists, best matches, settings and both sides' provenance."""
    m = result.matrix
    return {
        "side_a": {
            "label": result.side_a,
            "layers": list(m.names_a),
            "degenerate": list(m.degenerate_a),
            "roles": dict(result.roles_a),
            "provenance": result.provenance_a.to_dict(),
        },
        "side_b": {
            "label": result.side_b,
            "layers": list(m.names_b),
            "degenerate": list(m.degenerate_b),
            "roles": dict(result.roles_b),
            "provenance": result.provenance_b.to_dict(),
        },
        "measure": result.settings.measure,
        "kind": _measure(result).kind,
        result.settings.measure: json_matrix(m.values),
        "ci_low": json_matrix(result.ci_low),
        "ci_high": json_matrix(result.ci_high),
        "best_matches": best_matches(result),
        "settings": result.settings.to_dict(),
        "seconds": result.seconds,
    }


def cka_report(result) -> Report:
    """The report of a ``CKAResult``."""
    s = result.settings
    intervals = f", {s.bootstrap} bootstrap resamples (95% intervals in cka.csv)"
    settings = (
        f"{s.estimator} estimator, {s.kernel} kernel, {s.n_examples} examples, "
        f"batch size {s.batch_size}{intervals if s.bootstrap else ''}."
        if s.measure == "cka"
        else f"{_measure(result).reference}; {_measure(result).kind} "
        f"({'lower' if _measure(result).is_distance else 'higher'} is more alike), {s.method}."
    )
    return Report(
        stem="cka",
        title=f"{_label(result)}: {result.side_a} vs {result.side_b}",
        summary=[settings, *([f"Caveat: {s.caveat}."] if s.caveat else [])],
        records=cka_records(result),
        tables=[best_match_table(result)],
        figures=cka_figures(result),
        document=cka_document(result),
        notes=["Every pair is in `cka.csv`; the matrix and provenance in `cka.json`."],
    )
