"""Exact linear CKA over all examples, streamed in feature space.

For column-centred X (n x d_a) and Y (n x d_b),

    CKA_lin(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

the biased linear CKA of Kornblith et al. (2019) on the full data set, exactly.
Only the co-moment matrices C_XY = Xc^T Yc are needed, and they stream over
batches with the pairwise update of Chan, Golub & LeVeque: a batch of m
examples with batch means (u, v) and batch-centred co-moment D merges into
running (n, mu, nu, C) as

    C <- C + D + (n m / (n + m)) (u - mu)(v - nu)^T,   mu <- mu + (m / (n + m))(u - mu),

all in float64, so large feature offsets never cancel catastrophically.
Memory is sum over pairs of d_a x d_b float64 values (plus d x d per layer):
cheaper than n x n Gram matrices when the layers are narrow (pooled features).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from repcompare.similarity.checks import (
    CONSTANT_RTOL,
    BatchShapeError,
    check_finite,
    check_sides,
    degenerate,
    prepare_batch,
)
from repcompare.similarity.result import SimilarityMatrix, normalise
from repcompare.similarity.shares import Gather, SumAcross


def _f64(device: torch.device) -> dict:
    return {"dtype": torch.float64, "device": device}


class ExactLinearCKA:
    """Accumulates exact linear CKA for all pairs of two ordered lists of layers.

    ``names_b=None`` compares side A with itself. Tensors stay on the device
    they arrive on; all statistics are float64.
    """

    def __init__(self, names_a: Sequence[str], names_b: Sequence[str] | None = None):
        self.names_a = tuple(names_a)
        self.names_b = None if names_b is None else tuple(names_b)
        self.n_examples = 0
        self._means: list[torch.Tensor] = []
        self._comoments: dict[tuple[int, int], torch.Tensor] = {}
        self._sq_norms: list[torch.Tensor] = []

    @property
    def _all_names(self) -> tuple[str, ...]:
        return self.names_a + (self.names_b or ())

    def _pairs(self) -> list[tuple[int, int]]:
        """Indices into the layer list of every co-moment kept: self terms and A x B."""
        n_a = len(self.names_a)
        selfs = [(i, i) for i in range(len(self._all_names))]
        if self.names_b is None:
            return selfs + [(i, j) for i in range(n_a) for j in range(i + 1, n_a)]
        return selfs + [(i, n_a + j) for i in range(n_a) for j in range(len(self.names_b))]

    def update(
        self, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor] | None = None
    ) -> None:
        """Add one batch: ``feats_a[i]`` is layer ``names_a[i]`` as ``(m, ...)``, likewise B."""
        check_sides(self.names_b is None, feats_a, feats_b)
        feats = list(feats_a) + list(feats_b or [])
        device = feats[0].device
        matrices = [x.to(device, torch.float64) for x in prepare_batch(feats, self._all_names, 1)]
        m, n = matrices[0].shape[0], self.n_examples
        batch_means = [x.mean(dim=0) for x in matrices]
        for mean, name in zip(batch_means, self._all_names, strict=True):
            check_finite(mean, name)
        centred = [x - mu for x, mu in zip(matrices, batch_means, strict=True)]
        if n == 0:
            self._means = [torch.zeros_like(u) for u in batch_means]
            self._sq_norms = [torch.zeros((), dtype=torch.float64, device=device)] * len(feats)
            self._comoments = {
                (i, j): torch.zeros(len(batch_means[i]), len(batch_means[j]), **_f64(device))
                for i, j in self._pairs()
            }
        deltas = [u - mu for u, mu in zip(batch_means, self._means, strict=True)]
        for i, j in self._pairs():
            merge = (n * m / (n + m)) * torch.outer(deltas[i], deltas[j])
            self._comoments[(i, j)] += centred[i].T @ centred[j] + merge
        self._means = [mu + (m / (n + m)) * d for mu, d in zip(self._means, deltas, strict=True)]
        self._sq_norms = [
            s + x.square().sum() for s, x in zip(self._sq_norms, matrices, strict=True)
        ]
        self.n_examples = n + m

    def combine(self, sum_across: SumAcross, gather: Gather) -> None:
        """Hold every process's examples: with the overall means mu, each process's co-moments
        C_r + n_r (mu_r - mu)(nu_r - nu)^T added across processes (the same pairwise update)."""
        if self.n_examples == 0:
            raise BatchShapeError("no batch was added, so there is nothing to combine")
        n_r = self.n_examples
        n = sum(gather(n_r))
        means = [n_r * mu for mu in self._means]
        for total in means:
            sum_across(total)
        means = [total / n for total in means]
        deltas = [mu_r - mu for mu_r, mu in zip(self._means, means, strict=True)]
        for (i, j), comoment in self._comoments.items():
            comoment += n_r * torch.outer(deltas[i], deltas[j])
            sum_across(comoment)
        for total in self._sq_norms:
            sum_across(total)
        self._means, self.n_examples = means, n

    def result(self) -> SimilarityMatrix:
        """The exact linear CKA matrix (rows: side A, columns: side B)."""
        if self.n_examples == 0:
            raise BatchShapeError("no batch was added, so there is no CKA to report")
        n_a, n_layers = len(self.names_a), len(self._all_names)
        names_b = self.names_a if self.names_b is None else self.names_b
        first_b = 0 if self.names_b is None else n_a
        columns_b = range(first_b, first_b + len(names_b))
        sq_norm = {pair: c.square().sum() for pair, c in self._comoments.items()}
        cross = torch.stack(
            [torch.stack([sq_norm[tuple(sorted((i, j)))] for j in columns_b]) for i in range(n_a)]
        )
        self_terms = torch.stack([sq_norm[(i, i)] for i in range(n_layers)])
        # constant layer: total variance is rounding noise against the raw second moment
        variance = torch.stack([torch.trace(self._comoments[(i, i)]) for i in range(n_layers)])
        bad = degenerate(variance, torch.stack(self._sq_norms), rtol=CONSTANT_RTOL)
        return normalise(
            cross,
            self_terms[:n_a],
            self_terms[first_b:],
            bad[:n_a],
            bad[first_b:],
            self.names_a,
            names_b,
            self.n_examples,
        )
