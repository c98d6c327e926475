"""A per-layer result of one model: one line of a plot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repcompare.analyses.fields import json_array


@dataclass
class LayerCurve:
    """One value per layer of one model (NaN: undefined), with its 95% interval if any.

    ``variant`` names what else the curve depends on (an augmentation), or is empty.
    """

    model: str
    variant: str
    layers: list[str]
    values: np.ndarray
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None


def curve_from_records(model: str, variant: str, records: list[dict], key: str) -> LayerCurve:
    """The curve of ``model`` back from its JSON records (``key``: the value's field; null is
    NaN), with the ``ci_low``/``ci_high`` interval when the records hold one."""
    values = json_array([r[key] for r in records])
    low = json_array([r.get("ci_low") for r in records])
    high = json_array([r.get("ci_high") for r in records])
    interval = not np.isnan(low).all()
    return LayerCurve(
        model,
        variant,
        [r["layer"] for r in records],
        values,
        low if interval else None,
        high if interval else None,
    )
