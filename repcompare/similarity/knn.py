"""Mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic Representation
Hypothesis").

N_X(i) is the set of the k examples j != i with the largest cosine
similarity ``<x_i, x_j> / (||x_i|| ||x_j||)`` to example i (rows as they come,
not centred, as in the paper's code; a zero row has cosine 0 with every
row). Ties are broken towards the lower index. Then

    mKNN(X, Y) = (1 / n) sum_i |N_X(i) ∩ N_Y(i)| / k,

a similarity in [0, 1]. Invariant to orthogonal maps and isotropic scaling,
not to translation or general linear maps. It needs every example at once
(n x n similarities): use a fixed seeded subset (:mod:`sampling`).
"""

from __future__ import annotations

import torch
from torch.nn.functional import normalize

from repcompare.similarity.checks import centred_float64, prepare_pair

DEFAULT_KNN_K = 10


def knn_indices(x: torch.Tensor, k: int = DEFAULT_KNN_K) -> torch.Tensor:
    """``(n, k)`` indices of each row's k cosine-nearest other rows, nearest first."""
    unit = normalize(x.reshape(x.shape[0], -1).to(torch.float64), dim=1)
    sim = unit @ unit.T
    sim.fill_diagonal_(-torch.inf)
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices
    return order[:, :k]


def mutual_knn(x: torch.Tensor, y: torch.Tensor, k: int = DEFAULT_KNN_K) -> torch.Tensor:
    """Mean fraction of shared cosine k-nearest neighbours (self excluded), 0-dim float64."""
    x, y = prepare_pair(x, y, 2)
    n = x.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be between 1 and n - 1 = {n - 1} examples, got {k}")
    centred_float64(x, "X")  # identical rows have no neighbourhoods to compare
    centred_float64(y, "Y")
    in_x = torch.zeros(n, n, dtype=torch.bool, device=x.device)
    in_y = torch.zeros_like(in_x)
    in_x.scatter_(1, knn_indices(x, k), True)
    in_y.scatter_(1, knn_indices(y, k), True)
    return (in_x & in_y).sum(dtype=torch.float64) / (n * k)
