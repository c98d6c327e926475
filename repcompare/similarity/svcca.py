"""SVCCA (Raghu et al. 2017, "SVCCA: Singular Vector Canonical Correlation Analysis").

Each column-centred representation is first reduced to its top singular
directions: with ``Xc = U diag(s) V^T``, keep the smallest k with
``sum_{i<=k} s_i^2 >= keep * sum_i s_i^2`` (the fraction of variance, 0.99 by
default) and take ``X' = U_k diag(s_1..s_k)`` (n x k). Then

    SVCCA(X, Y) = mean_i rho_i,   rho = canonical correlations of X' and Y'

(:mod:`cca`), a similarity in [0, 1]. Invariant to orthogonal maps, isotropic
scaling and translation; invariant to an invertible linear map only when the
truncation keeps the same subspace (``keep=1`` keeps everything).
"""

from __future__ import annotations

import torch

from repcompare.similarity.cca import canonical_correlations
from repcompare.similarity.checks import centred_float64, prepare_pair

DEFAULT_SVCCA_KEEP = 0.99


def svd_reduce(x: torch.Tensor, keep: float = DEFAULT_SVCCA_KEEP, side: str = "X") -> torch.Tensor:
    """``U_k diag(s_1..s_k)``: centred ``(n, p)`` X on its top directions holding ``keep`` of the
    variance (float64, ``(n, k)``)."""
    if not 0 < keep <= 1:
        raise ValueError(f"the fraction of variance kept must be in (0, 1], got {keep}")
    xc = centred_float64(x.reshape(x.shape[0], -1), side)
    u, s, _ = torch.linalg.svd(xc, full_matrices=False)
    explained = torch.cumsum(s.square(), 0) / s.square().sum()
    k = min(int((explained < keep).sum()) + 1, s.numel())
    return u[:, :k] * s[:k]


def svcca(
    x: torch.Tensor, y: torch.Tensor, *, keep: float = DEFAULT_SVCCA_KEEP, rtol: float | None = None
) -> torch.Tensor:
    """Mean canonical correlation of the SVD-reduced X and Y (0-dim float64, in [0, 1])."""
    x, y = prepare_pair(x, y, 2)
    rho = canonical_correlations(svd_reduce(x, keep, "X"), svd_reduce(y, keep, "Y"), rtol=rtol)
    return rho.mean()
