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
import os
import sys
import tempfile
from pathlib import Path

from harness import Report, Workload, add_workload_arguments, interleaved, run_command

COMMANDS = {
    "extract": ["extract", "timm:resnet18", "--layers", "blocks", "--out", "{out}/a.h5", "--force"],
    "cka": ["cka", "timm:resnet18", "timm:resnet34", "--layers-a", "blocks", "--out", "{out}/cka"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(
        parser, ["images", "image_size", "batch_size"], images=1024, image_size=64
    )
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    add_workload_arguments(parser, ["device"])
    parser.add_argument("--commands", default="extract,cka", help="of: " + ",".join(COMMANDS))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    data = Workload.from_args(args, workers=0).cli_options()
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
    columns = ["command", "images", *(f"{label} (s)" for label in envs), "speed-ups"]
    table = Report(columns, json_path=args.json, align="l" * len(columns))
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.commands.split(","):
            words = [w.format(out=scratch) for w in COMMANDS[name]]
            commands = [[*alone, *words, *data]] * 2 + [[*torchrun, *words, *data]]
            runs = {
                label: lambda c=command, e=env: run_command(c, env=e)
                for (label, env), command in zip(envs.items(), commands, strict=True)
            }
            timings = interleaved(runs, args.runs, warmup=1)  # warm-up: caches, bytecode
            seconds = {label: timing.seconds for label, timing in timings.items()}
            medians = [timing.median for timing in timings.values()]
            figures[name] = {"median_s": dict(zip(envs, medians, strict=True)), "runs": seconds}
            speedups = f"{medians[0] / medians[2]:.2f}x, {medians[1] / medians[2]:.2f}x"
            cells = [name, args.images, *(f"{m:.2f}" for m in medians), speedups]
            table.add(cells)
    table.close(**vars(args), figures=figures)


if __name__ == "__main__":
    main()
