"""Canonical correlation analysis of two representations, via orthonormal bases.

For column-centred X (n x p) and Y (n x q), let Qx (n x r_x) and Qy (n x r_y)
be orthonormal bases of their column spaces (left singular vectors whose
singular values exceed ``rtol * s_max``: rank deficiency is dropped, not
inverted). With the SVD ``Qx^T Qy = A diag(rho) B^T``,

    canonical correlations  rho_1 >= ... >= rho_r,  r = min(r_x, r_y)
    canonical variates      H = Qx A[:, :r] (of X),  G = Qy B[:, :r] (of Y)

(Bjorck & Golub 1973). H and G have orthonormal columns and corr(h_i, g_i) =
rho_i. No covariance matrix is inverted, so near-collinear features are safe.
When r_x = n - 1 (p >= n - 1) every rho is 1 whatever Y is: CCA needs n much
larger than the width, which is why SVCCA reduces the width first.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repcompare.similarity.checks import (
    DegenerateRepresentationError,
    centred_float64,
    prepare_pair,
)


@dataclass(frozen=True)
class CanonicalCorrelation:
    """``correlations`` (r,) descending in [0, 1]; ``variates_x``/``variates_y`` (n, r)."""

    correlations: torch.Tensor
    variates_x: torch.Tensor
    variates_y: torch.Tensor


def orthonormal_basis(xc: torch.Tensor, rtol: float | None = None, side: str = "X"):
    """Left singular vectors of ``xc`` with ``s > rtol * s_max`` (default ``max(n, p) eps``)."""
    u, s, _ = torch.linalg.svd(xc, full_matrices=False)
    if rtol is None:
        rtol = max(xc.shape) * torch.finfo(torch.float64).eps
    if s.numel() == 0 or s[0] == 0:
        raise DegenerateRepresentationError(
            f"representation {side} is constant over the examples, so its CCA is undefined"
        )
    return u[:, s > rtol * s[0]]


def cca(x: torch.Tensor, y: torch.Tensor, *, rtol: float | None = None) -> CanonicalCorrelation:
    """CCA of ``(n, ...)`` representations X and Y of the same examples, in float64."""
    x, y = prepare_pair(x, y, 2)
    qx = orthonormal_basis(centred_float64(x, "X"), rtol, "X")
    qy = orthonormal_basis(centred_float64(y, "Y"), rtol, "Y")
    a, rho, bt = torch.linalg.svd(qx.T @ qy, full_matrices=False)
    r = rho.numel()
    return CanonicalCorrelation(rho.clamp(0.0, 1.0), qx @ a[:, :r], qy @ bt[:r].T)


def canonical_correlations(
    x: torch.Tensor, y: torch.Tensor, *, rtol: float | None = None
) -> torch.Tensor:
    """The canonical correlations of X and Y, descending, ``min(rank X, rank Y)`` of them."""
    return cca(x, y, rtol=rtol).correlations
