"""Projection-weighted CCA (Morcos, Raghu & Bengio 2018, "Insights on representational
similarity in neural networks with canonical correlation").

With canonical correlations rho_i and orthonormal canonical variates h_i of X
(n-vectors, :mod:`cca`) and x_j the centred columns (features) of X,

    alpha_i = sum_j |<h_i, x_j>|,      PWCCA(X, Y) = sum_i alpha_i rho_i / sum_i alpha_i,

a similarity in [0, 1] that down-weights canonical directions accounting
for little of X. The weights come from X, so PWCCA(X, Y) != PWCCA(Y, X) in
general. Invariant to isotropic scaling and translation; not to orthogonal
or general invertible maps (the weights sum absolute values over features),
though its canonical correlations are.
"""

from __future__ import annotations

import torch

from repcompare.similarity.cca import cca
from repcompare.similarity.checks import centred_float64, prepare_pair


def pwcca_weights(variates_x: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
    """``alpha_i = sum_j |<h_i, x_j>|`` normalised to sum 1; variates (n, r), centred X (n, p)."""
    alpha = (variates_x.T @ xc).abs().sum(dim=1)
    return alpha / alpha.sum()


def pwcca(x: torch.Tensor, y: torch.Tensor, *, rtol: float | None = None) -> torch.Tensor:
    """Projection-weighted mean canonical correlation, weights from X (0-dim float64)."""
    x, y = prepare_pair(x, y, 2)
    result = cca(x, y, rtol=rtol)
    weights = pwcca_weights(result.variates_x, centred_float64(x, "X"))
    return (weights * result.correlations).sum().clamp(0.0, 1.0)
