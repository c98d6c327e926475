"""The baselines of a study: A vs B's same-depth CKA next to each model's CKA with its
untrained network at the same layers, as a table, a picture and the files they come from."""

from __future__ import annotations

import numpy as np

from repcompare.report.curves import draw_curves
from repcompare.report.files import write_json
from repcompare.report.model import FigureSpec, Report, Table
from repcompare.results.cka import CKAResult
from repcompare.results.curves import LayerCurve
from repcompare.results.fields import json_records
from repcompare.similarity.model_map import depth_pairs

FOLDER = "baselines"


def against_file(position: int) -> str:
    """The file (in the baselines folder) of the CKA of model ``position`` (0: A, 1: B)
    with its untrained network."""
    return f"{'ab'[position]}_vs_untrained.json"


def _block_indices(names: list[str], roles: dict[str, str]) -> list[int]:
    """The block outputs of the paper preset (every layer without roles)."""
    marked = [i for i, n in enumerate(names) if roles.get(n) == "block"]
    return marked or list(range(len(names)))


def _interval(result: CKAResult, i: int, j: int) -> tuple[float | None, float | None]:
    if result.ci_low is None:
        return None, None
    return float(result.ci_low[i, j]), float(result.ci_high[i, j])


def same_depth_records(across: CKAResult, against: dict[str, CKAResult]) -> list[dict]:
    """One record per pair of block outputs at matched depth: A vs B's CKA with its interval,
    and each model's CKA with its untrained network at its layer of the pair."""
    m = across.matrix
    rows = _block_indices(m.names_a, across.roles_a)
    columns = _block_indices(m.names_b, across.roles_b)
    pairs = depth_pairs(rows, columns)
    depths = np.linspace(0, 1, len(pairs)) if len(pairs) > 1 else np.ones(1)
    records = []
    for depth, (i, j) in zip(depths, pairs, strict=True):
        low, high = _interval(across, i, j)
        record = {
            "depth": float(depth),
            "layer_a": m.names_a[i],
            "layer_b": m.names_b[j],
            "a_vs_b": float(m.values[i, j]),
            "a_vs_b_ci_low": low,
            "a_vs_b_ci_high": high,
        }
        for key, model, index in (("a", across.side_a, i), ("b", across.side_b, j)):
            result = against.get(model)
            if result is not None:
                low, high = _interval(result, index, index)
                record[f"{key}_vs_untrained"] = float(result.matrix.values[index, index])
                record[f"{key}_vs_untrained_ci_low"] = low
                record[f"{key}_vs_untrained_ci_high"] = high
        records.append(record)
    return records


def _curves(records: list[dict], a: str, b: str) -> list[LayerCurve]:
    layers = [f"{r['layer_a']} / {r['layer_b']}" for r in records]
    curves = []
    for key, label in (
        ("a_vs_b", f"{a} vs {b}"),
        ("a_vs_untrained", f"{a} vs untrained"),
        ("b_vs_untrained", f"{b} vs untrained"),
    ):
        if key not in records[0]:
            continue
        values = np.array([r[key] for r in records], dtype=float)
        low = [r[f"{key}_ci_low"] for r in records]
        high = [r[f"{key}_ci_high"] for r in records]
        interval = None not in low
        curves.append(
            LayerCurve(
                label,
                "",
                layers,
                values,
                np.array(low, dtype=float) if interval else None,
                np.array(high, dtype=float) if interval else None,
            )
        )
    return curves


def baselines_report(across: CKAResult, against: dict[str, CKAResult]) -> Report:
    """The baselines section's report: the same-depth records (CSV, table), their picture,
    and each model's full CKA matrix with its untrained network (``a_vs_untrained.json``,
    ``b_vs_untrained.json``)."""
    a, b = across.side_a, across.side_b
    records = same_depth_records(across, against)
    columns = {"layer_a": f"layer of {a}", "layer_b": f"layer of {b}", "a_vs_b": f"{a} vs {b}"}
    columns |= {
        f"{key}_vs_untrained": f"{model} vs untrained"
        for key, model in (("a", a), ("b", b))
        if model in against
    }
    title = "Same-depth CKA, and each model against its untrained network"
    figure = FigureSpec(
        "same_depth",
        f"Same-depth CKA of {a} vs {b} next to each model's CKA with its untrained network",
        lambda: draw_curves(_curves(records, a, b), "CKA", title, ylim=(0.0, 1.0)),
    )
    files = {model: against_file(k) for k, model in enumerate((a, b)) if model in against}
    attachments = {
        files[model]: (lambda path, r=result: write_json(r.to_document(), path))
        for model, result in against.items()
    }
    return Report(
        "same_depth",
        title,
        [],
        records,
        [Table(records, columns, title=title)],
        [figure],
        {"records": json_records(records), "against_untrained": files},
        attachments=attachments,
    )
