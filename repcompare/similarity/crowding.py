"""Crowding measures of Song et al. (2024) per layer, accumulated over batches.

On L2-normalised features z (rows of a layer's pooled representation) with
class means mu_c:

    intra = mean over classes c of  mean_{i in c} ||z_i - mu_c||^2
    inter = mean over class pairs c < c' of ||mu_c - mu_c'||^2   (inter_min: the smallest pair)
    ratio = intra / inter          (large = crowded: classes overlap)

Only per-class counts n_c, sums s_c and sums of squared norms q_c are kept,
in float64, so memory does not grow with the number of examples:
mean_{i in c} ||z_i - mu_c||^2 = q_c / n_c - ||s_c / n_c||^2.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from repcompare.similarity.checks import BatchShapeError, prepare_batch
from repcompare.similarity.shares import Gather, SumAcross

NORM_EPS = 1e-12


class CrowdingStats:
    """Streaming intra-/inter-class distances of several layers over labelled batches."""

    def __init__(self, names: Sequence[str], num_classes: int):
        self.names = tuple(names)
        self.num_classes = num_classes
        self._counts: torch.Tensor | None = None
        self._sums: list[torch.Tensor] = []
        self._sq_norms: list[torch.Tensor] = []

    def update(self, feats: Sequence[torch.Tensor], labels: torch.Tensor) -> None:
        """Add one batch: ``feats[i]`` is layer ``names[i]`` as ``(m, ...)``; ``labels`` (m,)."""
        matrices = prepare_batch(feats, self.names, 1)
        device = matrices[0].device
        labels = labels.to(device=device, dtype=torch.int64)
        if labels.shape != (matrices[0].shape[0],):
            raise BatchShapeError("give one label per example of the batch")
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise BatchShapeError(f"labels must lie in 0..{self.num_classes - 1}")
        onehot = torch.nn.functional.one_hot(labels, self.num_classes).to(torch.float64)
        if self._counts is None:
            self._counts = torch.zeros(self.num_classes, dtype=torch.float64, device=device)
            self._sums = [
                torch.zeros(self.num_classes, x.shape[1], dtype=torch.float64, device=device)
                for x in matrices
            ]
            self._sq_norms = [torch.zeros_like(self._counts) for _ in matrices]
        self._counts += onehot.sum(dim=0)
        for i, x in enumerate(matrices):
            z = x.to(torch.float64)
            z = z / z.norm(dim=1, keepdim=True).clamp_min(NORM_EPS)
            self._sums[i] += onehot.T @ z
            self._sq_norms[i] += onehot.T @ z.square().sum(dim=1)

    def combine(self, sum_across: SumAcross, gather: Gather) -> None:
        """Hold every process's batches: the per-class sums added across processes."""
        if self._counts is None:
            raise BatchShapeError("no batch was added, so there is nothing to combine")
        for total in (self._counts, *self._sums, *self._sq_norms):
            sum_across(total)

    def result(self) -> dict[str, np.ndarray]:
        """``intra``, ``inter``, ``inter_min`` and ``ratio``, one value per layer."""
        if self._counts is None:
            raise BatchShapeError("no batch was added, so there are no crowding measures")
        present = self._counts > 0
        if int(present.sum()) < 2:
            raise BatchShapeError("crowding measures need examples of at least 2 classes")
        counts = self._counts[present]
        pairs = torch.triu_indices(len(counts), len(counts), offset=1)
        out = {key: [] for key in ("intra", "inter", "inter_min", "ratio")}
        for sums, sq_norms in zip(self._sums, self._sq_norms, strict=True):
            means = sums[present] / counts[:, None]
            intra = (sq_norms[present] / counts - means.square().sum(dim=1)).mean()
            gaps = torch.cdist(means, means).square()[pairs[0], pairs[1]]
            out["intra"].append(intra.item())
            out["inter"].append(gaps.mean().item())
            out["inter_min"].append(gaps.min().item())
            out["ratio"].append((intra / gaps.mean()).item())
        return {key: np.array(values) for key, values in out.items()}
