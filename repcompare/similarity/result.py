"""The result of a CKA computation between two ordered lists of layers."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from repcompare.errors import RunError

# |CKA| <= 1 (Cauchy-Schwarz); float64 rounding of the normalisation can put identical
# representations at 1 + 1e-15. Excesses below this are rounding and are clipped.
ROUNDING_EXCESS = 1e-9


@dataclass(frozen=True)
class SimilarityMatrix:
    """CKA for every pair (layer a of side A, layer b of side B).

    ``values[i, j]`` is the CKA of ``names_a[i]`` and ``names_b[j]`` in float64.
    Layers listed in ``degenerate_a`` / ``degenerate_b`` have zero self-HSIC (a
    constant representation); their rows / columns hold NaN, which stands for
    "undefined" and must be shown as such, never as a similarity.
    """

    names_a: tuple[str, ...]
    names_b: tuple[str, ...]
    values: np.ndarray
    degenerate_a: tuple[str, ...]
    degenerate_b: tuple[str, ...]
    n_examples: int

    @property
    def shape(self) -> tuple[int, int]:
        """(layers of A, layers of B)."""
        return self.values.shape

    def value(self, layer_a: str, layer_b: str) -> float:
        """CKA of one pair by layer names (NaN if either layer is degenerate)."""
        return float(self.values[self.names_a.index(layer_a), self.names_b.index(layer_b)])


def clip_rounding(
    values: np.ndarray, names_a: tuple[str, ...] = (), names_b: tuple[str, ...] = ()
) -> np.ndarray:
    """``values`` clipped into [-1, 1] where ``|v| - 1 < ROUNDING_EXCESS``; NaN stays NaN.

    A larger excess is not rounding but a bug, raised as a RunError naming the pair
    when ``names_a``/``names_b`` label the last two axes.
    """
    with np.errstate(invalid="ignore"):
        excess = np.abs(values) - 1
    if np.nanmax(excess, initial=-1.0) >= ROUNDING_EXCESS:
        where = np.unravel_index(np.nanargmax(excess), values.shape)
        pair = (
            f" for {names_a[where[-2]]} and {names_b[where[-1]]}"
            if values.ndim >= 2 and names_a and names_b
            else ""
        )
        raise RunError(
            f"a CKA value{pair} is {values[where]:.15g}, beyond 1 by more than rounding; "
            "this is a bug, please report it with the command you ran"
        )
    return np.clip(values, -1.0, 1.0)


def normalise(
    cross: torch.Tensor,
    self_a: torch.Tensor,
    self_b: torch.Tensor,
    bad_a: torch.Tensor,
    bad_b: torch.Tensor,
    names_a: tuple[str, ...],
    names_b: tuple[str, ...],
    n_examples: int,
) -> SimilarityMatrix:
    """``CKA_ab = cross_ab / sqrt(self_a self_b)``; rows/columns flagged ``bad`` become NaN.

    Rounding beyond +-1 is clipped (see :func:`clip_rounding`).
    """
    bad_a, bad_b = bad_a.cpu().numpy(), bad_b.cpu().numpy()
    cross = cross.to(torch.float64).cpu().numpy()
    norm_a = np.sqrt(np.where(bad_a, math.nan, self_a.cpu().numpy()))
    norm_b = np.sqrt(np.where(bad_b, math.nan, self_b.cpu().numpy()))
    values = clip_rounding(cross / np.outer(norm_a, norm_b), names_a, names_b)
    return SimilarityMatrix(
        names_a=names_a,
        names_b=names_b,
        values=values,
        degenerate_a=tuple(n for n, bad in zip(names_a, bad_a, strict=True) if bad),
        degenerate_b=tuple(n for n, bad in zip(names_b, bad_b, strict=True) if bad),
        n_examples=n_examples,
    )
