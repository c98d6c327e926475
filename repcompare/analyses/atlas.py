"""``repcompare atlas M1 ... Mk``: every layer of every model against every other, by one or
more measures, from one pass over the data.

All models run forward together, batch by batch (or are read from their activation
files, in any mix). Linear CKA goes into one symmetric minibatch accumulator over the
layers of all models, so every layer pair of every model pair comes from one matrix
product per batch, and ``block(a, b)`` of the result equals ``repcompare cka a b`` on the
same images. The Procrustes and angular shape metrics stream too when every layer is at
most ``sample`` wide and every pair's cross-covariance fits in memory (see
``repcompare.similarity.sampled.streamable``). The other measures
(``repcompare.similarity.MEASURES``) need the whole sample at once, and so do the shape
metrics of wide layers; they run on a fixed sample: the first ``sample`` images of the seeded
order (a seeded random subset with ``--order random``), kept per layer as the smallest
matrix that gives the measure exactly (``repcompare.similarity.sampled``); the result
reports which way each measure was computed.
"""

from __future__ import annotations

import time
import warnings

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
from repcompare.options import AtlasOptions
from repcompare.progress import Advance
from repcompare.results.atlas import AtlasResult, AtlasSettings
from repcompare.sides.aligned import AlignedBatch, AlignedStream
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side
from repcompare.similarity import MinibatchCKA
from repcompare.similarity.measures import measure_spec
from repcompare.similarity.sampled import (
    FixedSampleMeasure,
    fixed_sample_bytes,
    measure_estimator,
)
from repcompare.similarity.shares import Combinable
from repcompare.similarity.small_sample import sample_caveat

STREAMED = "cka"


class AtlasRun:
    """The atlas of several sides as a ``Run`` (``repcompare.analyses.run``): checked at
    construction; ``start`` sizes the accumulators and chooses how each measure is
    computed over the stream's images."""

    def __init__(
        self, sides: list[Side], options: AtlasOptions, plan: InputPlan, device: torch.device
    ):
        if len(sides) < 2:
            raise InputError("an atlas compares two models or more; give at least two")
        if any(s.reduction == "tokens" for s in sides):
            raise InputError("the atlas measures one row per image; drop --reduce tokens")
        for name in options.measure:
            measure_spec(name)  # an unknown name lists the registry's
        self.sides, self.options, self.plan, self.device = sides, options, plan, device
        self.grams = set(options.measure) <= {STREAMED}
        grams = [s for s in sides if s.is_grams]
        if grams and not self.grams:
            beyond = ", ".join(m for m in options.measure if m != STREAMED)
            raise InputError(
                f"--measure {beyond} needs each layer's features but {grams[0].file.path} "
                "holds only per-batch Gram matrices; use --measure cka, or extract the model "
                "with --store activations"
            )
        self.reference = _reference(sides, options.reference)
        self.started = time.perf_counter()
        self.names = [f"{s.label}: {layer}" for s in sides for layer in s.layers]
        self.widths = [w for s in sides for w in s.widths()]
        self.estimators: dict = {}
        self.methods: dict[str, str] = {}
        self.caveats: dict[str, str] = {}
        self.sampled: list[FixedSampleMeasure] = []

    def start(self, stream: AlignedStream) -> None:
        names, widths, options = self.names, self.widths, self.options
        total, batch = len(names), stream.batch_size
        gram_first = stream.gram_first(self.sides)
        held = (
            "one model's activations and every layer's Gram matrix"
            if gram_first
            else "every layer's activations"
        )
        check_memory(
            minibatch_bytes(total, None, batch)
            + stream_bytes([s.widths() for s in self.sides], batch, 1, gram_first),
            f"the atlas of {total} layers (an accumulator of {total} x {total} CKA terms, and "
            f"{held} for a batch of {batch})",
            "use fewer models or --layers, a smaller --batch-size, or --reduce avgpool",
        )
        estimators = {STREAMED: MinibatchCKA(names, keep_batch_terms=False)}
        methods = {STREAMED: f"minibatch linear CKA over all {stream.num_samples} images"}
        budget = MEMORY_FRACTION * available_memory()
        for name in options.measure:
            if name != STREAMED:
                estimators[name], methods[name] = measure_estimator(
                    measure_spec(name),
                    names,
                    None,
                    widths,
                    None,
                    options.sample,
                    stream.num_samples,
                    budget,
                )
        self.estimators = {name: estimators[name] for name in options.measure}
        for name, estimator in self.estimators.items():
            fixed = isinstance(estimator, FixedSampleMeasure)
            caveat = sample_caveat(name, estimator.sample if fixed else stream.num_samples, widths)
            if caveat is not None and caveat.refuse:
                raise InputError(caveat.sentence)
            if caveat is not None:
                warnings.warn(caveat.sentence, RepcompareWarning, stacklevel=2)
                self.caveats[name] = caveat.sentence
                methods[name] = f"{methods[name]}; {caveat.short}"
        self.methods = {name: methods[name] for name in options.measure}
        self.sampled = [e for e in self.estimators.values() if isinstance(e, FixedSampleMeasure)]
        apart = [n for n, e in self.estimators.items() if not isinstance(e, Combinable)]
        if stream.job.distributed and apart:
            raise InputError(
                f"--measure {', '.join(apart)} does not run across the processes of a torchrun "
                "job here; run it in one process, or use --measure cka"
            )
        if self.sampled:
            check_memory(
                sum(fixed_sample_bytes(e.spec, widths, e.sample) for e in self.sampled),
                f"the fixed sample of {self.sampled[0].sample} images for "
                f"{', '.join(e.spec.name for e in self.sampled)}",
                "use a smaller --sample, fewer --layers, or --reduce avgpool",
            )

    def update(self, batch: AlignedBatch) -> None:
        feats = [x for per_side in batch.feats for x in per_side[0]]
        for estimator in self.estimators.values():
            estimator.update(feats)

    def result(self, stream: AlignedStream) -> AtlasResult:
        """Every measure over every batch given, by every process."""
        for estimator in self.estimators.values():
            stream.job.combine(estimator)
        matrices = {name: e.result().values for name, e in self.estimators.items()}
        settings = AtlasSettings(
            measures=list(self.options.measure),
            methods=self.methods,
            n_examples=stream.num_samples,
            n_sample=self.sampled[0].sample if self.sampled else None,
            batch_size=stream.batch_size,
            seed=self.plan.seed,
            device=str(self.device),
            caveats=self.caveats,
        )
        return AtlasResult(
            [s.label for s in self.sides],
            [list(s.layers) for s in self.sides],
            matrices,
            settings,
            {s.label: s.provenance() for s in self.sides},
            self.reference,
            time.perf_counter() - self.started,
        )


def draw_atlas(
    sides: list[Side],
    options: AtlasOptions,
    plan: InputPlan,
    device: torch.device,
    advance: Advance | None = None,
    job: Job = ONE_PROCESS,
) -> AtlasResult:
    """The atlas of ``sides`` over the planned images (see the module docstring); in a
    torchrun ``job`` each process takes its share of the batches and every process gets
    the whole result. ``advance(examples_done_now, total_examples)`` after each batch."""
    run = AtlasRun(sides, options, plan, device)
    (result,), _ = run_pass([run], plan, device, job=job, advance=advance)
    return result


def _reference(sides: list[Side], wanted: str | None) -> str | None:
    """The label of the reference model: ``wanted`` as a label, a 1-based position, or the
    start of a label; None when none is asked for."""
    if wanted is None:
        return None
    labels = [s.label for s in sides]
    if wanted in labels:
        return wanted
    if wanted.isdigit() and 1 <= int(wanted) <= len(labels):
        return labels[int(wanted) - 1]
    matches = [label for label in labels if wanted in label]
    if len(matches) == 1:
        return matches[0]
    raise InputError(
        f"--reference {wanted!r} names none of the models ({', '.join(labels)}) exactly once; "
        "give one of these labels or a position from 1"
    )
