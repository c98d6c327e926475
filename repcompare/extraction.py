"""``repcompare extract``: one model's activations over a data set, into an HDF5 file; or, with
``--store grams``, each batch's Gram matrix per layer (a Gram store: minibatch CKA against any
later model needs only that model's forward passes)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from repcompare.data.batches import batch_bounds
from repcompare.data.sources import absolute_spec
from repcompare.distributed import ONE_PROCESS, Job
from repcompare.errors import InputError, RunError
from repcompare.progress import SILENT, Feedback
from repcompare.sides.batches import (
    CaptureTarget,
    PreparedInputs,
    StreamedBatch,
    for_each,
    prepare_inputs,
    stream_activations,
)
from repcompare.sides.plan import InputPlan
from repcompare.similarity.gram import linear_gram
from repcompare.store.file_format import STORES, FileSettings, FileShapes
from repcompare.store.lock import lock_for_writing
from repcompare.store.shards import (
    missing_shards,
    shard_attribute,
    shard_path,
    shard_shapes,
    stitch,
)
from repcompare.store.writer import ActivationWriter, Batch, prepare, rows_done

STORAGE_DTYPES = ("float16", "float32")
COMPRESSIONS = ("none", "lzf", "gzip")


@dataclass
class ExtractResult:
    """What an extract run did: the file, its settings (as stored in it), each layer's
    shape and stored width, the rows already there before this run (resumed), the images
    it holds, the run time and the bytes this run wrote."""

    path: Path
    settings: FileSettings
    layer_shapes: dict[str, list[int]]
    widths: tuple[int, ...]
    rows_before: int
    images: int
    seconds: float
    bytes_written: int

    def to_dict(self) -> dict:
        """The result as plain JSON-ready values (the path as text, the settings as the
        file's ``settings`` attribute holds them)."""
        return {
            **asdict(self),
            "path": str(self.path),
            "settings": json.loads(self.settings.to_json()),
            "widths": list(self.widths),
        }


def _settings(
    target: CaptureTarget, plan: InputPlan, prepared, dtype: str, compression: str, store: str
):
    loaded = target.loaded
    return FileSettings(
        model=str(loaded.spec),
        checkpoint_sha256=loaded.checkpoint_sha256 or "",
        pretrained=loaded.pretrained,
        data=prepared.source.describe(),
        num_samples=len(prepared.indices),
        order=plan.order,
        seed=plan.seed,
        layers=tuple(target.layers),
        reduction=target.reduction,
        views=plan.views,
        augment=plan.augment or "none",
        view_size=prepared.view_size if plan.augment else 0,
        transform=prepared.transform_descriptions()[0],
        batch_size=plan.batch_size,
        dtype=dtype,
        compression=compression,
        init_seed=loaded.init_seed,
        store=store,
    )


def extract(
    target: CaptureTarget,
    plan: InputPlan,
    out: Path,
    device: torch.device,
    *,
    dtype: str | None = None,
    compression: str = "none",
    force: bool = False,
    feedback: Feedback = SILENT,
    job: Job = ONE_PROCESS,
    store: str = "activations",
) -> ExtractResult:
    """Capture ``target``'s layers over the planned inputs into ``out`` (resuming if possible):
    their activations in ``dtype`` (default float16), or with ``store="grams"`` each batch's
    float32 Gram of every layer.

    Holds ``out``'s write lock throughout: another process using it is an InputError. In a
    torchrun job each process writes its share of the batches into its shard and rank 0
    stitches ``out`` from them (``repcompare.store.shards``).
    """
    if store not in STORES:
        raise InputError(f"unknown --store {store!r}; use activations or grams")
    if store == "grams" and dtype not in (None, "float32"):
        raise InputError(f"a Gram store holds float32 Gram matrices; drop --dtype {dtype}")
    dtype = dtype or ("float32" if store == "grams" else "float16")
    if dtype not in STORAGE_DTYPES:
        raise InputError(f"unknown --dtype {dtype!r}; use float16 or float32")
    if compression not in COMPRESSIONS:
        raise InputError(f"unknown --compression {compression!r}; use none, lzf or gzip")
    if target.reduction == "tokens":
        raise InputError(
            "--reduce tokens makes rows of token samples, not images, which a file of one row "
            "per image cannot hold; run cka or invariance on the MODEL spec with --reduce tokens"
        )
    prepared = prepare_inputs(plan, [target])
    settings = _settings(target, plan, prepared, dtype, compression, store)
    bounds = batch_bounds(settings.num_samples, settings.batch_size)
    shapes = FileShapes(
        settings,
        tuple(target.widths()),
        target.layer_shapes(),
        max(stop - start for start, stop in bounds) if store == "grams" else 0,
    )
    provenance = {
        "model_spec": settings.model,
        "checkpoint_sha256": settings.checkpoint_sha256,
        "data_source": settings.data,
        "data_spec": absolute_spec(plan.data),
        "transform": settings.transform,
        "reduction": settings.reduction,
        "seed": settings.seed,
        "layer_roles": json.dumps(target.graph.layer_roles()),
        "layer_layouts": json.dumps(target.layer_layouts()),
        "layer_selection": json.dumps(list(target.selection)),
    }
    capture = Capture(target, plan, prepared, device, feedback, job)
    if job.distributed:
        return _extract_in_shards(capture, shapes, provenance, out, force)
    with lock_for_writing(out) as lock:
        rows_before = prepare(out, shapes, provenance, force)
        lock.hold_inode()
        return capture.run(shapes, out, rows_before, range(shapes.num_batches))


def _extract_in_shards(
    capture: Capture, shapes: FileShapes, provenance: dict, out: Path, force: bool
) -> ExtractResult:
    """This process's share of the batches into its shard; then ``out`` stitched by rank 0."""
    job = capture.job
    total = ExtractResult(out, shapes.settings, shapes.layer_shapes, shapes.widths, 0, 0, 0.0, 0)
    done = out.exists() and not force and rows_done(out, shapes) == shapes.settings.num_samples
    if done and not missing_shards(out):
        total.rows_before = shapes.settings.num_samples
        return total
    batches = job.share(shapes.num_batches)
    shard = shard_path(out, job.rank, job.world)
    shard_plan = shard_shapes(shapes, batches)
    with lock_for_writing(shard) as lock:
        rows_before = prepare(
            shard,
            shard_plan,
            provenance | {"shard": shard_attribute(shapes, batches, job.rank, job.world)},
            force,
        )
        lock.hold_inode()
        done = capture.run(shard_plan, shard, rows_before, batches)
    for part in job.gather(done):
        total.rows_before += part.rows_before
        total.images += part.images
        total.seconds = max(total.seconds, part.seconds)
        total.bytes_written += part.bytes_written
    if job.main:
        shards = [shard_path(out, r, job.world) for r in range(job.world)]
        unseen = [s for s in shards if not s.is_file()]
        if unseen:
            raise RunError(
                f"rank 0 cannot see the shard {unseen[0]} that another process wrote; put --out "
                "on a file system that every machine of the job shares, then rerun to resume"
            )
        with lock_for_writing(out):
            stitch(out, shapes, shards)
    job.wait_for_all()
    return total


def _gram(x: torch.Tensor) -> torch.Tensor:
    """The float32 Gram a Gram store keeps of a batch's features (``linear_gram``)."""
    return linear_gram(x).to(torch.float32)


@dataclass
class Capture:
    """What one process captures: the target over the planned inputs, on ``device``."""

    target: CaptureTarget
    plan: InputPlan
    prepared: PreparedInputs
    device: torch.device
    feedback: Feedback
    job: Job

    def run(self, shapes: FileShapes, out: Path, rows_before: int, batches: range) -> ExtractResult:
        """Capture ``batches`` (numbers in the whole sample order) into the prepared file
        ``out`` of ``shapes``, which holds their rows, from its row ``rows_before`` on."""
        settings = shapes.settings
        result = ExtractResult(
            out, settings, shapes.layer_shapes, shapes.widths, rows_before, 0, 0.0, 0
        )
        already = sum(self.job.gather(rows_before))
        if rows_before >= settings.num_samples:
            return result
        to_do = range(batches[0] + shapes.first_batch(rows_before), batches.stop)
        storage = getattr(torch, settings.dtype)
        stored = _gram if settings.store == "grams" else lambda x: x.to(storage)
        writer = ActivationWriter(out, shapes)
        started = time.perf_counter()
        complete = False
        try:
            with self._bar(already) as advance:

                def submit(streamed: StreamedBatch) -> None:
                    writer.submit(
                        Batch(
                            streamed.number - batches[0],
                            [[stored(x) for x in view] for view in streamed.activations[0]],
                            streamed.labels,
                            streamed.sample_index,
                            streamed.digests,
                        )
                    )
                    result.images += len(streamed.labels)
                    advance(len(streamed.labels), writer.bytes_written)

                for_each(
                    stream_activations([self.target], self.plan, self.prepared, self.device, to_do),
                    submit,
                )
            complete = True
        finally:
            writer.close(complete=complete)
            result.bytes_written = writer.bytes_written
            result.seconds = time.perf_counter() - started
        return result

    @contextmanager
    def _bar(self, already: int) -> Iterator[Callable[[int, int], None]]:
        """``advance(images, bytes_written)`` of the bar over every process's images (shown
        on rank 0): the count and rate are the job's, the megabytes this process's."""
        total = self.prepared.indices.size
        with self.feedback.bar("extract", completed=already) as bar:
            counted = self.job.progress(bar)

            def advance(images: int, bytes_written: int) -> None:
                if bar is not None:
                    bar.info = f"{bytes_written / 1e6:.0f} MB"
                if counted is not None:
                    counted(images, total)

            yield advance
