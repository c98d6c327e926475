"""Input guards shared by the CKA estimators.

Every estimator refuses NaN/Inf activations (naming the layer) and detects
degenerate layers: a layer whose self-HSIC is zero (a constant
representation, e.g. a dead ReLU block) has no defined CKA. Such layers are
reported by name; their similarities are never returned as numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from repcompare.errors import InputError
from repcompare.similarity.gram import Batch, BatchGram, as_matrix

MIN_EXAMPLES_UNBIASED = 4
DEGENERATE_RTOL = 1e-9
# float64 centring leaves ~1e-32 of the raw second moment on a constant layer
CONSTANT_RTOL = 1e-20


class NonFiniteActivationError(InputError):
    """A layer's activations contain NaN or Inf."""

    def __init__(self, layer: str):
        self.layer = layer
        super().__init__(
            f"layer {layer!r} has NaN or Inf activations (or values too large for float32); "
            "check the checkpoint and the input preprocessing"
        )


class DegenerateRepresentationError(InputError):
    """A representation with zero self-HSIC (constant over the examples)."""


class BatchShapeError(InputError):
    """A batch that an estimator cannot use (too few examples, mismatched counts)."""


def check_sides(
    symmetric: bool, feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor] | None
) -> None:
    """Refuse a batch unless it has side A layers and ``feats_b`` exactly when not ``symmetric``."""
    if symmetric != (feats_b is None):
        raise BatchShapeError("give feats_b exactly when the accumulator was built with names_b")
    if not feats_a:
        raise BatchShapeError("a batch needs at least one layer on side A")


def prepare_batch(
    feats: Sequence[Batch],
    names: Sequence[str],
    min_examples: int,
) -> list[Batch]:
    """Flatten each ``(n, ...)`` tensor to ``(n, d)`` (a ``BatchGram`` stays as it is) after
    checking the example counts."""
    if len(feats) != len(names):
        raise BatchShapeError(
            f"got {len(feats)} activation tensors for {len(names)} layers; "
            "pass one tensor per layer, in the layer order given to the estimator"
        )
    matrices = [x if isinstance(x, BatchGram) else as_matrix(x) for x in feats]
    counts = {x.shape[0] for x in matrices}
    if len(counts) > 1:
        raise BatchShapeError(
            f"layers of one batch have different example counts {sorted(counts)}; "
            "every layer must see the same examples"
        )
    n = counts.pop() if counts else 0
    if n < min_examples:
        raise BatchShapeError(
            f"a batch of {n} examples is too small: this estimator needs at least "
            f"{min_examples} per batch; use a larger batch size"
        )
    return matrices


def check_finite(summary: torch.Tensor, layer: str) -> None:
    """Raise naming ``layer`` unless ``summary`` is finite.

    ``summary`` is a cheap reduction of the layer's activations that any NaN or
    Inf propagates into (its Gram matrix, or its column means), so one check of
    m x m or d values replaces a pass over every activation.
    """
    if not torch.isfinite(summary).all():
        raise NonFiniteActivationError(layer)


def check_all_finite(summaries: torch.Tensor, layers: Sequence[str]) -> None:
    """Raise naming the first of ``layers`` whose entry of ``summaries`` is NaN or Inf
    (one summary per layer, as in :func:`check_finite`; one host read for all of them)."""
    bad = torch.nonzero(~torch.isfinite(summaries))
    if len(bad):
        raise NonFiniteActivationError(layers[int(bad[0])])


class FiniteChecks:
    """NaN/Inf checks of per-layer summaries that never make the host wait for a GPU.

    On the CPU ``add`` checks at once. On CUDA the summaries are copied to pinned host
    memory behind the work that computes them, and read by a later ``add`` once that
    copy has landed, or by ``finish``: an error is raised a few batches late at most.
    """

    def __init__(self):
        self._pending: list[tuple[torch.Tensor, torch.cuda.Event, tuple[str, ...]]] = []

    def add(self, summaries: torch.Tensor, layers: Sequence[str]) -> None:
        if summaries.device.type != "cuda":
            check_all_finite(summaries, layers)
            return
        copied = torch.empty(summaries.shape, dtype=summaries.dtype, pin_memory=True)
        copied.copy_(summaries, non_blocking=True)
        landed = torch.cuda.Event()
        landed.record()
        self._pending.append((copied, landed, tuple(layers)))
        while self._pending and self._pending[0][1].query():
            copied, _, names = self._pending.pop(0)
            check_all_finite(copied, names)

    def finish(self) -> None:
        """Check everything still in flight (waits for it)."""
        for copied, landed, names in self._pending:
            landed.synchronize()
            check_all_finite(copied, names)
        self._pending.clear()


def degenerate(
    self_terms: torch.Tensor, scales: torch.Tensor, rtol: float = DEGENERATE_RTOL
) -> torch.Tensor:
    """Boolean mask: a self-term that is zero up to rounding relative to ``scales``."""
    return self_terms <= rtol * scales


def prepare_pair(
    x: torch.Tensor, y: torch.Tensor, min_examples: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n, ...)`` representations X and Y of the same examples as float64 ``(n, p)``, ``(n, q)``.

    Y moves to X's device; NaN/Inf activations are refused naming the side.
    """
    x, y = prepare_batch([x, y], ["X", "Y"], min_examples)
    x = x.to(torch.float64)
    y = y.to(x.device, torch.float64)
    check_finite(x, "X")
    check_finite(y, "Y")
    return x, y


def centred_float64(x: torch.Tensor, side: str) -> torch.Tensor:
    """``X - 1 mean(X)`` in float64; a DegenerateRepresentationError if X is constant."""
    x = x.to(torch.float64)
    xc = x - x.mean(dim=0, keepdim=True)
    if degenerate(xc.square().sum(), x.square().sum(), rtol=CONSTANT_RTOL):
        raise DegenerateRepresentationError(
            f"representation {side} is constant over the examples, so its similarity is "
            "undefined; check that the layer is not dead for these inputs"
        )
    return xc
