"""The Run protocol, and the driver that feeds every run of one pass from one stream.

An analysis is a ``Run``: it names the sides it reads, checks the stream before the first
batch (``start``: memory, labels, torchrun shares; an ``InputError`` names the fix), takes
each aligned batch (``update``) and gives its result over every batch given (``result``;
in a torchrun job, over every process's batches). ``run_pass`` streams the images once for
all the runs of a pass: a study's plain pass feeds CKA within A, within B, A vs B and the
class fit from one stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

from repcompare.distributed import ONE_PROCESS, Job
from repcompare.progress import Advance
from repcompare.sides.aligned import AlignedBatch, AlignedStream, aligned_batches
from repcompare.sides.batches import for_each
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side


class Run(Protocol):
    """One analysis fed batch by batch; ``update`` sees ``batch.feats`` of ``sides`` only,
    in that order. ``grams``: whether ``update`` takes a layer's ``BatchGram`` in place of
    its features (minibatch CKA does; a side that only such runs read is streamed
    Gram-first)."""

    @property
    def sides(self) -> Sequence[Side]: ...

    @property
    def grams(self) -> bool: ...

    def start(self, stream: AlignedStream) -> None: ...

    def update(self, batch: AlignedBatch) -> None: ...

    def result(self, stream: AlignedStream) -> Any: ...


def run_pass(
    runs: Sequence[Run],
    plan: InputPlan,
    device: torch.device,
    *,
    views: int = 1,
    job: Job = ONE_PROCESS,
    advance: Advance | None = None,
    passes: int = 1,
) -> tuple[list[Any], AlignedStream]:
    """Stream the first ``views`` views of every side the ``runs`` read once, feed each run
    its sides' features (Gram-first for a side that only runs taking Grams read), and give
    every run's result (and the stream, for its fingerprint).
    ``advance`` counts examples against the stream's times ``passes`` (one bar over
    several passes)."""
    sides = list({id(s): s for run in runs for s in run.sides}.values())
    features = {id(s) for run in runs if not run.grams for s in run.sides}
    grams = [id(s) not in features for s in sides]
    stream = aligned_batches(sides, plan, device, views, job, grams)
    position = {id(s): i for i, s in enumerate(sides)}
    picks = [[position[id(s)] for s in run.sides] for run in runs]
    for run in runs:
        run.start(stream)

    def add(batch: AlignedBatch) -> None:
        for run, pick in zip(runs, picks, strict=True):
            run.update(AlignedBatch(batch.labels, [batch.feats[i] for i in pick]))
        if advance:
            advance(len(batch.labels), stream.num_samples * passes)

    for_each(stream.batches, add)
    return [run.result(stream) for run in runs], stream
