"""Batches of several sides over the same images, in the same order, with the same views.

Sides are activation files, Gram stores or models captured on the fly, in any mix. Files
are checked against each other before anything is computed (sample order,
views, input fingerprint). Models are streamed together, so they see the
identical (augmented) images; next to a file they are fed the file's recorded
images, batch by batch, and each batch's input digest is checked against the
file's.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from repcompare.data.batches import batch_bounds
from repcompare.distributed import ONE_PROCESS, Job
from repcompare.errors import InputError
from repcompare.sides.batches import StreamedBatch, prepare_inputs, stream_activations
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side, check_files_aligned, plan_from_file, side_files
from repcompare.similarity.gram import Batch, BatchGram, features_or_gram
from repcompare.store.file_format import data_fingerprint
from repcompare.store.reader import ActivationFile

READ_AHEAD = 2


@dataclass
class AlignedBatch:
    """One batch: ``feats[side][view][layer]`` as ``(m, d)`` tensors on the device, or their
    ``BatchGram`` for a side streamed Gram-first."""

    labels: np.ndarray
    feats: list[list[list[Batch]]]


@dataclass
class AlignedStream:
    """The batches, their size, the number of samples and of classes (None: unlabelled).

    ``digests`` holds each batch's ``(views, 32)`` input digests: the files' recorded
    ones (``recorded``), or those of the batches this process streamed so far. ``job``:
    the torchrun job whose processes share the batches. ``grams``: the ``id`` of each side
    that comes Gram-first.
    """

    batches: Iterator[AlignedBatch]
    batch_size: int
    num_samples: int
    num_classes: int | None
    digests: list[np.ndarray]
    job: Job = ONE_PROCESS
    recorded: bool = True
    grams: frozenset[int] = frozenset()

    def gram_first(self, sides: list[Side]) -> bool:
        """Whether every one of ``sides`` comes Gram-first (see ``aligned_batches``)."""
        return all(id(s) in self.grams for s in sides)

    def fingerprint(self) -> str:
        """SHA-256 of the digests of the views streamed (in a torchrun job, by every process:
        call it on all of them): equal to the ``data_fingerprint`` of a file extracted from
        the same images with as many views."""
        digests = self.digests
        if not self.recorded:
            digests = [d for part in self.job.gather(digests) for d in part]
        return data_fingerprint(np.stack(digests, axis=1))


def _read_ahead(batches: Iterator) -> Iterator:
    """Produce the items of ``batches`` from a thread, up to ``READ_AHEAD`` in advance."""
    buffer: queue.Queue = queue.Queue(maxsize=READ_AHEAD)
    done = object()

    def fill() -> None:
        try:
            for item in batches:
                buffer.put(item)
        except BaseException as error:
            buffer.put(error)
        buffer.put(done)

    threading.Thread(target=fill, daemon=True).start()
    while (item := buffer.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def _side_rows(
    side: Side, size: int, views: int, share: range, device: torch.device, grams: bool
) -> Iterator[list[list[Batch]]]:
    """``[view][layer]`` of the ``share`` of a file side's batches of ``size`` rows: the
    stored Grams of a Gram file; activations on the CPU, or on ``device`` reduced
    Gram-first (``features_or_gram``) when ``grams``."""
    file = side.file
    if side.is_grams:
        per_view = [file.grams(v, side.layers, share) for v in range(views)]
    else:
        per_view = [file.batches(v, side.layers, size, share) for v in range(views)]

    def convert(x: np.ndarray) -> Batch:
        if side.is_grams:
            return BatchGram(torch.from_numpy(x))
        tensor = torch.from_numpy(x)
        return features_or_gram(tensor.to(device)) if grams else tensor

    for batch in zip(*per_view, strict=True):
        yield [[convert(x) for x in view] for view in batch]


def _files_read_ahead(
    sides: list[Side],
    size: int,
    views: int,
    share: range,
    device: torch.device,
    grams: frozenset[int],
) -> Iterator[dict[int, list[list[Batch]]]]:
    """Per batch, every file side's ``_side_rows`` by ``id`` (Gram-first for those in
    ``grams``), read by one thread ahead of the consumer: one file's raw batch at a time."""
    readers = {
        id(s): _side_rows(s, size, views, share, device, id(s) in grams) for s in sides if s.is_file
    }
    return _read_ahead(
        {key: next(reader) for key, reader in readers.items()} for _ in range(len(share))
    )


def _to(device: torch.device, views: list[list[Batch]]) -> list[list[Batch]]:
    return [[t.to(device, non_blocking=True) for t in view] for view in views]


def _file_classes(file: ActivationFile) -> int | None:
    labels = file.labels
    return None if len(labels) == 0 or labels.min() < 0 else int(labels.max()) + 1


def _recorded(file: ActivationFile, views: int) -> list[np.ndarray]:
    """The file's ``(views, 32)`` input digests of each of its batches."""
    return list(file.handle["input_digest"][:views].transpose(1, 0, 2))


def aligned_batches(
    sides: list[Side],
    plan: InputPlan,
    device: torch.device,
    views: int = 1,
    job: Job = ONE_PROCESS,
    grams: Sequence[bool] | None = None,
) -> AlignedStream:
    """The first ``views`` views of every side's layers, batch by batch, over the same images;
    in a torchrun job, this process's share of the batches (``Job.share``). A side whose
    entry of ``grams`` is true comes Gram-first: each of its layers as ``features_or_gram``,
    reduced as soon as it is captured or read (a Gram file's side always is).

    With files only, batches hold ``plan.batch_size`` rows; with a file among
    models, the file's own batches; with models only, the plan's. A Gram file fixes the
    batches of every side.
    """
    chosen = grams or [False] * len(sides)
    gram_sides = frozenset(
        id(s) for s, first in zip(sides, chosen, strict=True) if first or s.is_grams
    )
    files = side_files(sides)
    for other in files[1:]:
        check_files_aligned(files[0], other)
    targets = [s.target for s in sides if not s.is_file]
    if not targets:
        first = files[0]
        size = first.settings.batch_size if first.settings.store == "grams" else plan.batch_size
        n = first.settings.num_samples
        bounds = batch_bounds(n, size)
        share = job.share(len(bounds))
        reader = _files_read_ahead(sides, size, views, share, device, gram_sides)

        def from_files() -> Iterator[AlignedBatch]:
            for start, stop in bounds[share.start : share.stop]:
                read = next(reader)
                yield AlignedBatch(
                    first.labels[start:stop], [_to(device, read[id(s)]) for s in sides]
                )

        return AlignedStream(
            from_files(),
            size,
            n,
            _file_classes(first),
            _recorded(first, views),
            job,
            True,
            gram_sides,
        )
    if files:
        first = files[0]
        plan = replace(plan_from_file(first, plan), views=views)
    prepared = prepare_inputs(plan, targets)
    if files and not np.array_equal(prepared.indices, first.sample_index):
        raise InputError(
            f"the data set {plan.data} does not yield the samples recorded in {first.path} "
            f"({first.attrs.get('data_source')}); pass --data pointing at the images it was "
            "extracted from, or extract the file again from the current data"
        )
    share = job.share(len(batch_bounds(len(prepared.indices), plan.batch_size)))
    reader = (
        _files_read_ahead(sides, plan.batch_size, views, share, device, gram_sides)
        if files
        else None
    )
    recorded = _recorded(files[0], views) if files else []
    digests = list(recorded)

    def aligned(streamed: StreamedBatch) -> AlignedBatch:
        if recorded and not np.array_equal(streamed.digests, recorded[streamed.number]):
            raise InputError(
                f"batch {streamed.number} of the images differs from those recorded in "
                f"{files[0].path} (input fingerprints differ); check that --data points at "
                "the same images and that the file's preprocessing matches"
            )
        captured = iter(streamed.activations)
        read = next(reader) if files else {}
        feats = [_to(device, read[id(s)]) if s.is_file else next(captured) for s in sides]
        if not recorded:
            digests.append(streamed.digests)
        return AlignedBatch(streamed.labels, feats)

    def from_models() -> Iterator[AlignedBatch]:  # map: no name holds the previous batch
        streamed = stream_activations(
            targets,
            plan,
            prepared,
            device,
            share,
            [id(s) in gram_sides for s in sides if not s.is_file],
        )
        yield from map(aligned, streamed)

    source = prepared.source
    classes = len(source.classes) if source.has_labels else None
    if files:
        classes = _file_classes(files[0])
    return AlignedStream(
        from_models(),
        plan.batch_size,
        len(prepared.indices),
        classes,
        digests,
        job,
        bool(files),
        gram_sides,
    )
