"""Benchmark P-SCALE: one command in one process against ``torchrun --nproc-per-node K``.

Workload (issue 12): ``extract`` of timm resnet18 and ``cka`` of timm resnet18 against
resnet34 (random init, every block output flattened) over the built-in images,
batch 64. Each run is a fresh process (or torchrun job) timed from start to exit,
so start-up, the rendezvous and rank 0's stitching are included. Under torchrun
each of the K processes gets ``cores // K`` threads (``OMP_NUM_THREADS``). Two
one-process baselines: with every core (torch's default threads: the same
machine, the question "does torchrun help here?"), and with ``cores // K``
threads (one process's share of the machine: the question "how well does the
work divide?", which is what K GPUs, one per process, ask). On a GPU machine
each process takes its own GPU (``cuda:LOCAL_RANK``) and ``--nproc`` should be
the number of GPUs. Runs alternate after a warm-up round; the median of
``--runs`` is reported.

    uv run python benchmarks/scale.py [--images 1024] [--image-size 64] [--nproc 2] [--runs 3]
        [--commands extract,cka] [--device auto] [--json FILE]
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
    "extract": ["extract", "timm:resnet18", "--layers", "blocks", "--out", "{out}/a.h5", "--force"],
    "cka": ["cka", "timm:resnet18", "timm:resnet34", "--layers-a", "blocks", "--out", "{out}/cka"],
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
    parser.add_argument("--commands", default="extract,cka", help="of: " + ",".join(COMMANDS))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    data = [
        *("--data", f"builtin:{args.images}:{args.image_size}"),
        *("--image-size", str(args.image_size), "--batch-size", str(args.batch_size)),
        *("--workers", "0", "--device", args.device),
    ]
    alone = [sys.executable, "-m", "repcompare"]
    torchrun = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
        *("--nproc-per-node", str(args.nproc), "-m", "repcompare"),
    ]
    share = str(max(1, cores // args.nproc))
    envs = {
        "one process, every core": dict(os.environ),
        f"one process, {share} thread(s)": os.environ | {"OMP_NUM_THREADS": share},
        f"torchrun, {args.nproc} x {share} thread(s)": os.environ | {"OMP_NUM_THREADS": share},
    }
    figures = {}
    print("| command | images | " + " | ".join(f"{k} (s)" for k in envs) + " | speed-ups |")
    print("|---" * (len(envs) + 3) + "|", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.commands.split(","):
            words = [w.format(out=scratch) for w in COMMANDS[name]]
            commands = [[*alone, *words, *data]] * 2 + [[*torchrun, *words, *data]]
            runs = list(zip(envs.items(), commands, strict=True))
            for (_, env), command in runs:  # warm-up: caches, bytecode
                timed(command, env)
            seconds: dict[str, list[float]] = {label: [] for label in envs}
            for _ in range(args.runs):
                for (label, env), command in runs:
                    seconds[label].append(timed(command, env))
            medians = [statistics.median(seconds[label]) for label in envs]
            figures[name] = {"median_s": dict(zip(envs, medians, strict=True)), "runs": seconds}
            speedups = f"{medians[0] / medians[2]:.2f}x, {medians[1] / medians[2]:.2f}x"
            cells = " | ".join(f"{m:.2f}" for m in medians)
            print(f"| {name} | {args.images} | {cells} | {speedups} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(vars(args) | {"figures": figures}, default=str, indent=1))


if __name__ == "__main__":
    main()
