"""The workload options and models shared by the benchmarks: two random inits (seeds 0
and 1) of the given specs, so that A and B are two models whatever the spec; on the
device for the library-level GPU-suite benchmarks (``gram_precision.py``,
``host_sync.py``), saved as checkpoints for those that time whole commands
(``cli_overhead.py``, ``cka_memory.py``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from repcompare import api
from repcompare.capture.models import load_model
from repcompare.capture.spec import parse_spec


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="torchvision:resnet18,torchvision:resnet18")
    parser.add_argument("--layers", default="paper")
    parser.add_argument("--reduce", default="flatten")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--workers", type=int, default=None)


def workload_device(args: argparse.Namespace) -> torch.device:
    """``--device``, with ``auto`` the GPU when there is one."""
    if args.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(args.device)


def workload_models(args: argparse.Namespace, device: torch.device) -> list[torch.nn.Module]:
    """The ``--models`` specs, model i initialised with seed i, in eval mode on ``device``."""
    return [
        load_model(parse_spec(spec), init_seed=seed, image_size=args.image_size)
        .module.to(device)
        .eval()
        for seed, spec in enumerate(args.models.split(","))
    ]


def seeded_checkpoints(specs: list[str], folder: Path) -> list[Path]:
    """Spec i built at its own input size, initialised with seed i and saved to ``folder``
    as ``model<i>.safetensors`` (what ``--init-seed`` would build, as a checkpoint that a
    bare script can load too)."""
    paths = []
    for seed, spec in enumerate(specs):
        path = folder / f"model{seed}.safetensors"
        save_file(load_model(parse_spec(spec), init_seed=seed).module.state_dict(), path)
        paths.append(path)
    return paths


def workload_cka(args: argparse.Namespace, models: list[torch.nn.Module], device: torch.device):
    """``repcompare.api.cka`` of the two models over the built-in images, as the options say."""
    return api.cka(
        *models,
        layers_a=args.layers,
        layers_b=args.layers,
        reduce=args.reduce,
        data=f"builtin:{args.images}:{args.image_size}",
        image_size=args.image_size,
        batch_size=args.batch_size,
        device=device.type,
        workers=args.workers,
    )
