"""``repcompare cka``: CKA between every selected layer of side A and of side B.

Sides are activation files or model specs captured on the fly (never written
to disk), in any combination; ``aligned.py`` guarantees that the batches of
both sides hold the same images in the same order. With ``--reduce tokens``
the examples are token rows: the same seeded (image, position) rows of every
batch on both sides (see ``repcompare.capture.reduce``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from repcompare.activations import InputPlan
from repcompare.analyses.aligned import aligned_batches
from repcompare.analyses.fields import set_fields
from repcompare.analyses.memory import check_memory
from repcompare.analyses.reported import Reported
from repcompare.analyses.sides import Provenance, Side, check_token_sides
from repcompare.errors import InputError
from repcompare.similarity import (
    CKA_ESTIMATORS,
    EstimatorSpec,
    SimilarityMatrix,
    estimator_spec,
)

if TYPE_CHECKING:
    from repcompare.report.model import Report

ESTIMATORS = tuple(CKA_ESTIMATORS)
KERNELS = ("linear", "rbf")


@dataclass(frozen=True)
class CKAOptions:
    kernel: str = "linear"
    rbf_fraction: float = 0.8
    estimator: str = "minibatch"
    bootstrap: int = 0
    seed: int = 0


@dataclass(frozen=True)
class CKASettings:
    """How a CKA matrix was computed. ``n_examples`` counts its rows: images, or token rows
    with ``reduce="tokens"`` (at most ``token_cap`` per batch of ``batch_size`` images, from
    ``n_images`` images); the token fields are None otherwise."""

    kernel: str
    rbf_fraction: float
    estimator: str
    bootstrap: int
    seed: int
    batch_size: int
    n_examples: int
    device: str
    reduce: str | None = None
    token_cap: int | None = None
    n_images: int | None = None

    def to_dict(self) -> dict:
        return set_fields(self)


@dataclass
class CKAResult(Reported):
    """CKA between every selected layer of side A (rows, in depth order) and of side B
    (columns): ``matrix.values[i, j]`` for ``matrix.names_a[i]`` and ``matrix.names_b[j]``,
    NaN where a layer is constant (undefined); 95% intervals with ``bootstrap``.

    ``roles_a``/``roles_b`` mark the paper preset's block outputs and residual branches
    (``{layer: "block" | "residual"}``), which get heatmaps of their own.
    """

    side_a: str
    side_b: str
    matrix: SimilarityMatrix
    ci_low: np.ndarray | None
    ci_high: np.ndarray | None
    settings: CKASettings
    provenance_a: Provenance
    provenance_b: Provenance
    seconds: float
    roles_a: dict[str, str] = field(default_factory=dict)
    roles_b: dict[str, str] = field(default_factory=dict)

    def report(self) -> Report:
        from repcompare.report.cka import cka_report

        return cka_report(self)


def paired_batches(
    a: Side, b: Side, plan: InputPlan, device: torch.device, symmetric: bool
) -> tuple[Iterator[tuple[list, list | None, int]], int, int]:
    """Batches ``(feats_a, feats_b, images)`` of both sides over the same images; batch size;
    N."""
    stream = aligned_batches([a] if symmetric else [a, b], plan, device)
    pairs = (
        (batch.feats[0][0], None if symmetric else batch.feats[1][0], len(batch.labels))
        for batch in stream.batches
    )
    return pairs, stream.batch_size, stream.num_samples


def _estimators_with(declared: Callable[[EstimatorSpec], bool]) -> str:
    """The registered estimators whose entry ``declared`` holds for, as ``"a or b"``."""
    return " or ".join(name for name, spec in CKA_ESTIMATORS.items() if declared(spec))


def compare(
    a: Side,
    b: Side,
    options: CKAOptions,
    plan: InputPlan,
    device: torch.device,
    symmetric: bool = False,
    progress=None,
) -> CKAResult:
    """CKA between ``a.layers`` and ``b.layers`` over the planned (or recorded) images.

    ``progress(examples_done_now, total_examples)`` is called after each batch.
    """
    spec = estimator_spec(options.estimator)
    if options.kernel not in KERNELS:
        raise InputError(f"unknown --kernel {options.kernel!r}; use linear or rbf")
    if options.kernel not in spec.kernels:
        kernels = " or ".join(spec.kernels)
        raise InputError(
            f"--estimator {options.estimator} computes {kernels} CKA only; use --kernel {kernels}"
        )
    if options.bootstrap and not spec.bootstrap:
        raise InputError(
            "--bootstrap resamples minibatches; "
            f"use --estimator {_estimators_with(lambda s: s.bootstrap)}"
        )
    check_token_sides([a] if symmetric else [a, b])
    tokens = a.reduction == "tokens"
    if tokens and not spec.token_rows:
        raise InputError(
            "--reduce tokens samples token rows per batch; "
            f"use --estimator {_estimators_with(lambda s: s.token_rows)}"
        )
    started = time.perf_counter()
    batches, batch_size, n_samples = paired_batches(a, b, plan, device, symmetric)
    if spec.memory is not None:
        need = spec.memory(a.widths(), None if symmetric else b.widths(), n_samples)
        check_memory(need.bytes, need.what, need.fix)
    estimator = spec.build(
        a.layers,
        None if symmetric else b.layers,
        options.kernel,
        options.rbf_fraction,
        options.bootstrap > 0,
    )
    for feats_a, feats_b, images in batches:
        estimator.update(feats_a, feats_b)
        if progress:
            progress(images, n_samples)
    matrix = estimator.result()
    low = high = None
    if options.bootstrap:
        low, high = estimator.bootstrap(options.bootstrap, options.seed)
    settings = CKASettings(
        **asdict(options),
        batch_size=batch_size,
        n_examples=matrix.n_examples,
        device=str(device),
        reduce="tokens" if tokens else None,
        token_cap=plan.token_cap if tokens else None,
        n_images=n_samples if tokens else None,
    )
    return CKAResult(
        a.label,
        b.label,
        matrix,
        low,
        high,
        settings,
        a.provenance(),
        b.provenance(),
        time.perf_counter() - started,
        a.roles,
        b.roles,
    )
