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
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from repcompare.capture.graph import discover
from repcompare.capture.models import load_model
from repcompare.capture.select import select_layers
from repcompare.capture.spec import parse_spec
from repcompare.data.batches import InputsDataset, make_loader
from repcompare.data.transforms import TransformOverrides
from repcompare.extraction import extract
from repcompare.sides.batches import CaptureTarget, prepare_inputs, resolve_device
from repcompare.sides.plan import InputPlan


def disk_write_speed(folder: Path, size: int = 1 << 30) -> float:
    """Bytes/s of a sequential, fsync-ed write of ``size`` bytes."""
    block = np.random.default_rng(0).integers(0, 255, 1 << 24, dtype=np.uint8).tobytes()
    path = folder / "disk_speed.bin"
    start = time.perf_counter()
    with open(path, "wb") as handle:
        for _ in range(size // len(block)):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return size / seconds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


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
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in make_loader(dataset, plan.batch_size, plan.workers):
            images = batch["inputs"][0][:, 0].to(device, non_blocking=True)
            model(prepared.transforms[0].normalise(images))
    sync(device)
    return len(dataset) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="timm:resnet18")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--layers", default="blocks")
    parser.add_argument("--workers", type=int, default=max(0, (os.cpu_count() or 1) - 1))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="folder for the files (default: a temp dir)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    folder = Path(args.out or tempfile.mkdtemp(prefix="repcompare-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    loaded = load_model(parse_spec(args.model))
    size = (3, args.image_size, args.image_size)
    graph = discover(loaded.module.to(device), size)
    layers = select_layers(graph, [args.layers])
    plan = InputPlan(  # the model's preprocessing at the size the layers were discovered at
        data=f"builtin:{args.images}:{args.image_size}",
        overrides=TransformOverrides(image_size=args.image_size),
        batch_size=args.batch_size,
        workers=args.workers,
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"{args.model}, {len(layers)} layers ({args.layers}), {args.images} images at "
        f"{args.image_size}px, batch {args.batch_size}, {args.workers} workers, {name}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    bare_forward(CaptureTarget(loaded, graph, layers, "avgpool"), plan, device)  # warm-up
    bare = bare_forward(CaptureTarget(loaded, graph, layers, "avgpool"), plan, device)
    disk = disk_write_speed(folder)
    print(
        "| run | images/s | % of bare forward | MB written | MB/s written | % of disk write speed |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| bare forward | {bare:.1f} | 100% | | | |")
    for reduction in ("avgpool", "flatten"):
        out = folder / f"{reduction}.h5"
        target = CaptureTarget(loaded, graph, layers, reduction)
        result = extract(target, plan, out, device, force=True)
        speed = result.images / result.seconds
        rate = result.bytes_written / result.seconds
        print(
            f"| extract --reduce {reduction} | {speed:.1f} | {100 * speed / bare:.0f}% | "
            f"{result.bytes_written / 1e6:.0f} | {rate / 1e6:.1f} | {100 * rate / disk:.1f}% |",
            flush=True,
        )
        out.unlink()
    print(f"\ndisk sequential write speed (1 GiB, fsync): {disk / 1e6:.0f} MB/s in {folder}")


if __name__ == "__main__":
    main()
