"""Benchmark: ``repcompare extract`` throughput against a bare forward loop.

For one model and the built-in data set, measures images/s of

- bare forward: the same data loader and preprocessing, the model's forward
  under ``inference_mode``, nothing captured or written;
- extract: the full command path (capture, reduction, float16 cast, background
  HDF5 writer), for ``--reduce avgpool`` and ``--reduce flatten``;

and, for the flatten run, the bytes/s written against the disk's own
sequential write speed (a 1 GiB ``fsync``-ed write measured here, in the
output folder). Targets (issue 4): avgpool extract >= 90% of bare forward;
flatten on a GPU >= 80% of the disk's write bandwidth.

    uv run python benchmarks/extract.py [--model timm:resnet50] [--images 512] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from harness import (
    SPARE_CORES,
    Report,
    Stopwatch,
    Workload,
    add_workload_arguments,
    device_name,
    write_test_file,
)

from repcompare.capture.graph import discover
from repcompare.capture.models import load_model
from repcompare.capture.select import select_layers
from repcompare.capture.spec import parse_spec
from repcompare.data.batches import InputsDataset, make_loader
from repcompare.extraction import extract
from repcompare.options import DataOptions
from repcompare.sides.batches import CaptureTarget, prepare_inputs
from repcompare.sides.plan import InputPlan

COLUMNS = (
    "run",
    "images/s",
    "% of bare forward",
    "MB written",
    "MB/s written",
    "% of disk write speed",
)


def bare_forward(target: CaptureTarget, plan: InputPlan, device: torch.device) -> float:
    """Images/s of loader + forward, nothing captured."""
    prepared = prepare_inputs(plan, [target])
    dataset = InputsDataset(
        prepared.source,
        prepared.indices,
        prepared.transforms,
        None,
        1,
        prepared.view_size,
        plan.seed,
    )
    model = target.loaded.module.to(device).eval()
    with Stopwatch(device) as watch, torch.inference_mode():
        for batch in make_loader(dataset, plan.batch_size, plan.workers):
            images = batch["inputs"][0][:, 0].to(device, non_blocking=True)
            model(prepared.transforms[0].normalise(images))
    return len(dataset) / watch.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(
        parser,
        ["model", "images", "image_size", "batch_size", "layers", "workers", "device"],
        model="timm:resnet18",
        images=512,
        image_size=224,
        layers="blocks",
        workers=SPARE_CORES,
    )
    parser.add_argument("--out", default=None, help="folder for the files (default: a temp dir)")
    args = parser.parse_args()
    work = Workload.from_args(args)
    device = work.device
    folder = Path(args.out or tempfile.mkdtemp(prefix="repcompare-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    loaded = load_model(parse_spec(work.models[0]))
    size = (3, work.image_size, work.image_size)
    graph = discover(loaded.module.to(device), size)
    layers = select_layers(graph, [work.layers])
    plan = InputPlan(  # the model's preprocessing at the size the layers were discovered at
        DataOptions(data=work.data, workers=work.workers),
        image_size=work.image_size,
        batch_size=work.batch_size,
    )
    title = (
        f"{work.models[0]}, {len(layers)} layers ({work.layers}), {work.images} images at "
        f"{work.image_size}px, batch {work.batch_size}, {work.workers} workers, "
        f"{device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    bare_forward(CaptureTarget(loaded, graph, layers, "avgpool"), plan, device)  # warm-up
    bare = bare_forward(CaptureTarget(loaded, graph, layers, "avgpool"), plan, device)
    disk = write_test_file(folder / "disk_speed.bin", 1 << 30)
    (folder / "disk_speed.bin").unlink()
    table = Report(COLUMNS, title)
    table.add({"run": "bare forward", "images/s": f"{bare:.1f}", "% of bare forward": "100%"})
    for reduction in ("avgpool", "flatten"):
        out = folder / f"{reduction}.h5"
        target = CaptureTarget(loaded, graph, layers, reduction)
        result = extract(target, plan, out, device, force=True)
        speed = result.images / result.seconds
        rate = result.bytes_written / result.seconds
        figures = (f"extract --reduce {reduction}", f"{speed:.1f}", f"{100 * speed / bare:.0f}%")
        figures += (f"{result.bytes_written / 1e6:.0f}", f"{rate / 1e6:.1f}")
        table.add((*figures, f"{100 * rate / disk:.1f}%"))
        out.unlink()
    table.close()
    print(f"\ndisk sequential write speed (1 GiB, fsync): {disk / 1e6:.0f} MB/s in {folder}")


if __name__ == "__main__":
    main()
