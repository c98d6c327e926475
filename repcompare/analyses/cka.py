"""``repcompare cka``: CKA between every selected layer of side A and of side B.

Sides are activation files, Gram stores or model specs captured on the fly (never written
to disk), in any combination; ``aligned.py`` guarantees that the batches of
both sides hold the same images in the same order. With ``--reduce tokens``
the examples are token rows: the same seeded (image, position) rows of every
batch on both sides (see ``repcompare.capture.reduce``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict

import torch

from repcompare.analyses.memory import (
    MEMORY_FRACTION,
    available_memory,
    check_memory,
    minibatch_bytes,
    stream_bytes,
)
from repcompare.analyses.run import run_pass
from repcompare.distributed import ONE_PROCESS, Job
from repcompare.errors import InputError, RepcompareWarning
from repcompare.options import CKAOptions
from repcompare.progress import Advance
from repcompare.results.cka import CKAResult, CKASettings
from repcompare.sides.aligned import AlignedBatch, AlignedStream
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side, check_token_sides
from repcompare.similarity import (
    CKA_ESTIMATORS,
    RBF_MEDIANS,
    EstimatorSpec,
    estimator_spec,
)
from repcompare.similarity.measures import measure_spec
from repcompare.similarity.sampled import (
    FixedSampleMeasure,
    fixed_sample_bytes,
    measure_estimator,
)
from repcompare.similarity.shares import Combinable
from repcompare.similarity.small_sample import SampleCaveat, sample_caveat

ESTIMATORS = tuple(CKA_ESTIMATORS)
KERNELS = ("linear", "rbf")


def _estimators_with(declared: Callable[[EstimatorSpec], bool]) -> str:
    """The registered estimators whose entry ``declared`` holds for, as ``"a or b"``."""
    return " or ".join(name for name, spec in CKA_ESTIMATORS.items() if declared(spec))


def _chosen(options: CKAOptions) -> str:
    """The option that chose how CKA is computed: ``--measure`` beyond CKA, else
    ``--estimator``."""
    if options.measure != "cka":
        return f"--measure {options.measure}"
    return f"--estimator {options.estimator}"


class CKARun:
    """One CKA comparison as a ``Run`` (``repcompare.analyses.run``): the options are
    checked at construction; ``symmetric`` compares ``a`` with itself (one side)."""

    def __init__(
        self,
        a: Side,
        b: Side,
        options: CKAOptions,
        plan: InputPlan,
        device: torch.device,
        symmetric: bool = False,
    ):
        spec = estimator_spec(options.estimator)
        if options.kernel not in KERNELS:
            raise InputError(f"unknown --kernel {options.kernel!r}; use linear or rbf")
        if options.rbf_median not in RBF_MEDIANS:
            raise InputError(
                f"unknown --rbf-median {options.rbf_median!r}; use {' or '.join(RBF_MEDIANS)}"
            )
        if options.kernel not in spec.kernels:
            kernels = " or ".join(spec.kernels)
            raise InputError(
                f"--estimator {options.estimator} computes {kernels} CKA only; "
                f"use --kernel {kernels}"
            )
        if options.bootstrap and not spec.bootstrap:
            raise InputError(
                "--bootstrap resamples minibatches; "
                f"use --estimator {_estimators_with(lambda s: s.bootstrap)}"
            )
        check_token_sides([a] if symmetric else [a, b])
        self.tokens = a.reduction == "tokens"
        if self.tokens and not spec.token_rows:
            raise InputError(
                "--reduce tokens samples token rows per batch; "
                f"use --estimator {_estimators_with(lambda s: s.token_rows)}"
            )
        self.a, self.b, self.options, self.symmetric, self.spec = a, b, options, symmetric, spec
        self.plan, self.device = plan, device
        self.sides = [a] if symmetric else [a, b]
        self.grams = options.measure == "cka" and spec.grams
        for side in self.sides:
            if side.is_grams and not self.grams:
                raise InputError(
                    f"{_chosen(options)} needs each layer's features but {side.file.path} "
                    "holds only per-batch Gram matrices; use minibatch CKA (the default), or "
                    "extract the model with --store activations"
                )
        self.started = time.perf_counter()
        self.method: str | None = None
        self.caveat: SampleCaveat | None = None
        self.measure = measure_spec(options.measure)
        if options.measure != "cka":
            if options.bootstrap:
                raise InputError(
                    f"--bootstrap resamples minibatch CKA; drop it for --measure {options.measure}"
                )
            if self.tokens:
                raise InputError(
                    f"--measure {options.measure} compares images; drop --reduce tokens"
                )
            return  # the estimator is chosen by ``_check_memory``, which knows N
        self.estimator = spec.build(
            a.layers,
            None if symmetric else b.layers,
            options.kernel,
            options.rbf_sigma,
            options.bootstrap > 0,
            options.rbf_median,
        )

    def start(self, stream: AlignedStream) -> None:
        """Check the estimator against the stream's images and torchrun job."""
        self._check_memory(stream.num_samples)
        if self.grams:
            self._check_stream(stream)
        self._check_shares(stream.job)

    def _check_stream(self, stream: AlignedStream) -> None:
        """Refuse, with a sentence, minibatch CKA whose batch would not fit: the stream's
        activations or Grams (``stream_bytes``) and the accumulator's batch update, plus the
        kept per-batch terms of a bootstrap."""
        batch, n_a = stream.batch_size, len(self.a.layers)
        n_b = None if self.symmetric else len(self.b.layers)
        gram_first = stream.gram_first(self.sides)
        kept = 0
        if self.options.bootstrap:  # each batch's terms, then stacked to resample them
            terms = n_a * (n_b or n_a) + n_a + (n_b or n_a)
            kept = 16 * terms * -(-stream.num_samples // batch)
        check_memory(
            minibatch_bytes(n_a, n_b, batch)
            + kept
            + stream_bytes([s.widths() for s in self.sides], batch, 1, gram_first),
            f"minibatch CKA of {n_a} x {n_b or n_a} layers over batches of {batch}",
            "use fewer --layers, a smaller --batch-size, or --reduce avgpool",
        )

    def _check_memory(self, n_samples: int) -> None:
        """Refuse, with a sentence, an estimator that would not fit over ``n_samples``; for a
        measure beyond CKA, choose how it is computed: the shape metrics streamed over every
        image when their cross-covariances fit, else any measure on a fixed sample."""
        widths_a = self.a.widths()
        widths_b = None if self.symmetric else self.b.widths()
        widths = [*widths_a, *(widths_b or [])]
        if self.options.measure == "cka":
            if not self.tokens:  # token rows: a sample per batch, not the images
                self._check_sample(n_samples, widths)
            if self.spec.memory is not None:
                need = self.spec.memory(widths_a, widths_b, n_samples)
                check_memory(need.bytes, need.what, need.fix)
            return
        self.estimator, self.method = measure_estimator(
            self.measure,
            self.a.layers,
            None if self.symmetric else self.b.layers,
            widths_a,
            widths_b,
            self.options.sample,
            n_samples,
            MEMORY_FRACTION * available_memory(),
        )
        fixed = isinstance(self.estimator, FixedSampleMeasure)
        self._check_sample(self.estimator.sample if fixed else n_samples, widths)
        if fixed:
            check_memory(
                fixed_sample_bytes(self.measure, widths, self.estimator.sample),
                f"--measure {self.measure.name} on a fixed sample of {self.estimator.sample} "
                "images",
                "use a smaller --sample, fewer layers, or --reduce avgpool",
            )

    def _check_sample(self, n: int, widths: list[int]) -> None:
        """Refuse a measure that is degenerate on ``n`` images of these widths; warn of
        one that is biased, and keep the warning for the result (``small_sample``)."""
        caveat = sample_caveat(self.options.measure, n, widths, self.options.estimator)
        if caveat is None:
            return
        if caveat.refuse:
            raise InputError(caveat.sentence)
        warnings.warn(caveat.sentence, RepcompareWarning, stacklevel=2)
        self.caveat = caveat

    def update(self, batch: AlignedBatch) -> None:
        """Add one batch: A's layers, and B's (none when symmetric)."""
        self.estimator.update(batch.feats[0][0], None if self.symmetric else batch.feats[1][0])

    def _check_shares(self, job: Job) -> None:
        """Refuse, with a sentence, an estimator whose shares of a torchrun job cannot be
        combined."""
        if job.distributed and not isinstance(self.estimator, Combinable):
            raise InputError(
                f"{_chosen(self.options)} does not run across the processes of a torchrun job; "
                "run it in one process, or use --measure cka with --estimator minibatch, exact "
                "or debiased"
            )

    def result(self, stream: AlignedStream) -> CKAResult:
        """The matrix (and its intervals) over every batch given, by every process."""
        options, plan, n_samples = self.options, self.plan, stream.num_samples
        stream.job.combine(self.estimator)
        matrix = self.estimator.result()
        low = high = None
        if options.bootstrap:
            low, high = self.estimator.bootstrap(options.bootstrap, options.seed)
        chosen = asdict(options)
        chosen["rbf_fraction"] = chosen.pop("rbf_sigma")  # the name cka.json has always used
        settings = CKASettings(
            **chosen,
            batch_size=stream.batch_size,
            n_examples=matrix.n_examples,
            device=str(self.device),
            reduce="tokens" if self.tokens else None,
            token_cap=plan.token_cap if self.tokens else None,
            n_images=n_samples if self.tokens else None,
            method=self.method,
            caveat=self.caveat.sentence if self.caveat else None,
            caveat_short=self.caveat.short if self.caveat else None,
        )
        a, b = self.a, self.b
        return CKAResult(
            a.label,
            b.label,
            matrix,
            low,
            high,
            settings,
            a.provenance(),
            b.provenance(),
            time.perf_counter() - self.started,
            a.roles,
            b.roles,
        )


def compare(
    a: Side,
    b: Side,
    options: CKAOptions,
    plan: InputPlan,
    device: torch.device,
    symmetric: bool = False,
    advance: Advance | None = None,
    job: Job = ONE_PROCESS,
) -> CKAResult:
    """CKA between ``a.layers`` and ``b.layers`` over the planned (or recorded) images; in a
    torchrun ``job`` each process takes its share of the batches and every process gets
    the whole result. ``advance(examples_done_now, total_examples)`` after each batch."""
    run = CKARun(a, b, options, plan, device, symmetric)
    (result,), _ = run_pass([run], plan, device, job=job, advance=advance)
    return result
