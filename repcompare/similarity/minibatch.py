"""All-pairs minibatch CKA (Nguyen, Raghu & Kornblith 2021) with unbiased HSIC_1.

Over batches b of m_b examples, for layer a of side A and layer c of side B:

    CKA_ac = E_b[HSIC_1(K_a,b, L_c,b)]
             / sqrt(E_b[HSIC_1(K_a,b, K_a,b)] * E_b[HSIC_1(L_c,b, L_c,b)])

where E_b is the mean over batches weighted by the batch size m_b. With equal
batches this is exactly the plain mean of Nguyen et al.; a final partial batch
counts in proportion to its examples (each batch's HSIC_1 is unbiased, so any
fixed weighting keeps the estimate unbiased). Batches need at least 4 examples.

Because HSIC_1(K, L) = <U(K), U(L)> / (m (m-3)) (see ``hsic.py``), one batch
scores every pair with a single product of the stacked U-centred Gram matrices,
``(L_A x m^2) @ (m^2 x L_B)``, and the self terms are the row norms. Features
are centred per batch, Gram matrices are formed in the input's precision
(float32 unless the input is float64), and everything after is float64.
Memory is independent of the number of examples.

On a GPU nothing in ``update`` waits for the device: the NaN/Inf checks are
read once their copy to the host has landed (``checks.FiniteChecks``), and the
bootstrap's per-batch terms stay on the device until ``resample``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from repcompare.similarity.checks import (
    MIN_EXAMPLES_UNBIASED,
    BatchShapeError,
    FiniteChecks,
    check_sides,
    degenerate,
    prepare_batch,
)
from repcompare.similarity.gram import (
    DEFAULT_RBF_FRACTION,
    DEFAULT_RBF_MEDIAN,
    Batch,
    check_rbf_median,
    gram,
)
from repcompare.similarity.hsic import u_centre
from repcompare.similarity.result import SimilarityMatrix, clip_rounding, normalise
from repcompare.similarity.shares import Gather, SumAcross


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` of ``values`` along axis 0: (low, high) percentiles."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail], axis=0)
    return low, high


class MinibatchCKA:
    """Accumulates minibatch CKA for all pairs of two ordered lists of layers.

    Give ``names_b=None`` to compare side A with itself (a within-model
    heatmap): each Gram matrix is then formed once per batch and ``update``
    takes only ``feats_a``. Extra targets such as one-hot labels or a second
    augmented view are simply more layers on a side. Tensors stay on the
    device they arrive on. ``keep_batch_terms`` keeps each batch's HSIC_1
    terms (L_A x L_B floats per batch) for ``resample``/``bootstrap``; without
    it memory does not grow with the number of batches. ``rbf_median`` is the
    RBF bandwidth convention, applied per batch (see :func:`gram.rbf_sigma_squared`).
    """

    def __init__(
        self,
        names_a: Sequence[str],
        names_b: Sequence[str] | None = None,
        *,
        kernel: str = "linear",
        rbf_fraction: float = DEFAULT_RBF_FRACTION,
        keep_batch_terms: bool = True,
        rbf_median: str = DEFAULT_RBF_MEDIAN,
    ):
        self.names_a = tuple(names_a)
        self.names_b = None if names_b is None else tuple(names_b)
        self.kernel = kernel
        self.rbf_fraction = rbf_fraction
        self.rbf_median = check_rbf_median(rbf_median)
        self.keep_batch_terms = keep_batch_terms
        self.n_examples = 0
        self.n_batches = 0
        self._cross: torch.Tensor | None = None
        self._self_a: torch.Tensor | None = None
        self._self_b: torch.Tensor | None = None
        self._scale_a: torch.Tensor | None = None
        self._scale_b: torch.Tensor | None = None
        self._per_batch: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._finite = FiniteChecks()

    @property
    def symmetric(self) -> bool:
        return self.names_b is None

    def _u_centred(self, feats: Sequence[Batch], names: Sequence[str], device):
        """Stacked flattened U-centred Grams ``(L, m^2)``, their scales ``(L,)``, and ``m``."""
        matrices = prepare_batch(feats, names, MIN_EXAMPLES_UNBIASED)
        m = matrices[0].shape[0]
        stacked = torch.empty(len(matrices), m * m, dtype=torch.float64, device=device)
        scales = torch.empty(len(matrices), dtype=torch.float64, device=device)
        for i, x in enumerate(matrices):
            k = gram(x.to(device), self.kernel, self.rbf_fraction, self.rbf_median)
            scales[i] = k.to(torch.float64).square().sum()
            stacked[i] = u_centre(k).reshape(-1)
        self._finite.add(scales, names)  # NaN or Inf in any entry of a Gram reaches its scale
        return stacked, scales, m

    def update(self, feats_a: Sequence[Batch], feats_b: Sequence[Batch] | None = None) -> None:
        """Add one batch: ``feats_a[i]`` is layer ``names_a[i]`` as ``(m, ...)`` features or
        their ``BatchGram`` (the same value either way), likewise B."""
        check_sides(self.symmetric, feats_a, feats_b)
        device = feats_a[0].device
        u_a, scale_a, m = self._u_centred(feats_a, self.names_a, device)
        if feats_b is None:
            cross = u_a @ u_a.T
            self_a = self_b = torch.diagonal(cross)
            scale_b = scale_a
        else:
            u_b, scale_b, m_b = self._u_centred(feats_b, self.names_b, device)
            if m_b != m:
                raise BatchShapeError(
                    "sides A and B of a batch hold different numbers of examples; "
                    "both sides must see the same images in the same order"
                )
            cross = u_a @ u_b.T
            self_a, self_b = u_a.square().sum(dim=1), u_b.square().sum(dim=1)
        weight = m / (m * (m - 3))  # batch weight m_b times the HSIC_1 normaliser
        if self._cross is None:
            self._cross = torch.zeros_like(cross)
            self._self_a, self._self_b = torch.zeros_like(self_a), torch.zeros_like(self_b)
            self._scale_a, self._scale_b = torch.zeros_like(scale_a), torch.zeros_like(scale_b)
        if self.keep_batch_terms:
            self._per_batch.append((m, *(t / (m * (m - 3)) for t in (cross, self_a, self_b))))
        self._cross += weight * cross
        self._self_a += weight * self_a
        self._self_b += weight * self_b
        self._scale_a += weight * scale_a
        self._scale_b += weight * scale_b
        self.n_examples += m
        self.n_batches += 1

    def combine(self, sum_across: SumAcross, gather: Gather) -> None:
        """Hold the batches of every process of a job, each of which fed this accumulator its
        share (consecutive batches, ranks in batch order): the float64 sums are added across
        processes, the kept per-batch terms gathered in rank order (see ``shares``)."""
        if self._cross is None:
            raise BatchShapeError("no batch was added, so there is nothing to combine")
        self._finite.finish()
        for total in (self._cross, self._self_a, self._self_b, self._scale_a, self._scale_b):
            sum_across(total)
        counts = gather((self.n_examples, self.n_batches))
        self.n_examples, self.n_batches = (sum(c[i] for c in counts) for i in (0, 1))
        if self.keep_batch_terms:
            terms = [(m, *(t.cpu() for t in rest)) for m, *rest in self._per_batch]
            self._per_batch = [term for part in gather(terms) for term in part]

    def resample(self, resamples: int, seed: int = 0) -> np.ndarray:
        """CKA of every pair over batches resampled with replacement: ``(resamples, L_A, L_B)``.

        Each resample draws as many batches as were seen, with replacement, and
        recomputes the weighted minibatch CKA from their HSIC_1 terms.
        """
        if not self.keep_batch_terms:
            raise BatchShapeError("resampling needs an accumulator built with keep_batch_terms")
        if len(self._per_batch) < 2:
            raise BatchShapeError(
                "a bootstrap interval needs at least 2 batches; use more samples or smaller batches"
            )
        self._finite.finish()
        weights = np.array([b[0] for b in self._per_batch])
        cross, self_a, self_b = (
            torch.stack([b[i] for b in self._per_batch]).cpu().numpy() for i in (1, 2, 3)
        )
        counts = np.random.default_rng(seed).multinomial(
            len(weights), np.full(len(weights), 1 / len(weights)), size=resamples
        )
        draw = counts * weights
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.einsum("rb,bij->rij", draw, cross) / np.sqrt(
                (draw @ self_a)[:, :, None] * (draw @ self_b)[:, None, :]
            )
        return clip_rounding(values, self.names_a, self.names_b or self.names_a)

    def bootstrap(
        self, resamples: int, seed: int = 0, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of each pair's CKA: the central ``level`` of ``resample()``."""
        return percentile_interval(self.resample(resamples, seed), level)

    def result(self) -> SimilarityMatrix:
        """The CKA matrix over every batch seen so far (rows: side A, columns: side B)."""
        if self._cross is None:
            raise BatchShapeError("no batch was added, so there is no CKA to report")
        self._finite.finish()
        return normalise(
            self._cross,
            self._self_a,
            self._self_b,
            degenerate(self._self_a, self._scale_a),
            degenerate(self._self_b, self._scale_b),
            self.names_a,
            self.names_a if self.names_b is None else self.names_b,
            self.n_examples,
        )
