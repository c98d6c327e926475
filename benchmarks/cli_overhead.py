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
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from harness import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Report,
    Workload,
    add_workload_arguments,
    interleaved,
    run_command,
)

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


def make_inputs(folder: Path, work: Workload) -> tuple[Path, list[str]]:
    """The ``.npz`` of seeded random images and the two random-init checkpoints' specs."""
    generator = np.random.default_rng(0)
    npz = folder / "images.npz"
    size = work.image_size
    np.savez(
        npz,
        images=generator.integers(0, 256, (work.images, size, size, 3), dtype=np.uint8),
        labels=generator.integers(0, 10, work.images),
    )
    return npz, work.checkpoints(folder)


def workloads(folder: Path, npz: Path, specs: list[str], work: Workload) -> dict:
    """Each row: (the repcompare command, the bare script it is measured against)."""
    a, b = specs
    common = [*work.cli_options(data=str(npz)), "--crop-pct", "1.0"]
    common += [
        "--mean",
        ",".join(map(str, IMAGENET_MEAN)),
        "--std",
        ",".join(map(str, IMAGENET_STD)),
    ]
    common += ["--reduce", work.reduce]
    repcompare = [sys.executable, "-m", "repcompare"]

    def bare(count: int, passes: int) -> list[str]:
        script = BARE.format(
            specs=work.models[:count],
            checkpoints=[spec.rsplit("@", 1)[1] for spec in specs[:count]],
            npz=str(npz),
            batch=work.batch_size,
            passes=passes,
            device=work.device.type,
            mean=list(IMAGENET_MEAN),
            std=list(IMAGENET_STD),
        )
        return [sys.executable, "-c", script]

    layers = ["--layers", work.layers]
    return {
        "cka": (
            [
                *repcompare,
                "cka",
                a,
                b,
                "--layers-a",
                work.layers,
                "--layers-b",
                work.layers,
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
    add_workload_arguments(
        parser,
        ["models", "layers", "reduce", "images", "image_size", "batch_size", "device"],
        models="torchvision:resnet18,torchvision:resnet34",
        layers="blocks",
        images=1024,
        batch_size=128,
        device="cpu",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--workloads", default="cka,extract,invariance")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repcompare-cli-") as temporary:
        measure(Path(temporary), Workload.from_args(args), args)


COLUMNS = (
    "command",
    "bare forward script (s)",
    "repcompare (s)",
    "ratio",
    "median of round ratios",
    "target",
)


def measure(folder: Path, work: Workload, args: argparse.Namespace) -> None:
    """Print the table: each workload's bare script and command, interleaved."""
    npz, specs = make_inputs(folder, work)
    rows = workloads(folder, npz, specs, work)
    title = (
        f"{args.models}, {work.layers} --reduce {work.reduce}, {work.images} images "
        f"{work.image_size}px from .npz, batch {work.batch_size}, {work.device.type}, "
        f"{torch.get_num_threads()} CPU threads; median of {args.runs} after {args.warmup} "
        "warm-up"
    )
    table = Report(COLUMNS, title)
    for name in args.workloads.split(","):
        command, baseline = rows[name]
        times = interleaved(
            {
                "bare": lambda b=baseline: run_command(b),
                "repcompare": lambda c=command: run_command(c),
            },
            args.runs,
            args.warmup,
        )
        bare_s, command_s = times["bare"].median, times["repcompare"].median
        rounds = zip(times["bare"].seconds, times["repcompare"].seconds, strict=True)
        paired = statistics.median(ours / bare for bare, ours in rounds)
        figures = (name, f"{bare_s:.2f}", f"{command_s:.2f}", f"{command_s / bare_s:.2f}x")
        table.add((*figures, f"{paired:.2f}x", "<= 1.15x"))
    table.close()


if __name__ == "__main__":
    main()
