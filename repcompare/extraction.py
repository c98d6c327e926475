"""``repcompare extract``: one model's activations over a data set, into an HDF5 file."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from repcompare.activations import (
    CaptureTarget,
    InputPlan,
    PreparedInputs,
    prepare_inputs,
    stream_activations,
)
from repcompare.analyses.sides import layer_roles
from repcompare.data.sources import absolute_spec
from repcompare.errors import InputError
from repcompare.store.layout import Layout, Settings
from repcompare.store.lock import lock_for_writing
from repcompare.store.writer import ActivationWriter, Batch, prepare

STORAGE_DTYPES = {"float16": torch.float16, "float32": torch.float32}
COMPRESSIONS = ("none", "lzf", "gzip")


@dataclass
class ExtractResult:
    """What an extract run did."""

    path: Path
    settings: Settings
    layer_shapes: dict[str, list[int]]
    widths: tuple[int, ...]
    rows_before: int
    images: int
    seconds: float
    bytes_written: int


def _settings(target: CaptureTarget, plan: InputPlan, prepared, dtype: str, compression: str):
    loaded = target.loaded
    return Settings(
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
    )


def _checked(tensor: torch.Tensor, dtype: torch.dtype, layer: str) -> torch.Tensor:
    stored = tensor.to(dtype)
    if not torch.isfinite(stored).all():
        hint = "; use --dtype float32" if dtype == torch.float16 else ""
        raise InputError(
            f"layer {layer!r} has NaN or Inf activations in {str(dtype).removeprefix('torch.')}"
            f"{hint}"
        )
    return stored


def extract(
    target: CaptureTarget,
    plan: InputPlan,
    out: Path,
    device: torch.device,
    *,
    dtype: str = "float16",
    compression: str = "none",
    force: bool = False,
    console=None,
) -> ExtractResult:
    """Capture ``target``'s layers over the planned inputs into ``out`` (resuming if possible).

    Holds ``out``'s write lock throughout: another process using it is an InputError.
    """
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
    settings = _settings(target, plan, prepared, dtype, compression)
    layout = Layout(settings, tuple(target.widths()), target.layer_shapes())
    provenance = {
        "model_spec": settings.model,
        "checkpoint_sha256": settings.checkpoint_sha256,
        "data_source": settings.data,
        "data_spec": absolute_spec(plan.data),
        "transform": settings.transform,
        "reduction": settings.reduction,
        "seed": settings.seed,
        "layer_roles": json.dumps(layer_roles(target.graph.blocks, target.graph.residual)),
        "layer_layouts": json.dumps(target.layer_layouts()),
    }
    with lock_for_writing(out):
        rows_before = prepare(out, layout, provenance, force)
        return _capture(target, plan, prepared, layout, out, rows_before, device, console)


def _capture(
    target: CaptureTarget,
    plan: InputPlan,
    prepared: PreparedInputs,
    layout: Layout,
    out: Path,
    rows_before: int,
    device: torch.device,
    console,
) -> ExtractResult:
    """Capture the batches from ``rows_before`` on into the prepared file ``out``."""
    settings = layout.settings
    result = ExtractResult(
        out,
        settings,
        layout.layer_shapes,
        layout.widths,
        rows_before,
        0,
        0.0,
        0,
    )
    if rows_before >= settings.num_samples:
        return result
    storage = STORAGE_DTYPES[settings.dtype]
    writer = ActivationWriter(out, layout)
    started = time.perf_counter()
    complete = False
    columns = (
        TextColumn("[bold]extract"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} images"),
        TextColumn("{task.fields[speed]:.0f} img/s"),
        TextColumn("{task.fields[megabytes]:.0f} MB"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(
                "extract",
                total=settings.num_samples,
                completed=rows_before,
                speed=0.0,
                megabytes=0.0,
            )
            first = layout.first_batch(rows_before)
            for streamed in stream_activations([target], plan, prepared, device, first):
                views = [
                    [
                        _checked(x, storage, layer)
                        for x, layer in zip(acts, target.layers, strict=True)
                    ]
                    for acts in streamed.activations[0]
                ]
                writer.submit(
                    Batch(
                        streamed.number,
                        views,
                        streamed.labels,
                        streamed.sample_index,
                        streamed.digests,
                    )
                )
                result.images += len(streamed.labels)
                elapsed = time.perf_counter() - started
                progress.update(
                    task,
                    advance=len(streamed.labels),
                    speed=result.images / elapsed,
                    megabytes=writer.bytes_written / 1e6,
                )
        complete = True
    finally:
        writer.close(complete=complete)
        result.seconds = time.perf_counter() - started
        result.bytes_written = writer.bytes_written
    return result
