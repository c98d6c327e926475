"""Benchmark P-CLI: a whole ``repcompare`` command against a bare script doing the same forwards.

Workload (issue 11): torchvision resnet18 vs resnet34, random init saved to
safetensors checkpoints, every block output flattened, images from an ``.npz``
(uint8, N x H x W x 3), batch 128, CPU. Each run is a fresh process timed from
start to exit. The baselines are plain scripts that import torch and
torchvision, load the same ``.npz``, normalise it and run the models' forward
passes under ``inference_mode`` (one model for extract; both models, and both
views for invariance). Runs are interleaved (baseline, command, baseline, ...)
and the median of ``--runs`` is reported after one warm-up round, with the median of
each round's own ratio (a round's two runs sit next to each other in time, so that
ratio is less affected by the machine's speed drifting between rounds).

    uv run python benchmarks/cli_overhead.py [--images 1024] [--image-size 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from workload import seeded_checkpoints

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BARE = """
import numpy as np, torch
from safetensors.torch import load_file
specs, checkpoints, npz, batch, passes = {specs!r}, {checkpoints!r}, {npz!r}, {batch}, {passes}
device = torch.device({device!r})
models = []
for spec, path in zip(specs, checkpoints):
    library, name = spec.split(":")
    if library == "timm":
        import timm
        model = timm.create_model(name, pretrained=False)
    else:
        import torchvision
        model = torchvision.models.get_model(name)
    model.load_state_dict(load_file(path))
    models.append(model.eval().to(device))
images = np.load(npz)["images"]
mean = torch.tensor({mean}, device=device).view(1, 3, 1, 1)
std = torch.tensor({std}, device=device).view(1, 3, 1, 1)
with torch.inference_mode():
    for _ in range(passes):
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start:start + batch]).to(device).permute(0, 3, 1, 2)
            x = (x.float() / 255 - mean) / std
            for model in models:
                model(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
"""


def make_inputs(folder: Path, args) -> tuple[Path, list[Path]]:
    """The ``.npz`` of seeded random images and the two random-init checkpoints."""
    generator = np.random.default_rng(0)
    npz = folder / "images.npz"
    size = args.image_size
    np.savez(
        npz,
        images=generator.integers(0, 256, (args.images, size, size, 3), dtype=np.uint8),
        labels=generator.integers(0, 10, args.images),
    )
    return npz, seeded_checkpoints(args.models.split(","), folder)


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def workloads(folder: Path, npz: Path, checkpoints: list[Path], args) -> dict:
    """Each row: (the repcompare command, the bare script it is measured against)."""
    specs = args.models.split(",")
    a, b = (f"{spec}@{path}" for spec, path in zip(specs, checkpoints, strict=True))
    common = ["--data", str(npz), "--batch-size", str(args.batch_size), "--device", args.device]
    common += ["--image-size", str(args.image_size), "--crop-pct", "1.0"]
    common += [
        "--mean",
        ",".join(map(str, IMAGENET_MEAN)),
        "--std",
        ",".join(map(str, IMAGENET_STD)),
    ]
    common += ["--reduce", args.reduce]
    repcompare = [sys.executable, "-m", "repcompare"]

    def bare(count: int, passes: int) -> list[str]:
        script = BARE.format(
            specs=specs[:count],
            checkpoints=[str(p) for p in checkpoints[:count]],
            npz=str(npz),
            batch=args.batch_size,
            passes=passes,
            device="cuda" if args.device == "cuda" else "cpu",
            mean=list(IMAGENET_MEAN),
            std=list(IMAGENET_STD),
        )
        return [sys.executable, "-c", script]

    layers = ["--layers", args.layers]
    return {
        "cka": (
            [
                *repcompare,
                "cka",
                a,
                b,
                "--layers-a",
                args.layers,
                "--layers-b",
                args.layers,
                *common,
                "--out",
                str(folder / "cka"),
            ],
            bare(2, 1),
        ),
        "extract": (
            [*repcompare, "extract", a, *layers, *common, "--out", str(folder / "a.h5"), "--force"],
            bare(1, 1),
        ),
        "invariance": (
            [
                *repcompare,
                "invariance",
                a,
                *layers,
                "--augment",
                "flip",
                "--views",
                "2",
                *common,
                "--out",
                str(folder / "invariance"),
            ],
            bare(1, 2),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="torchvision:resnet18,torchvision:resnet34")
    parser.add_argument("--layers", default="blocks")
    parser.add_argument("--reduce", default="flatten")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--workloads", default="cka,extract,invariance")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repcompare-cli-") as temporary:
        measure(Path(temporary), args)


def measure(folder: Path, args) -> None:
    """Print the table: each workload's bare script and command, interleaved."""
    npz, checkpoints = make_inputs(folder, args)
    rows = workloads(folder, npz, checkpoints, args)
    print(
        f"{args.models}, {args.layers} --reduce {args.reduce}, {args.images} images "
        f"{args.image_size}px from .npz, batch {args.batch_size}, {args.device}, "
        f"{torch.get_num_threads()} CPU threads; median of {args.runs} after {args.warmup} "
        "warm-up\n"
    )
    print(
        "| command | bare forward script (s) | repcompare (s) | ratio | median of round ratios "
        "| target |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.workloads.split(","):
        command, baseline = rows[name]
        for _ in range(args.warmup):
            timed(baseline), timed(command)
        times = {"bare": [], "repcompare": []}
        for _ in range(args.runs):
            times["bare"].append(timed(baseline))
            times["repcompare"].append(timed(command))
        bare_s, command_s = (statistics.median(times[k]) for k in ("bare", "repcompare"))
        rounds = zip(times["bare"], times["repcompare"], strict=True)
        paired = statistics.median(ours / bare for bare, ours in rounds)
        print(
            f"| {name} | {bare_s:.2f} | {command_s:.2f} | {command_s / bare_s:.2f}x "
            f"| {paired:.2f}x | <= 1.15x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
