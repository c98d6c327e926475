"""Benchmark P-SCALE: one command in one process against ``torchrun --nproc-per-node K``.

Workload (issue 12): ``extract`` of timm resnet18 and ``cka`` of timm resnet18 against
resnet34 (random init, every block output flattened) over the built-in images,
batch 64. Each run is a fresh process (or torchrun job) timed from start to exit,
so start-up, the rendezvous and rank 0's stitching are included. The one-process
run gets every core (torch's default threads); under torchrun each of the K
processes gets ``cores // K`` threads (``OMP_NUM_THREADS``), so both use the same
cores. On a GPU machine each process takes its own GPU (``cuda:LOCAL_RANK``) and
``--nproc`` should be the number of GPUs. Runs alternate (one process, torchrun,
...) after a warm-up round; the median of ``--runs`` is reported.

    uv run python benchmarks/scale.py [--images 1024] [--image-size 64] [--nproc 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "extract": ["extract", "timm:resnet18", "--out", "{out}/a.h5", "--force"],
    "cka": ["cka", "timm:resnet18", "timm:resnet34", "--out", "{out}/cka"],
}


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    data = [
        *("--data", f"builtin:{args.images}:{args.image_size}"),
        *("--image-size", str(args.image_size), "--batch-size", str(args.batch_size)),
        *("--layers", "blocks", "--workers", "0", "--device", args.device),
    ]
    alone = [sys.executable, "-m", "repcompare"]
    torchrun = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
        *("--nproc-per-node", str(args.nproc), "-m", "repcompare"),
    ]
    shared_env = os.environ | {"OMP_NUM_THREADS": str(max(1, cores // args.nproc))}
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, words in COMMANDS.items():
            words = [w.format(out=scratch) for w in words]
            one = [*alone, *words, *data]
            many = [*torchrun, *words, *data]
            timed(one, dict(os.environ)), timed(many, shared_env)  # warm-up: caches, bytecode
            seconds: dict[str, list[float]] = {"one": [], "torchrun": []}
            for _ in range(args.runs):
                seconds["one"].append(timed(one, dict(os.environ)))
                seconds["torchrun"].append(timed(many, shared_env))
            one_s, many_s = (statistics.median(seconds[k]) for k in ("one", "torchrun"))
            figures[name] = {"one_process_s": one_s, "torchrun_s": many_s, "runs": seconds}
            print(
                f"| {name} | {args.images} | {one_s:.2f} | {many_s:.2f} | {one_s / many_s:.2f}x |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(vars(args) | {"figures": figures}, default=str, indent=1))


if __name__ == "__main__":
    main()
