"""Machine-readable results: CSV, JSON and Markdown files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np


def _number(value: float) -> float | None:
    """JSON has no NaN: an undefined value (degenerate layer) is null."""
    return None if value is None or math.isnan(value) else float(value)


def _matrix(values: np.ndarray | None) -> list[list[float | None]] | None:
    return None if values is None else [[_number(v) for v in row] for row in values]


def best_matches(result) -> list[dict]:
    """For each layer of A: the most similar layer of B, and the same-named layer if any."""
    m = result.matrix
    rows = []
    for i, layer in enumerate(m.names_a):
        values = m.values[i]
        defined = ~np.isnan(values)
        best = int(np.nanargmax(values)) if defined.any() else None
        same = m.names_b.index(layer) if layer in m.names_b else None
        rows.append(
            {
                "layer_a": layer,
                "best_b": None if best is None else m.names_b[best],
                "best_cka": None if best is None else _number(values[best]),
                "same_layer_cka": None if same is None else _number(values[same]),
            }
        )
    return rows


def write_cka_csv(result, path: Path) -> None:
    """One row per pair: layer_a, layer_b, cka, ci_low, ci_high, note."""
    m = result.matrix
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["layer_a", "layer_b", "cka", "ci_low", "ci_high", "note"])
        for i, a in enumerate(m.names_a):
            for j, b in enumerate(m.names_b):
                undefined = a in m.degenerate_a or b in m.degenerate_b
                interval = (
                    ("", "")
                    if result.ci_low is None or undefined
                    else (f"{result.ci_low[i, j]:.6f}", f"{result.ci_high[i, j]:.6f}")
                )
                writer.writerow(
                    [
                        a,
                        b,
                        "" if undefined else f"{m.values[i, j]:.6f}",
                        *interval,
                        "undefined: constant layer" if undefined else "",
                    ]
                )


def write_cka_json(result, path: Path) -> None:
    """Matrix, intervals, layer lists, settings and both sides' provenance."""
    m = result.matrix
    document = {
        "side_a": {
            "label": result.side_a,
            "layers": list(m.names_a),
            "degenerate": list(m.degenerate_a),
            "provenance": result.provenance_a.to_dict(),
        },
        "side_b": {
            "label": result.side_b,
            "layers": list(m.names_b),
            "degenerate": list(m.degenerate_b),
            "provenance": result.provenance_b.to_dict(),
        },
        "cka": _matrix(m.values),
        "ci_low": _matrix(result.ci_low),
        "ci_high": _matrix(result.ci_high),
        "best_matches": best_matches(result),
        "settings": result.settings.to_dict(),
        "seconds": result.seconds,
    }
    path.write_text(json.dumps(document, indent=2, default=str))


def _cell(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def write_cka_md(result, path: Path, pictures: list[str]) -> None:
    """A readable summary: settings, best match per layer, links to the full results."""
    s = result.settings
    lines = [
        f"# CKA: {result.side_a} vs {result.side_b}",
        "",
        f"{s.estimator} estimator, {s.kernel} kernel, {s.n_examples} examples, "
        f"batch size {s.batch_size}"
        + (f", {s.bootstrap} bootstrap resamples (95% intervals in cka.csv)" if s.bootstrap else "")
        + ".",
        "",
        *(f"![{p}]({p})" for p in pictures),
        "",
        f"| layer of {result.side_a} | most similar layer of {result.side_b} | CKA | "
        "same layer CKA |",
        "|---|---|---:|---:|",
    ]
    for row in best_matches(result):
        same = "" if row["same_layer_cka"] is None else _cell(row["same_layer_cka"])
        lines.append(
            f"| {row['layer_a']} | {row['best_b'] or 'undefined'} | {_cell(row['best_cka'])} "
            f"| {same} |"
        )
    lines += ["", "Every pair is in `cka.csv`; the matrix and provenance in `cka.json`.", ""]
    path.write_text("\n".join(lines))


def _text(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6f}"
    return "" if value is None else str(value)


def write_records_csv(records: list[dict], path: Path) -> None:
    """One row per record, the keys of the first record as the header; NaN as an empty cell."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows({k: _text(v) for k, v in r.items()} for r in records)


def write_records(records: list[dict], stem: Path, result, **context) -> list[Path]:
    """``stem.csv`` (one row per record) and ``stem.json``: the records (NaN as null),
    ``context`` (fingerprints), and the result's settings, provenance and seconds."""
    write_records_csv(records, stem.with_suffix(".csv"))
    rows = [{k: _number(v) if isinstance(v, float) else v for k, v in r.items()} for r in records]
    document = {
        "records": rows,
        **context,
        "settings": result.settings.to_dict(),
        "provenance": {label: p.to_dict() for label, p in result.provenance.items()},
        "seconds": result.seconds,
    }
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2, default=str))
    return [stem.with_suffix(".csv"), stem.with_suffix(".json")]


def markdown_table(records: list[dict], columns: dict[str, str]) -> list[str]:
    """Lines of a Markdown table of ``columns`` ({key: header}); numbers to 3 decimals."""
    lines = ["| " + " | ".join(columns.values()) + " |"]
    numeric = [isinstance(records[0][k], float) for k in columns]
    lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
    for r in records:
        cells = [
            ("undefined" if math.isnan(r[k]) else f"{r[k]:.3f}")
            if isinstance(r[k], float)
            else str(r[k])
            for k in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
