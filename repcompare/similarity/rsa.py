"""Representational similarity analysis (Kriegeskorte, Mur & Bandettini 2008).

The representational dissimilarity matrix of X (n x p) is

    RDM_X[i, j] = 1 - corr(x_i, x_j),

the Pearson correlation of examples i and j across the p features. Then

    RSA(X, Y) = Spearman correlation of {RDM_X[i, j]} and {RDM_Y[i, j]} over i < j,

with tied values given their average rank: a similarity in [-1, 1],
unchanged by any strictly increasing transform of either RDM. Each row is
centred and scaled over its own features, so RSA is invariant to isotropic
scaling, but not to orthogonal or linear maps, nor to adding a vector to
every example (translation).
"""

from __future__ import annotations

import torch

from repcompare.similarity.checks import DegenerateRepresentationError, prepare_pair


def rdm(x: torch.Tensor, side: str = "X") -> torch.Tensor:
    """``1 - corr(x_i, x_j)`` over features, ``(n, n)`` float64; a row constant over its
    features has no correlation and raises."""
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    rows = x - x.mean(dim=1, keepdim=True)
    norms = rows.norm(dim=1, keepdim=True)
    flat = norms.squeeze(1) <= 1e-12 * x.abs().amax(dim=1).clamp_min(1e-300)
    if flat.any():
        raise DegenerateRepresentationError(
            f"representation {side} has {int(flat.sum())} example(s) constant over their "
            "features, whose correlation with other examples is undefined"
        )
    unit = rows / norms
    return 1 - unit @ unit.T


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks of a 1-D tensor, tied values sharing their average rank (float64)."""
    order = torch.argsort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(
        values[order], return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).to(torch.float64)
    average = ends - (counts.to(torch.float64) - 1) / 2
    ranks = torch.empty(values.numel(), dtype=torch.float64, device=values.device)
    ranks[order] = average[inverse]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman correlation: Pearson correlation of the average ranks (0-dim float64)."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = ra.norm() * rb.norm()
    if denominator == 0:
        raise DegenerateRepresentationError(
            "every dissimilarity on one side is equal, so their rank correlation is undefined"
        )
    return (ra @ rb / denominator).clamp(-1.0, 1.0)


def rsa_from_rdms(rdm_x: torch.Tensor, rdm_y: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of the upper triangles (i < j) of two n x n RDMs."""
    n = rdm_x.shape[0]
    rows, cols = torch.triu_indices(n, n, offset=1, device=rdm_x.device)
    return spearman(rdm_x[rows, cols], rdm_y.to(rdm_x.device)[rows, cols])


def rsa(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """RSA of ``(n, ...)`` representations X and Y of the same n >= 3 examples (0-dim float64)."""
    x, y = prepare_pair(x, y, 3)
    return rsa_from_rdms(rdm(x, "X"), rdm(y, "Y"))
