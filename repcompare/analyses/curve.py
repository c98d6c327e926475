"""A per-layer result of one model: one line of a plot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
