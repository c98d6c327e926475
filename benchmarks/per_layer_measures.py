"""Benchmark: what ``invariance`` and ``class-fit`` cost on top of the forward passes.

For two models on the built-in data, measures seconds of

- the bare stream: the same aligned batches (loader, preprocessing, forward,
  capture of the selected layers), nothing computed on them;
- ``measure_invariance`` with one augmentation (2 views), and
  ``measure_class_fit`` (class CKA, crowding, kNN, linear probe);

and reports each analysis's overhead over its stream, with the share of
class-fit spent in kNN and the probe (after the stream, on the pooled
features of every image).

    uv run python benchmarks/per_layer_measures.py [--images 512] [--size 64] [--device auto]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

import repcompare.analyses.class_fit as class_fit_module
from repcompare.analyses.class_fit import ClassFitOptions, measure_class_fit
from repcompare.analyses.invariance import InvarianceOptions, measure_invariance
from repcompare.capture.graph import discover
from repcompare.capture.models import load_model
from repcompare.capture.select import select_layers
from repcompare.capture.spec import parse_spec
from repcompare.data.transforms import TransformOverrides
from repcompare.sides.aligned import aligned_batches
from repcompare.sides.batches import CaptureTarget, resolve_device
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side


def side(spec_text: str, size: int, reduction: str) -> Side:
    loaded = load_model(parse_spec(spec_text), pretrained=False)
    graph = discover(loaded.module, (3, size, size))
    layers = select_layers(graph, ["blocks"])
    return Side(spec_text, layers, target=CaptureTarget(loaded, graph, layers, reduction))


def stream_seconds(sides: list[Side], plan: InputPlan, device, views: int) -> float:
    start = time.perf_counter()
    for batch in aligned_batches(sides, plan, device, views).batches:
        if device.type == "cuda":
            torch.cuda.synchronize()
        del batch
    return time.perf_counter() - start


def timed(function, spent: list[float]):
    """``function`` that adds its run time to ``spent[0]``."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="timm:resnet18,torchvision:resnet18")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--reduce", default="flatten")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    device = resolve_device(args.device)
    sides = [side(s, args.size, args.reduce) for s in args.models.split(",")]
    plan = InputPlan(
        data=f"builtin:{args.images}:{args.size}",
        overrides=TransformOverrides(image_size=args.size, crop_pct=1.0),
        batch_size=args.batch_size,
        workers=args.workers,
    )
    views_plan = replace(plan, augment="simclr", views=2)
    layers = sum(len(s.layers) for s in sides)
    print(
        f"{args.models}: {layers} layers ({args.reduce}), {args.images} images at "
        f"{args.size} px, batch {args.batch_size}, {device}"
    )

    stream_views = stream_seconds(sides, views_plan, device, 2)
    start = time.perf_counter()
    measure_invariance(sides, InvarianceOptions(("simclr",)), plan, device)
    invariance = time.perf_counter() - start

    stream_plain = stream_seconds(sides, plan, device, 1)
    spent = [0.0]
    for name in ("knn_accuracy", "linear_probe_accuracy"):
        setattr(class_fit_module, name, timed(getattr(class_fit_module, name), spent))
    start = time.perf_counter()
    measure_class_fit(sides, ClassFitOptions(), plan, device)
    class_fit = time.perf_counter() - start

    print("| run | stream s | analysis s | overhead s | overhead % | kNN + probe s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, stream, total, post in (
        ("invariance (simclr, 2 views)", stream_views, invariance, None),
        ("class-fit", stream_plain, class_fit, spent[0]),
    ):
        overhead = total - stream
        print(
            f"| {name} | {stream:.1f} | {total:.1f} | {overhead:.1f} | "
            f"{100 * overhead / stream:.0f}% | {'' if post is None else f'{post:.1f}'} |"
        )


if __name__ == "__main__":
    main()
