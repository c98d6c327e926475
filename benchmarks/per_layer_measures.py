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
from dataclasses import replace

from harness import Stopwatch, Workload, add_workload_arguments, report, synchronise

import repcompare.analyses.class_fit as class_fit_module
from repcompare.analyses.class_fit import measure_class_fit
from repcompare.analyses.invariance import InvarianceOptions, measure_invariance
from repcompare.capture.graph import discover
from repcompare.capture.models import load_model
from repcompare.capture.select import select_layers
from repcompare.capture.spec import parse_spec
from repcompare.options import ClassFitOptions, DataOptions
from repcompare.sides.aligned import aligned_batches
from repcompare.sides.batches import CaptureTarget
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side


def side(spec_text: str, size: int, reduction: str) -> Side:
    loaded = load_model(parse_spec(spec_text), pretrained=False)
    graph = discover(loaded.module, (3, size, size))
    layers = select_layers(graph, ["blocks"])
    return Side(spec_text, layers, target=CaptureTarget(loaded, graph, layers, reduction))


def stream_seconds(sides: list[Side], plan: InputPlan, device, views: int) -> float:
    with Stopwatch() as watch:
        for batch in aligned_batches(sides, plan, device, views).batches:
            synchronise(device)
            del batch
    return watch.seconds


def timed_into(function, spent: Stopwatch):
    """``function`` that adds its run time to ``spent``."""

    def wrapper(*args, **kwargs):
        with spent:
            return function(*args, **kwargs)

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(
        parser,
        ["models", "images", "image_size", "batch_size", "reduce", "device", "workers"],
        aliases={"image_size": "--size"},
        models="timm:resnet18,torchvision:resnet18",
        images=512,
        workers=1,
    )
    work = Workload.from_args(parser.parse_args())
    device = work.device
    sides = [side(s, work.image_size, work.reduce) for s in work.models]
    plan = InputPlan(
        DataOptions(data=work.data, crop_pct=1.0, workers=work.workers),
        image_size=work.image_size,
        batch_size=work.batch_size,
    )
    views_plan = replace(plan, augment="simclr", views=2)
    layers = sum(len(s.layers) for s in sides)
    title = (
        f"{','.join(work.models)}: {layers} layers ({work.reduce}), {work.images} images at "
        f"{work.image_size} px, batch {work.batch_size}, {device}"
    )

    stream_views = stream_seconds(sides, views_plan, device, 2)
    with Stopwatch() as invariance:
        measure_invariance(sides, InvarianceOptions(("simclr",)), plan, device)

    stream_plain = stream_seconds(sides, plan, device, 1)
    spent = Stopwatch()
    for name in ("knn_accuracy", "linear_probe_accuracy"):
        setattr(class_fit_module, name, timed_into(getattr(class_fit_module, name), spent))
    with Stopwatch() as class_fit:
        measure_class_fit(sides, ClassFitOptions(), plan, device)

    rows = []
    for name, stream, total, post in (
        ("invariance (simclr, 2 views)", stream_views, invariance.seconds, None),
        ("class-fit", stream_plain, class_fit.seconds, spent.seconds),
    ):
        overhead = total - stream
        rows.append(
            {
                "run": name,
                "stream s": f"{stream:.1f}",
                "analysis s": f"{total:.1f}",
                "overhead s": f"{overhead:.1f}",
                "overhead %": f"{100 * overhead / stream:.0f}%",
                "kNN + probe s": None if post is None else f"{post:.1f}",
            }
        )
    report(rows, title)


if __name__ == "__main__":
    main()
