"""``repcompare class-fit``: how well each layer fits the classes (Grigg et al. 2021,
Song et al. 2024).

Per layer of every model, over the same images:

- ``class_cka``: minibatch CKA (unbiased HSIC_1, linear kernel) between the
  layer's representation and the one-hot label matrix, which is one more
  "layer" of the accumulator;
- ``intra``, ``inter``, ``inter_min``, ``ratio``: the crowding measures on
  L2-normalised, spatially pooled features, accumulated per class;
- ``knn`` and ``probe``: cosine kNN and linear-probe accuracy on the pooled
  features, trained and tested on one seeded, stratified split;
- with ``tokens`` (Shekhar et al. 2023), ``knn_F`` and ``probe_F`` on the same
  split for three features F of a layer's whole output: ``cls`` the class
  token, ``mean`` the mean of the patch tokens (the positions of a map),
  ``patch`` the single patch token at the centre of the grid
  (``repcompare.capture.reduce.centre_position``). A feature a layer does not
  have (no class token; no positions at all) is undefined (NaN), named in a
  warning.

The pooled (and token) features of all examples are kept (float32) for kNN
and the probe; everything else streams.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict

import numpy as np
import torch

from repcompare.analyses.memory import check_memory
from repcompare.analyses.run import run_pass
from repcompare.capture.layout import Layout
from repcompare.capture.reduce import POOLED_AXES, centre_position, pool, pooled_width, token_grid
from repcompare.distributed import ONE_PROCESS, Job
from repcompare.errors import InputError, RepcompareWarning
from repcompare.options import ClassFitOptions
from repcompare.progress import Advance
from repcompare.results.class_fit import (
    TOKEN_FEATURES,
    ClassFit,
    ClassFitResult,
    ClassFitSettings,
)
from repcompare.results.curves import mixed_roles
from repcompare.sides.aligned import AlignedBatch, AlignedStream
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side
from repcompare.similarity import CrowdingStats, MinibatchCKA
from repcompare.similarity.probes import knn_accuracy, linear_probe_accuracy, stratified_split

LABELS = "labels (one-hot)"


def token_features(
    x: torch.Tensor, shape: tuple[int, ...], layout: Layout | None
) -> dict[str, torch.Tensor | None]:
    """The ``TOKEN_FEATURES`` of a batch ``x`` of flattened outputs of ``shape``: the class
    token, the mean of the patch tokens, the centre patch token; None where undefined."""
    if layout is None or layout.kind not in POOLED_AXES:
        return dict.fromkeys(TOKEN_FEATURES)
    whole = x.reshape(len(x), *shape)
    grid = token_grid(whole, layout)
    cls = whole[:, 0] if layout.kind == "tokens" and layout.class_token else None
    return {"cls": cls, "mean": grid.mean(dim=1), "patch": grid[:, centre_position(shape, layout)]}


class _SideMeasures:
    """The accumulators of one side: class CKA, crowding, and the pooled (and token) features
    kept."""

    def __init__(self, side: Side, num_classes: int, keep_batch_terms: bool, tokens: bool):
        self.side = side
        self.shapes = side.layer_shapes()
        self.layouts = side.layer_layouts()
        self.class_cka = MinibatchCKA(side.layers, [LABELS], keep_batch_terms=keep_batch_terms)
        self.crowding = CrowdingStats(side.layers, num_classes)
        self.pooled: list[list[torch.Tensor]] = [[] for _ in side.layers]
        self.tokens: list[dict[str, list[torch.Tensor]]] | None = (
            [{f: [] for f in TOKEN_FEATURES} for _ in side.layers] if tokens else None
        )

    def update(self, feats: list[torch.Tensor], labels: torch.Tensor, onehot: torch.Tensor):
        layers = list(zip(feats, self.shapes, self.layouts, self.side.layers, strict=True))
        pooled = [pool(x, shape, self.side.reduction, layout, n) for x, shape, layout, n in layers]
        self.class_cka.update(feats, [onehot])
        self.crowding.update(pooled, labels)
        for kept, x in zip(self.pooled, pooled, strict=True):
            kept.append(x.to("cpu", torch.float32))
        if self.tokens is None:
            return
        for kept, (x, shape, layout, _) in zip(self.tokens, layers, strict=True):
            for feature, value in token_features(x, shape, layout).items():
                if value is not None:
                    kept[feature].append(value.to("cpu", torch.float32))

    def combine(self, job: Job) -> None:
        """Hold the batches of every process of ``job``: sums added, kept features gathered
        in rank order (the batch order)."""
        job.combine(self.class_cka)
        job.combine(self.crowding)
        parts = job.gather((self.pooled, self.tokens))
        self.pooled = [
            [x for pooled, _ in parts for x in pooled[layer]] for layer in range(len(self.pooled))
        ]
        if self.tokens is not None:
            self.tokens = [
                {f: [x for _, tokens in parts for x in tokens[layer][f]] for f in TOKEN_FEATURES}
                for layer in range(len(self.tokens))
            ]

    def undefined(self, feature: str) -> list[str]:
        """The layers without token feature ``feature``."""
        return [
            n for n, kept in zip(self.side.layers, self.tokens, strict=True) if not kept[feature]
        ]

    def result(
        self, labels: torch.Tensor, split, options: ClassFitOptions, device: torch.device
    ) -> ClassFit:
        """Every measure per layer; kNN and the probe run on ``device``."""
        train, test = (torch.from_numpy(part) for part in split)
        class_cka = self.class_cka.result().values[:, 0]
        measures = {"class_cka": class_cka, **self.crowding.result()}

        def accuracies(chunks: list[torch.Tensor]) -> tuple[float, float]:
            if not chunks:
                return np.nan, np.nan
            x = torch.cat(chunks).to(device)
            parts = (x[train], labels[train], x[test], labels[test])
            knn = knn_accuracy(*parts, k=options.knn_k)
            return knn, linear_probe_accuracy(*parts, l2=options.probe_l2)

        knn, probe = np.array([accuracies(chunks) for chunks in self.pooled]).T
        measures |= {"knn": knn, "probe": probe}
        for feature in TOKEN_FEATURES if self.tokens else ():
            knn, probe = np.array([accuracies(kept[feature]) for kept in self.tokens]).T
            measures |= {f"knn_{feature}": knn, f"probe_{feature}": probe}
        constant = np.isnan(class_cka)
        measures = {k: np.where(constant, np.nan, v) for k, v in measures.items()}
        roles = mixed_roles(self.side.layers, self.side.roles)
        fit = ClassFit(self.side.label, list(self.side.layers), measures, roles=roles)
        if options.bootstrap:
            low, high = self.class_cka.bootstrap(options.bootstrap, options.seed)
            fit.class_ci = (low[:, 0], high[:, 0])
        return fit


def _check_pooled_memory(sides: list[Side], n: int, tokens: bool) -> None:
    widths = (1 + 3 * tokens) * sum(
        pooled_width(shape, s.reduction, layout, layer)
        for s in sides
        for shape, layout, layer in zip(s.layer_shapes(), s.layer_layouts(), s.layers, strict=True)
    )
    check_memory(
        4 * n * widths,
        f"keeping the pooled features of {n} images for kNN and the probe",
        "use fewer --num-samples or fewer --layers",
    )


class ClassFitRun:
    """The class-fit measures of several sides as a ``Run`` (``repcompare.analyses.run``):
    the options are checked at construction. Unless ``required``, unlabelled images make
    the run skip itself (its result is None) instead of refusing."""

    def __init__(
        self,
        sides: list[Side],
        options: ClassFitOptions,
        device: torch.device,
        required: bool = True,
    ):
        for side in sides:
            if side.reduction == "tokens":
                raise InputError(
                    "class-fit measures one row per image, not token rows; drop --reduce "
                    "tokens (class-fit --tokens compares the class token, the mean and one "
                    "patch token)"
                )
            if options.tokens and side.reduction != "flatten":
                where = side.file.path if side.is_file else side.label
                raise InputError(
                    f"class-fit --tokens needs every token of each layer but {where} is "
                    f"reduced with {side.reduction!r}; drop --reduce (or extract the file "
                    "with --reduce flatten)"
                )
        for file in (s.file for s in sides if s.is_grams):
            raise InputError(
                f"class-fit needs each layer's features but {file.path} holds only per-batch Gram "
                "matrices; extract the model with --store activations (the default)"
            )
        for file in (s.file for s in sides if s.is_file):
            if file.settings.view_size:
                raise InputError(
                    f"{file.path} holds augmented views ({file.settings.augment}) but "
                    "class-fit measures the images themselves; extract a file without "
                    "--augment, or give the MODEL spec"
                )
        self.sides, self.options, self.device, self.required = sides, options, device, required
        self.grams = False
        self.started = time.perf_counter()
        self.per_side: list[_SideMeasures] = []
        self.labels: list[torch.Tensor] = []
        self.skipped = False

    def start(self, stream: AlignedStream) -> None:
        """Check that the images are labelled and the kept features fit; set up."""
        if stream.num_classes is None and not self.required:
            self.skipped = True
            return
        if stream.num_classes is None:
            raise InputError(
                "class-fit needs labelled images but this data set has none; use class "
                "subfolders, cifar10:PATH, an .npz with labels, or the builtin data"
            )
        _check_pooled_memory(self.sides, stream.num_samples, self.options.tokens)
        n_train = stream.num_samples - round(self.options.test_fraction * stream.num_samples)
        if self.options.knn_k >= n_train:  # every vote would be the whole training set's
            raise InputError(
                f"--knn-k {self.options.knn_k} needs more training images than neighbours: this "
                f"run trains on about {n_train} of {stream.num_samples} images (--test-fraction "
                f"{self.options.test_fraction}); use a smaller --knn-k or more images"
            )
        self.num_classes = stream.num_classes
        self.per_side = [
            _SideMeasures(s, stream.num_classes, self.options.bootstrap > 0, self.options.tokens)
            for s in self.sides
        ]

    def update(self, batch: AlignedBatch) -> None:
        """Add one batch: its labels and every side's layers."""
        if self.skipped:
            return
        feats = [per_side[0] for per_side in batch.feats]
        batch_labels = torch.from_numpy(batch.labels)
        onehot = torch.nn.functional.one_hot(batch_labels, self.num_classes).float()
        for measures, side_feats in zip(self.per_side, feats, strict=True):
            measures.update(side_feats, batch_labels, onehot.to(side_feats[0].device))
        self.labels.append(batch_labels)

    def result(self, stream: AlignedStream) -> ClassFitResult | None:
        """Every measure of every side over the batches given (``stream``: their source; in a
        torchrun job, over every process's batches); None when skipped."""
        if self.skipped:
            return None
        options, device = self.options, self.device
        if stream.job.distributed:
            for measures in self.per_side:
                measures.combine(stream.job)
            self.labels = [x for part in stream.job.gather(self.labels) for x in part]
        all_labels = torch.cat(self.labels)
        split = stratified_split(all_labels.numpy(), options.test_fraction, options.seed)
        fits = [m.result(all_labels, split, options, device) for m in self.per_side]
        for measures in self.per_side if options.tokens else ():
            _warn_undefined(measures)
        settings = ClassFitSettings(
            **asdict(options),
            num_classes=self.num_classes,
            n_train=len(split[0]),
            n_test=len(split[1]),
            batch_size=stream.batch_size,
            n_examples=len(all_labels),
            device=str(device),
        )
        return ClassFitResult(
            fits,
            stream.fingerprint(),
            settings,
            {s.label: s.provenance() for s in self.sides},
            time.perf_counter() - self.started,
        )


def measure_class_fit(
    sides: list[Side],
    options: ClassFitOptions,
    plan: InputPlan,
    device: torch.device,
    advance: Advance | None = None,
    job: Job = ONE_PROCESS,
) -> ClassFitResult:
    """Every measure of every selected layer of every side over the planned images; in a
    torchrun ``job`` each process takes its share of the batches and every process gets
    the whole result. ``advance(examples_done_now, total_examples)`` after each batch."""
    (result,), _ = run_pass(
        [ClassFitRun(sides, options, device)], plan, device, job=job, advance=advance
    )
    return result


def _warn_undefined(measures: _SideMeasures) -> None:
    """Name the layers of one side whose token features are undefined."""
    none = measures.undefined("mean")
    no_class = [n for n in measures.undefined("cls") if n not in none]
    label = measures.side.label
    if no_class:
        warnings.warn(
            f"{label}: {len(no_class)} layer(s) have no class token, so their cls feature is "
            f"undefined: {', '.join(no_class)}",
            RepcompareWarning,
            stacklevel=3,
        )
    if none:
        warnings.warn(
            f"{label}: {len(none)} layer(s) have no token positions (not tokens or a map), so "
            f"their token features are undefined: {', '.join(none)}",
            RepcompareWarning,
            stacklevel=3,
        )
