"""``repcompare invariance``: what each layer learns to ignore (Grigg et al. 2021).

The invariance of layer l to augmentation T is the minibatch CKA between the
layer's representations of K views of the same images, each view drawn
independently from T, averaged over the K (K - 1) / 2 view pairs:

    inv_l = mean_{i < j} CKA(X_l^(view i), X_l^(view j))

1 means the layer represents every view alike (fully invariant). Views depend
only on (seed, sample, view number), and all models of one run are streamed
together (or fed a file's recorded views), so every model sees the identical
augmented images; the run reports their fingerprint per augmentation. With
``--reduce tokens`` X_l holds token rows, the same seeded (image, position)
rows in every view, so the CKA compares each patch with itself across views.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from repcompare.analyses.run import run_pass
from repcompare.data.augment import AUGMENTATIONS
from repcompare.distributed import ONE_PROCESS, Job
from repcompare.errors import InputError
from repcompare.progress import Advance
from repcompare.results.curves import LayerCurve, mixed_roles
from repcompare.results.invariance import InvarianceResult, InvarianceSettings
from repcompare.sides.aligned import AlignedBatch, AlignedStream
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side, check_token_sides
from repcompare.similarity import MinibatchCKA
from repcompare.similarity.minibatch import percentile_interval

DEFAULT_AUGMENTATION = "simclr"


@dataclass(frozen=True)
class InvarianceOptions:
    """Each augmentation of ``augment`` and the ``views`` of an image (None: simclr and 2
    views, or the files' own), bootstrap resamples and their seed."""

    augment: tuple[str, ...] | None = None
    views: int | None = None
    bootstrap: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.augment is not None:  # each augmentation once, in the order given
            object.__setattr__(self, "augment", tuple(dict.fromkeys(self.augment)))
        for name in self.augment or ():
            if name not in AUGMENTATIONS:
                raise InputError(
                    f"unknown augmentation {name!r}; use one of {', '.join(AUGMENTATIONS)}"
                )
        if self.views is not None and self.views < 2:
            raise InputError(f"--views {self.views} leaves no pair of views; use --views 2 or more")


def view_pair_mean(values: np.ndarray, layers: int, views: int) -> np.ndarray:
    """Mean over view pairs i < j of ``values[..., i*L + l, j*L + l]``, per layer l."""
    if views < 2:
        raise ValueError("invariance needs at least 2 views")
    layer = np.arange(layers)
    pairs = [
        values[..., i * layers + layer, j * layers + layer]
        for i, j in itertools.combinations(range(views), 2)
    ]
    return np.mean(pairs, axis=0)


def _passes(sides: list[Side], options: InvarianceOptions) -> list[tuple[str, int]]:
    """(augmentation, views) of each pass over the data: the options', or the files' own."""
    files = [s.file for s in sides if s.is_file]
    if not files:
        views = options.views or 2
        return [(name, views) for name in options.augment or (DEFAULT_AUGMENTATION,)]
    first = files[0].settings
    if not first.view_size or first.views < 2:
        held = "no augmented views" if not first.view_size else "a single augmented view"
        raise InputError(
            f"{files[0].path} holds {held}; extract it with --views 2 --augment simclr "
            "(or another augmentation), or give the MODEL spec instead"
        )
    if options.augment not in (None, (first.augment,)):
        raise InputError(
            f"{files[0].path} holds views augmented with {first.augment!r}; drop --augment, or "
            "give MODEL specs to compute other augmentations on the fly"
        )
    if options.views not in (None, first.views):
        raise InputError(f"{files[0].path} holds {first.views} views; drop --views")
    return [(first.augment, first.views)]


class InvarianceRun:
    """The invariance of several sides to one augmentation as a ``Run``
    (``repcompare.analyses.run``): every view of a layer is a layer of one minibatch CKA
    accumulator per side; the result holds one curve per side."""

    def __init__(
        self,
        sides: list[Side],
        augmentation: str,
        views: int,
        options: InvarianceOptions,
        plan: InputPlan,
        device: torch.device,
    ):
        self.sides, self.augmentation, self.views = sides, augmentation, views
        self.options, self.plan, self.device = options, plan, device
        self.started = time.perf_counter()
        self.accumulators: list[MinibatchCKA] = []
        self.grams = True

    def start(self, stream: AlignedStream) -> None:
        self.accumulators = [
            MinibatchCKA(
                [f"{layer} (view {v})" for v in range(self.views) for layer in s.layers],
                keep_batch_terms=self.options.bootstrap > 0,
            )
            for s in self.sides
        ]

    def update(self, batch: AlignedBatch) -> None:
        for accumulator, per_view in zip(self.accumulators, batch.feats, strict=True):
            accumulator.update([x for view in per_view for x in view])

    def result(self, stream: AlignedStream) -> InvarianceResult:
        """One curve per side over every batch given, by every process."""
        options, views, curves = self.options, self.views, []
        for side, accumulator in zip(self.sides, self.accumulators, strict=True):
            stream.job.combine(accumulator)
            layers = len(side.layers)
            curve = LayerCurve(
                side.label,
                self.augmentation,
                list(side.layers),
                view_pair_mean(accumulator.result().values, layers, views),
                roles=mixed_roles(side.layers, side.roles),
            )
            if options.bootstrap:
                resampled = accumulator.resample(options.bootstrap, options.seed)
                curve.ci_low, curve.ci_high = percentile_interval(
                    view_pair_mean(resampled, layers, views)
                )
            curves.append(curve)
        files = [s.file for s in self.sides if s.is_file]
        tokens = self.sides[0].reduction == "tokens"
        settings = InvarianceSettings(
            augmentations=[self.augmentation],
            views=views,
            view_seed=files[0].settings.seed if files else self.plan.seed,
            bootstrap=options.bootstrap,
            batch_size=stream.batch_size,
            n_examples=stream.num_samples,
            device=str(self.device),
            reduce="tokens" if tokens else None,
            token_cap=self.plan.token_cap if tokens else None,
        )
        return InvarianceResult(
            curves,
            {self.augmentation: stream.fingerprint()},
            settings,
            {s.label: s.provenance() for s in self.sides},
            time.perf_counter() - self.started,
        )


def measure_invariance(
    sides: list[Side],
    options: InvarianceOptions,
    plan: InputPlan,
    device: torch.device,
    advance: Advance | None = None,
    job: Job = ONE_PROCESS,
) -> InvarianceResult:
    """Invariance of every selected layer of every side, one pass per augmentation; in a
    torchrun ``job`` each process takes its share of the batches and every process gets
    the whole result. ``advance(examples_done_now, total_examples)`` after each batch."""
    check_token_sides(sides)
    passes = _passes(sides, options)
    result = None
    for augmentation, views in passes:
        run_plan = replace(plan, augment=augmentation, views=views)
        run = InvarianceRun(sides, augmentation, views, options, run_plan, device)
        (found,), _ = run_pass(
            [run], run_plan, device, views=views, job=job, advance=advance, passes=len(passes)
        )
        result = found if result is None else result.merged(found)
    return result
