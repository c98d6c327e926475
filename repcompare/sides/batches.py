"""Capturing a model's batches: the activations of one or more models over the same planned
inputs.

Data flows spec -> model -> batches -> activations: the input plan fixes which
images, in which order, with which augmented views; every model sees exactly
those images (each through its own preprocessing), batch by batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import LayerGraph
from repcompare.capture.models import LoadedModel
from repcompare.capture.reduce import reduced_width
from repcompare.data.batches import InputsDataset, batch_bounds, default_view_size, make_loader
from repcompare.data.order import sample_order
from repcompare.data.sources import ImageSource, open_source
from repcompare.data.transforms import Preprocess, eval_transform, resolve_config, view_transform
from repcompare.errors import InputError
from repcompare.sides.plan import InputPlan
from repcompare.similarity.gram import Batch, features_or_gram
from repcompare.store.file_format import data_fingerprint

T = TypeVar("T")


@dataclass
class CaptureTarget:
    """One model ready to capture: its layers (in order) and their reduction; ``selection``:
    the ``--layers`` items they were chosen by."""

    loaded: LoadedModel
    graph: LayerGraph
    layers: list[str]
    reduction: str
    selection: tuple[str, ...] = ()

    def widths(self) -> list[int]:
        points = [self.graph.point(n) for n in self.layers]
        return [
            reduced_width(p.shape, self.reduction, p.layout, n)
            for p, n in zip(points, self.layers, strict=True)
        ]

    def layer_shapes(self) -> dict[str, list[int]]:
        return {n: list(self.graph.point(n).shape) for n in self.layers}

    def layer_layouts(self) -> dict[str, dict]:
        """Each layer's layout (``Layout.to_json``), stored beside its shape."""
        return {n: self.graph.point(n).layout.to_json() for n in self.layers}


@dataclass
class PreparedInputs:
    """The resolved plan: source, sample order, per-model transforms."""

    source: ImageSource
    indices: np.ndarray
    transforms: list[Preprocess]
    view_size: int

    def transform_descriptions(self) -> list[str]:
        return [t.describe() for t in self.transforms]


@dataclass
class StreamedBatch:
    """One batch: ``activations[model][view][layer]`` as ``(m, d)`` tensors on the device, or
    their ``BatchGram`` for a model streamed Gram-first."""

    number: int
    labels: np.ndarray
    sample_index: np.ndarray
    digests: np.ndarray
    activations: list[list[list[Batch]]]


def prepare_inputs(plan: InputPlan, targets: list[CaptureTarget]) -> PreparedInputs:
    """Open the data source, fix the sample order and build each model's transform."""
    if plan.batch_size < 4:
        raise InputError(f"--batch-size {plan.batch_size} is too small; CKA needs at least 4")
    if plan.augment is None and plan.views != 1:
        raise InputError("--views above 1 needs an augmentation; add --augment simclr (or another)")
    if plan.token_cap < 4:
        raise InputError(
            f"--token-cap {plan.token_cap} is too small; unbiased CKA needs at least 4 token "
            "rows per batch"
        )
    source = open_source(plan.data)
    indices = sample_order(len(source), plan.num_samples, plan.seed, plan.order)
    build = eval_transform if plan.augment is None else view_transform
    transforms = [build(resolve_config(t.loaded.data_config, plan.overrides)) for t in targets]
    view_size = plan.view_size or default_view_size(source)
    return PreparedInputs(source, indices, transforms, view_size)


def batch_digest(digests: torch.Tensor) -> np.ndarray:
    """Per view, SHA-256 of the per-sample digests of one batch: ``(views, 32)`` uint8."""
    per_view = digests.numpy().transpose(1, 0, 2)
    return np.stack(
        [np.frombuffer(hashlib.sha256(v.tobytes()).digest(), dtype=np.uint8) for v in per_view]
    )


def for_each(items: Iterable[T], work: Callable[[T], object]) -> None:
    """``work(item)`` for every item, holding none while the next one is produced: a ``for``
    loop's variable would keep the last batch alive through the next forward pass, two
    batches of activations in memory instead of one."""
    for _ in map(work, items):
        pass


def stream_activations(
    targets: list[CaptureTarget],
    plan: InputPlan,
    prepared: PreparedInputs,
    device: torch.device,
    batches: range | None = None,
    grams: Sequence[bool] | None = None,
) -> Iterator[StreamedBatch]:
    """Yield the activations of every target for each of the consecutive ``batches`` (batch
    numbers of ``batch_bounds``; default all). Nothing here holds a batch once it is
    yielded, so a consumer that drops it before asking for the next (``for_each``) has one
    batch of activations in memory, not two.

    Gram-first: a target whose entry of ``grams`` is true has each view's layers reduced
    to ``features_or_gram`` as soon as that view is captured, before the next view or
    model runs, so at most one view of one model's activations is alive at a time, next
    to the (b x b) Grams of the others.

    Every model is moved to ``device`` first. Every target and view of batch
    ``number`` is captured with that number, so ``--reduce tokens`` keeps the
    same token rows for all of them.
    """
    for target in targets:
        target.loaded.module.to(device)
    bounds = batch_bounds(len(prepared.indices), plan.batch_size)
    batches = range(len(bounds)) if batches is None else batches
    if not batches:
        return
    rows = slice(bounds[batches[0]][0], bounds[batches[-1]][1])
    dataset = InputsDataset(
        prepared.source,
        prepared.indices[rows],
        prepared.transforms,
        plan.augment,
        plan.views,
        prepared.view_size,
        plan.seed,
    )
    loader = make_loader(dataset, plan.batch_size, plan.workers)
    reduce = [_gram_first if g else _as_captured for g in grams or [False] * len(targets)]
    with ExitStack() as stack:
        captures = [
            stack.enter_context(
                capture_layers(
                    t.loaded.module, t.graph, t.layers, t.reduction, plan.token_cap, plan.seed
                )
            )
            for t in targets
        ]
        for number, batch in enumerate(loader, start=batches[0]):
            yield StreamedBatch(  # built in the yield: no name here keeps it past the next one
                number=number,
                labels=batch["label"].numpy().astype(np.int64),
                sample_index=batch["index"].numpy().astype(np.int64),
                digests=batch_digest(batch["digest"]),
                activations=[
                    [
                        reduced(capture(preprocess.normalise(on_device[:, view]), number))
                        for view in range(plan.views)
                    ]
                    for capture, preprocess, reduced, on_device in zip(
                        captures,
                        prepared.transforms,
                        reduce,
                        (inputs.to(device, non_blocking=True) for inputs in batch["inputs"]),
                        strict=True,
                    )
                ],
            )


def _as_captured(layers: list[torch.Tensor]) -> list[Batch]:
    return layers


def _gram_first(layers: list[torch.Tensor]) -> list[Batch]:
    """Each layer as ``features_or_gram``; the list of activations is dropped by the caller."""
    return [features_or_gram(x) for x in layers]


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without a GPU is an InputError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "--device cuda was asked for but no CUDA GPU is available; use auto or cpu"
        )
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def input_fingerprint(plan: InputPlan) -> str:
    """SHA-256 of the planned images (and views) without running a model: equal to the
    ``fingerprint()`` of a stream over the same plan, for checking that stored results were
    computed on these images."""
    prepared = prepare_inputs(plan, [])
    dataset = InputsDataset(
        prepared.source,
        prepared.indices,
        [],
        plan.augment,
        plan.views,
        prepared.view_size,
        plan.seed,
    )
    loader = make_loader(dataset, plan.batch_size, plan.workers)
    digests = [batch_digest(batch["digest"]) for batch in loader]
    return data_fingerprint(np.stack(digests, axis=1))
