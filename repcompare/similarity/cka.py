"""Centred kernel alignment of two representations of the same examples, on full data.

CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with HSIC_0 (biased, the
original CKA of Kornblith et al. 2019) or HSIC_1 (``debiased=True``: Kornblith's
debiased CKA). These functions hold all n x n Gram matrices in memory; for
many layers or many examples use :class:`MinibatchCKA` or :class:`ExactLinearCKA`.
"""

from __future__ import annotations

import torch

from repcompare.similarity.checks import (
    MIN_EXAMPLES_UNBIASED,
    DegenerateRepresentationError,
    check_finite,
    degenerate,
    prepare_batch,
)
from repcompare.similarity.gram import DEFAULT_RBF_FRACTION, DEFAULT_RBF_MEDIAN, gram
from repcompare.similarity.hsic import hsic_biased, hsic_unbiased
from repcompare.similarity.result import clip_rounding


def cka_from_grams(gram_x: torch.Tensor, gram_y: torch.Tensor, *, debiased: bool = False):
    """CKA of two n x n Gram matrices, in float64 (a 0-dim tensor), rounding clipped to +-1."""
    hsic = hsic_unbiased if debiased else hsic_biased
    self_x, self_y = hsic(gram_x, gram_x), hsic(gram_y, gram_y)
    for side, self_term, g in (("X", self_x, gram_x), ("Y", self_y, gram_y)):
        n = g.shape[0]
        normaliser = n * (n - 3) if debiased else (n - 1) ** 2
        scale = g.to(torch.float64).square().sum() / normaliser
        if degenerate(self_term, scale):
            raise DegenerateRepresentationError(
                f"representation {side} is constant over the examples, so its CKA is "
                "undefined; check that the layer is not dead for these inputs"
            )
    value = hsic(gram_x, gram_y) / torch.sqrt(self_x * self_y)
    clip_rounding(value.detach().cpu().numpy())  # raises on an excess beyond rounding
    return value.clamp(-1.0, 1.0)


def cka(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    kernel: str = "linear",
    debiased: bool = False,
    rbf_fraction: float = DEFAULT_RBF_FRACTION,
    rbf_median: str = DEFAULT_RBF_MEDIAN,
) -> torch.Tensor:
    """CKA of two representations ``(n, ...)`` of the same n examples, in float64.

    ``rbf_median`` is the RBF bandwidth convention (see :func:`gram.rbf_sigma_squared`).
    """
    x, y = prepare_batch([x, y], ["X", "Y"], MIN_EXAMPLES_UNBIASED if debiased else 2)
    gram_x = gram(x, kernel, rbf_fraction, rbf_median)
    gram_y = gram(y.to(x.device), kernel, rbf_fraction, rbf_median)
    check_finite(gram_x, "X")
    check_finite(gram_y, "Y")
    return cka_from_grams(gram_x, gram_y, debiased=debiased)
