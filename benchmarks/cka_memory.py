"""Benchmark: peak memory of ``repcompare cka`` does not grow with the number of samples.

Runs the same on-the-fly comparison over N and 4N images, each in its own
process, and reports the peak resident memory (``ru_maxrss`` of the child).
Target (issue 5): the 4N run peaks less than 10% above the N run.

    uv run python benchmarks/cka_memory.py [--images 512] [--image-size 64]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time


def peak_of_run(images: int, args: argparse.Namespace) -> tuple[float, float]:
    """(peak MB, seconds) of one ``repcompare cka`` process over ``images`` images."""
    out = tempfile.mkdtemp(prefix="repcompare-mem-")
    command = [
        sys.executable,
        "-c",
        "import resource, sys; from repcompare.cli import main; code = main(sys.argv[1:]); "
        "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)",
        "cka",
        args.model_a,
        args.model_b,
        "--layers-a",
        args.layers,
        "--layers-b",
        args.layers,
        "--data",
        f"builtin:{images}:{args.image_size}",
        "--batch-size",
        str(args.batch_size),
        "--reduce",
        "flatten",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--out",
        out,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"run over {images} images failed:\n{done.stderr[-2000:]}")
    peak_kb = int(
        next(line for line in done.stdout.splitlines() if line.startswith("PEAK")).split()[1]
    )
    with open(f"{out}/cka.json") as handle:
        assert json.load(handle)["settings"]["n_examples"] == images
    return peak_kb / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--model-a", default="torchvision:resnet18")
    parser.add_argument("--model-b", default="torchvision:resnet34")
    parser.add_argument("--layers", default="blocks")
    args = parser.parse_args()
    print(
        f"{args.model_a} vs {args.model_b}, {args.layers}, flatten, batch {args.batch_size}, "
        f"{args.image_size}px, CPU\n"
    )
    print("| images | peak RSS (MB) | time (s) |")
    print("|---:|---:|---:|")
    rows = []
    for images in (args.images, 4 * args.images):
        peak, seconds = peak_of_run(images, args)
        rows.append(peak)
        print(f"| {images} | {peak:.0f} | {seconds:.1f} |", flush=True)
    print(
        f"\ngrowth from {args.images} to {4 * args.images} images: "
        f"{100 * (rows[1] / rows[0] - 1):+.1f}% (target < 10%)"
    )


if __name__ == "__main__":
    main()
