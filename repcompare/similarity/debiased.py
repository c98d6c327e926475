"""Debiased CKA of Kornblith et al. (2019) over all examples, fed in batches.

For the n x n Gram matrices K (side A) and L (side B) of every example seen,

    CKA_1(K, L) = HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L)),

which is :class:`MinibatchCKA` on a single batch holding all n examples: the
batches are kept and concatenated in ``result``. Memory grows as n^2: one
float64 U-centred Gram matrix per layer, plus the features kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from repcompare.similarity.checks import check_sides, prepare_batch
from repcompare.similarity.gram import DEFAULT_RBF_FRACTION, DEFAULT_RBF_MEDIAN, check_rbf_median
from repcompare.similarity.minibatch import MinibatchCKA
from repcompare.similarity.result import SimilarityMatrix
from repcompare.similarity.shares import Gather, SumAcross


class DebiasedCKA:
    """Accumulates the batches of two ordered lists of layers for debiased CKA of all pairs.

    ``names_b=None`` compares side A with itself. Tensors stay on the device
    they arrive on. ``rbf_median`` is the RBF bandwidth convention (see
    :func:`gram.rbf_sigma_squared`).
    """

    def __init__(
        self,
        names_a: Sequence[str],
        names_b: Sequence[str] | None = None,
        *,
        kernel: str = "linear",
        rbf_fraction: float = DEFAULT_RBF_FRACTION,
        rbf_median: str = DEFAULT_RBF_MEDIAN,
    ):
        self.names_a = tuple(names_a)
        self.names_b = None if names_b is None else tuple(names_b)
        self.kernel = kernel
        self.rbf_fraction = rbf_fraction
        self.rbf_median = check_rbf_median(rbf_median)
        self._batches: list[list[torch.Tensor]] = []

    def update(
        self, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor] | None = None
    ) -> None:
        """Keep one batch: ``feats_a[i]`` is layer ``names_a[i]`` as ``(m, ...)``, likewise B."""
        check_sides(self.names_b is None, feats_a, feats_b)
        names = self.names_a + (self.names_b or ())
        self._batches.append(prepare_batch([*feats_a, *(feats_b or [])], names, 1))

    def combine(self, sum_across: SumAcross, gather: Gather) -> None:
        """Hold every process's batches, gathered in rank order (the batch order)."""
        device = self._batches[0][0].device
        kept = [[x.cpu() for x in batch] for batch in self._batches]
        self._batches = [[x.to(device) for x in batch] for part in gather(kept) for batch in part]

    def result(self) -> SimilarityMatrix:
        """The debiased CKA matrix over every example kept (rows: side A, columns: side B)."""
        whole = MinibatchCKA(
            self.names_a,
            self.names_b,
            kernel=self.kernel,
            rbf_fraction=self.rbf_fraction,
            keep_batch_terms=False,
            rbf_median=self.rbf_median,
        )
        if self._batches:
            layers = [torch.cat(parts) for parts in zip(*self._batches, strict=True)]
            n_a = len(self.names_a)
            whole.update(layers[:n_a], None if self.names_b is None else layers[n_a:])
        return whole.result()
