"""Benchmark: peak memory of ``repcompare cka`` does not grow with the number of samples.

Runs the same on-the-fly comparison over N and ``--factor`` x N images, each in
its own process, and reports the peak resident memory (``ru_maxrss`` of the
child) and, on CUDA, the peak allocated device memory. Model i is initialised with
seed i and saved to a checkpoint first, so the same spec given twice is two models
(as in workload W), not one model compared with itself. Target (issue 11): the
larger run peaks within 5% of the smaller one (CPU: 512 vs 4,096 images at
64 px; GPU: 10,000 vs 40,000 at 224 px).

    uv run python benchmarks/cka_memory.py [--images 512] [--factor 8] [--image-size 64]
        [--models torchvision:resnet18,torchvision:resnet34] [--layers blocks] [--device cpu]
        [--workers N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workload import seeded_checkpoints

PEAKS = (
    "import resource, sys, torch; from repcompare.cli import main; code = main(sys.argv[1:]); "
    "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
    "torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0); sys.exit(code)"
)


def peak_of_run(
    images: int, models: list[str], args: argparse.Namespace
) -> tuple[float, float, float]:
    """(peak host MB, peak device MB, seconds) of one ``repcompare cka`` process."""
    out = tempfile.mkdtemp(prefix="repcompare-mem-")
    command = [
        sys.executable,
        "-c",
        PEAKS,
        "cka",
        *models,
        "--layers-a",
        args.layers,
        "--layers-b",
        args.layers,
        "--data",
        f"builtin:{images}:{args.image_size}",
        "--image-size",
        str(args.image_size),
        "--crop-pct",
        "1.0",
        "--batch-size",
        str(args.batch_size),
        "--reduce",
        "flatten",
        "--device",
        args.device,
        *(["--workers", str(args.workers)] if args.workers is not None else []),
        "--out",
        out,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"run over {images} images failed:\n{done.stderr[-2000:]}")
    peak_kb, device_bytes = map(
        int, next(line for line in done.stdout.splitlines() if line.startswith("PEAK")).split()[1:]
    )
    with open(f"{out}/cka.json") as handle:
        assert json.load(handle)["settings"]["n_examples"] == images
    return peak_kb / 1024, device_bytes / 2**20, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--factor", type=int, default=8)
    parser.add_argument("--models", default="torchvision:resnet18,torchvision:resnet34")
    parser.add_argument("--layers", default="blocks")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=None, help="default: the command's")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="repcompare-mem-models-"))
    specs = args.models.split(",")
    models = [f"{s}@{p}" for s, p in zip(specs, seeded_checkpoints(specs, folder), strict=True)]
    print(
        f"{args.models}, {args.layers}, flatten, batch {args.batch_size}, "
        f"{args.image_size}px, {args.device}\n"
    )
    print("| images | peak RSS (MB) | peak device MB | time (s) |")
    print("|---:|---:|---:|---:|")
    peaks = []
    for images in (args.images, args.factor * args.images):
        host, device, seconds = peak_of_run(images, models, args)
        peaks.append((host, device))
        print(f"| {images} | {host:.0f} | {device:.0f} | {seconds:.1f} |", flush=True)
    (host_n, device_n), (host_kn, device_kn) = peaks
    growth = 100 * (host_kn / host_n - 1)
    device_growth = 100 * (device_kn / device_n - 1) if device_n else 0.0
    print(
        f"\ngrowth from {args.images} to {args.factor * args.images} images: host {growth:+.1f}%, "
        f"device {device_growth:+.1f}% (target within 5%)"
    )


if __name__ == "__main__":
    main()
