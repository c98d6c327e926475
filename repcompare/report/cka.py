"""All files of a ``cka`` run: tables, JSON and heatmaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from repcompare.report.heatmap import plot_heatmap
from repcompare.report.tables import write_cka_csv, write_cka_json, write_cka_md

# the files a run writes into --out: replaced together, stale ones removed
OWNED_FILES = ("cka.csv", "cka.json", "cka.md", "heatmap*.png", "heatmap*.svg")

PAPER_SPLIT = (
    ("block", "block outputs", "heatmap_blocks"),
    ("residual", "residual branches", "heatmap_residual"),
)


def _title(result, suffix: str = "") -> str:
    s = result.settings
    return (
        f"CKA {result.side_a} vs {result.side_b}{suffix}\n"
        f"{s.estimator}, {s.kernel} kernel, {s.n_examples} examples"
    )


def write_cka_outputs(result, out: Path) -> list[Path]:
    """cka.csv/json/md and heatmap.png/svg in ``out``; with the paper preset on both sides,
    also the block-output and residual-branch heatmaps of Grigg et al."""
    out.mkdir(parents=True, exist_ok=True)
    m, roles_a, roles_b = result.matrix, result.roles_a, result.roles_b
    rows, columns = list(m.names_a), list(m.names_b)
    pictures = plot_heatmap(
        m.values, rows, columns, result.side_a, result.side_b, _title(result), out / "heatmap"
    )
    mixed_roles = {roles_a.get(n) for n in rows} >= {"block", "residual"}
    for role, label, stem in PAPER_SPLIT if mixed_roles else ():
        keep_a = [i for i, n in enumerate(rows) if roles_a.get(n) == role]
        keep_b = [j for j, n in enumerate(columns) if roles_b.get(n) == role]
        if keep_b:
            pictures += plot_heatmap(
                m.values[np.ix_(keep_a, keep_b)],
                [rows[i] for i in keep_a],
                [columns[j] for j in keep_b],
                result.side_a,
                result.side_b,
                _title(result, f": {label}"),
                out / stem,
            )
    write_cka_csv(result, out / "cka.csv")
    write_cka_json(result, out / "cka.json")
    write_cka_md(result, out / "cka.md", [p.name for p in pictures if p.suffix == ".png"])
    return [out / "cka.csv", out / "cka.json", out / "cka.md", *pictures]
