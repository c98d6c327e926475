"""Hilbert-Schmidt independence criterion estimators on Gram matrices.

``hsic_biased`` is HSIC_0 = tr(K H L H) / (n-1)^2 with H = I - 11^T/n.
``hsic_unbiased`` is HSIC_1 of Song et al. (2012). It is computed through the
U-centring of Szekely and Rizzo (2014), which turns HSIC_1 into a plain inner
product:  HSIC_1(K, L) = <U(K), U(L)>_F / (n (n-3)),  where for i != j

    U(K)_ij = K~_ij - r_i - r_j + t,   r_i = sum_l K~_il / (n-2),
    t = sum_kl K~_kl / ((n-1)(n-2)),   U(K)_ii = 0,

and K~ is K with its diagonal set to 0. The inner-product form is what lets the
minibatch accumulator score every pair of layers with one matrix product.
"""

from __future__ import annotations

import torch


def double_centre(k: torch.Tensor) -> torch.Tensor:
    """``H K H``: subtract row and column means, add back the grand mean (float64)."""
    k = k.to(torch.float64)
    row = k.mean(dim=1, keepdim=True)
    col = k.mean(dim=0, keepdim=True)
    return k - row - col + k.mean()


def u_centre(k: torch.Tensor) -> torch.Tensor:
    """U-centred Gram matrix (see module docstring); requires ``n >= 4`` examples."""
    n = k.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC estimator needs at least 4 examples, got {n}")
    k = k.to(torch.float64).clone()
    k.fill_diagonal_(0)
    row = k.sum(dim=1) / (n - 2)
    total = k.sum() / ((n - 1) * (n - 2))
    u = k - row[:, None] - row[None, :] + total
    u.fill_diagonal_(0)
    return u


def hsic_biased(gram_x: torch.Tensor, gram_y: torch.Tensor) -> torch.Tensor:
    """HSIC_0(K, L) = tr(K H L H) / (n-1)^2, in float64."""
    n = gram_x.shape[0]
    return (double_centre(gram_x) * gram_y.to(torch.float64)).sum() / (n - 1) ** 2


def hsic_unbiased(gram_x: torch.Tensor, gram_y: torch.Tensor) -> torch.Tensor:
    """HSIC_1(K, L) of Song et al. (2012), in float64; can be negative."""
    n = gram_x.shape[0]
    return (u_centre(gram_x) * u_centre(gram_y)).sum() / (n * (n - 3))
