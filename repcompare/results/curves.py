"""A per-layer result of one model: one line of a plot, with layers at relative depth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repcompare.results.fields import json_array

ROLES = ("block", "residual")  # the paper preset's two kinds of capture point


def mixed_roles(layers: list[str], roles: dict[str, str]) -> list[str] | None:
    """Each layer's role ("block", "residual" or "") when ``layers`` mix block outputs and
    residual branches (the paper preset), else None: one kind of layer needs no split."""
    kinds = [roles.get(layer, "") for layer in layers]
    return kinds if set(ROLES) <= set(kinds) else None


def role_field(roles: list[str] | None, i: int) -> dict[str, str]:
    """``{"role": ...}`` of layer ``i`` for a record, or nothing without mixed roles."""
    return {"role": roles[i]} if roles else {}


def roles_from_records(records: list[dict]) -> list[str] | None:
    """The roles back from JSON records (None when they hold none)."""
    return [r["role"] for r in records] if records and "role" in records[0] else None


def relative_depth(layers: int) -> np.ndarray:
    """Layer i of L at depth i / (L - 1), so models of different depth overlay on 0..1."""
    return np.linspace(0.0, 1.0, layers) if layers > 1 else np.zeros(1)


@dataclass
class LayerCurve:
    """One value per layer of one model (NaN: undefined), with its 95% interval if any.

    ``variant`` names what else the curve depends on (an augmentation), or is empty;
    ``roles``: each layer's role when the layers mix block outputs and residual branches
    (``mixed_roles``), which the pictures draw as separate series.
    """

    model: str
    variant: str
    layers: list[str]
    values: np.ndarray
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    roles: list[str] | None = None


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
        roles_from_records(records),
    )
