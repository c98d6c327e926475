"""A per-layer result of one model: one line of a plot, with layers at relative depth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repcompare.results.fields import json_array


def relative_depth(layers: int) -> np.ndarray:
    """Layer i of L at depth i / (L - 1), so models of different depth overlay on 0..1."""
    return np.linspace(0.0, 1.0, layers) if layers > 1 else np.zeros(1)


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
