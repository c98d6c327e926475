"""The CKA estimators behind one protocol, and the one registry of them by name.

Every estimator is built for two ordered lists of layers (``names_b=None``
compares side A with itself), takes batches with ``update`` and gives the CKA
of every pair with ``result``. Its registry entry declares what a caller must
check before feeding it; adding a measure is adding an entry.

    minibatch  E_b[HSIC_1(K_b, L_b)] / sqrt(E_b[HSIC_1(K_b, K_b)] E_b[HSIC_1(L_b, L_b)]),
               E_b the mean over batches weighted by their sizes m_b
    exact      ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), column-centred, all n examples
    debiased   HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L)), all n examples
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from repcompare.errors import InputError
from repcompare.similarity.debiased import DebiasedCKA
from repcompare.similarity.feature_space import ExactLinearCKA
from repcompare.similarity.gram import DEFAULT_RBF_MEDIAN, check_rbf_median
from repcompare.similarity.minibatch import MinibatchCKA
from repcompare.similarity.result import SimilarityMatrix


@runtime_checkable
class CKAEstimator(Protocol):
    """Batches in, the CKA matrix of every (side A layer, side B layer) pair out."""

    def update(
        self, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor] | None = None
    ) -> None:
        """Add one batch: ``feats_a[i]`` is layer ``names_a[i]`` as ``(m, ...)``, likewise B."""
        ...

    def result(self) -> SimilarityMatrix:
        """The CKA matrix over every batch added so far."""
        ...


@runtime_checkable
class BootstrapCKA(CKAEstimator, Protocol):
    """An estimator that also resamples its batches into a percentile interval of each pair."""

    def bootstrap(
        self, resamples: int, seed: int = 0, level: float = 0.95
    ) -> tuple[np.ndarray, np.ndarray]:
        """The central ``level`` of each pair's CKA over ``resamples`` resamples: (low, high)."""
        ...


@dataclass(frozen=True)
class MemoryNeed:
    """``bytes`` that ``what`` needs, and the ``fix`` to offer when they do not fit."""

    bytes: int
    what: str
    fix: str


class Build(Protocol):
    """``build(names_a, names_b, kernel, rbf_fraction, keep_batch_terms, rbf_median=...)``."""

    def __call__(
        self,
        names_a: Sequence[str],
        names_b: Sequence[str] | None,
        kernel: str,
        rbf_fraction: float,
        keep_batch_terms: bool,
        rbf_median: str = DEFAULT_RBF_MEDIAN,
    ) -> CKAEstimator: ...


Memory = Callable[[Sequence[int], Sequence[int] | None, int], MemoryNeed]


@dataclass(frozen=True)
class EstimatorSpec:
    """What an estimator needs, declared.

    ``build(names_a, names_b, kernel, rbf_fraction, keep_batch_terms, rbf_median="all")``
    makes one (``rbf_median``: the RBF bandwidth convention, see ``gram.rbf_sigma_squared``);
    ``kernels`` are the kernels it computes; ``bootstrap``: it is a :class:`BootstrapCKA`
    when built with ``keep_batch_terms``; ``token_rows``: it takes token rows sampled per
    batch as its examples; ``grams``: its ``update`` takes a batch's ``BatchGram`` in place of
    its features; ``memory(widths_a, widths_b, n_examples)`` is its peak memory for
    layers of those feature widths (``widths_b=None``: symmetric), or None when there is
    nothing to check.
    """

    build: Build
    kernels: tuple[str, ...]
    bootstrap: bool
    token_rows: bool
    memory: Memory | None = None
    grams: bool = False


def _minibatch(
    names_a, names_b, kernel, rbf_fraction, keep_batch_terms, rbf_median=DEFAULT_RBF_MEDIAN
) -> MinibatchCKA:
    return MinibatchCKA(
        names_a,
        names_b,
        kernel=kernel,
        rbf_fraction=rbf_fraction,
        keep_batch_terms=keep_batch_terms,
        rbf_median=rbf_median,
    )


def _exact(
    names_a, names_b, kernel, rbf_fraction, keep_batch_terms, rbf_median=DEFAULT_RBF_MEDIAN
) -> ExactLinearCKA:
    check_rbf_median(rbf_median)  # linear only, but a misspelt convention is still refused
    return ExactLinearCKA(names_a, names_b)


def _exact_memory(widths_a, widths_b, n_examples) -> MemoryNeed:
    """float64 co-moments: sum(d_A) x sum(d_B) values (sum(d_A)^2 when symmetric)."""
    pairs = sum(widths_a) * sum(widths_a if widths_b is None else widths_b)
    return MemoryNeed(
        8 * pairs,
        "exact CKA of these layers",
        "reduce them with --reduce avgpool or use --estimator minibatch",
    )


def _debiased(
    names_a, names_b, kernel, rbf_fraction, keep_batch_terms, rbf_median=DEFAULT_RBF_MEDIAN
) -> DebiasedCKA:
    return DebiasedCKA(
        names_a, names_b, kernel=kernel, rbf_fraction=rbf_fraction, rbf_median=rbf_median
    )


def _debiased_memory(widths_a, widths_b, n_examples) -> MemoryNeed:
    """One float64 n x n U-centred Gram matrix per layer plus the float32 n x d features."""
    widths = [*widths_a, *(widths_b or [])]
    return MemoryNeed(
        8 * len(widths) * n_examples**2 + 4 * n_examples * sum(widths),
        f"debiased CKA on {n_examples} samples",
        "use --estimator minibatch or fewer --num-samples",
    )


CKA_ESTIMATORS: dict[str, EstimatorSpec] = {
    "minibatch": EstimatorSpec(
        _minibatch, ("linear", "rbf"), bootstrap=True, token_rows=True, grams=True
    ),
    "exact": EstimatorSpec(
        _exact, ("linear",), bootstrap=False, token_rows=True, memory=_exact_memory
    ),
    "debiased": EstimatorSpec(
        _debiased, ("linear", "rbf"), bootstrap=False, token_rows=False, memory=_debiased_memory
    ),
}


def estimator_spec(name: str) -> EstimatorSpec:
    """The registry entry of ``name``; an InputError naming the choices if there is none."""
    if name not in CKA_ESTIMATORS:
        raise InputError(f"unknown --estimator {name!r}; use {', '.join(CKA_ESTIMATORS)}")
    return CKA_ESTIMATORS[name]
