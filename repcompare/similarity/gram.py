"""Gram (kernel) matrices of representations whose rows are examples.

All functions are pure and keep the device of their input. Features are
centred per column before a linear Gram matrix is formed: a Gram matrix of
uncentred ReLU features is dominated by the offset and loses the signal to
rounding in float32 (methods.md, numerical traps). Centring does not change
any HSIC estimate used here, since every estimator centres the Gram matrix
anyway; it only keeps the arithmetic well conditioned.
"""

from __future__ import annotations

import torch

DEFAULT_RBF_FRACTION = 0.8


def working_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def as_matrix(x: torch.Tensor) -> torch.Tensor:
    """Flatten a batch ``(n, ...)`` to ``(n, d)`` in its working dtype."""
    if x.ndim == 0:
        raise ValueError("a representation needs a leading example dimension")
    return x.reshape(x.shape[0], -1).to(working_dtype(x))


def centre_columns(x: torch.Tensor) -> torch.Tensor:
    """``X - 1 mean(X)``: each feature centred over the examples.

    The mean is taken in the working dtype: its float32 rounding leaves a
    residual offset of about 1e-7 of the original, which the estimators'
    own centring of the Gram matrix removes. (A float64 mean cost three times
    the Gram product itself on wide layers.)
    """
    return x - x.mean(dim=0, keepdim=True)


def linear_gram(x: torch.Tensor) -> torch.Tensor:
    """``K = Xc Xc^T`` with ``Xc`` the column-centred ``(n, d)`` features."""
    xc = centre_columns(as_matrix(x))
    return xc @ xc.T


def squared_distances(x: torch.Tensor) -> torch.Tensor:
    """``D_ij = ||x_i - x_j||^2``, clamped at 0 and exactly 0 on the diagonal."""
    xc = centre_columns(as_matrix(x))
    gram = xc @ xc.T
    sq_norms = torch.diagonal(gram)
    d2 = (sq_norms[:, None] + sq_norms[None, :] - 2 * gram).clamp_min_(0)
    d2.fill_diagonal_(0)
    return d2


def median_pairwise_distance(sq_dist: torch.Tensor) -> torch.Tensor:
    """Median of ``||x_i - x_j||`` over the pairs ``i < j`` (mean of the two middle values)."""
    n = sq_dist.shape[0]
    if n < 2:
        raise ValueError("a median pairwise distance needs at least 2 examples")
    rows, cols = torch.triu_indices(n, n, offset=1, device=sq_dist.device)
    dist = sq_dist[rows, cols].sqrt()
    count = dist.numel()
    lower = torch.kthvalue(dist, (count + 1) // 2).values
    upper = torch.kthvalue(dist, count // 2 + 1).values
    return (lower + upper) / 2


def rbf_gram(x: torch.Tensor, fraction: float = DEFAULT_RBF_FRACTION) -> torch.Tensor:
    """``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``, ``sigma = fraction * median distance``.

    The median is over the distinct pairs ``i < j``. When every example is the
    same point the median is 0 and the kernel is the all-ones matrix (a
    constant representation, which the CKA guards then report as degenerate).
    """
    if fraction <= 0:
        raise ValueError(f"the RBF bandwidth fraction must be positive, got {fraction}")
    d2 = squared_distances(x)
    sigma = fraction * median_pairwise_distance(d2)
    if sigma == 0:
        return torch.ones_like(d2)
    return torch.exp(-d2 / (2 * sigma**2))


def gram(x: torch.Tensor, kernel: str = "linear", rbf_fraction: float = DEFAULT_RBF_FRACTION):
    """The Gram matrix of ``x`` under ``kernel`` (``"linear"`` or ``"rbf"``)."""
    if kernel == "linear":
        return linear_gram(x)
    if kernel == "rbf":
        return rbf_gram(x, rbf_fraction)
    raise ValueError(f"unknown kernel {kernel!r}; use 'linear' or 'rbf'")
