"""The Python API: one function per command, with the CLI's options as keyword arguments.

    import repcompare
    r = repcompare.cka("torchvision:resnet18", "timm:resnet18", data="builtin:256:32",
                       image_size=32)
    r.matrix.values, r.plot(), r.save("out/")

Models are spec strings (``timm:NAME[@CHECKPOINT]``), activation files (``.h5``) or
``torch.nn.Module`` objects (put in eval mode; preprocessing from timm's config, else
224 px ImageNet). Every function takes the options of its command by the names of the
fields of ``repcompare.options``: ``ModelOptions`` (``pretrained``, ``init_seed``,
``encoder``, ``key``, ``model_kwargs``, ``allow_missing``, ``image_size``, ``tracer``),
``LayerOptions`` (``layers``, ``reduce``), ``DataOptions`` (``data``: a spec string, a path,
or a torch Dataset/DataLoader of ``(image, label)``; ``num_samples``, ``order``, ``seed``,
``crop_pct``, ``mean``, ``std``, ``interpolation``, ``workers``, ``device``,
``token_cap``), ``ViewOptions`` (``augment``, ``views``, ``view_size``), ``RunOptions``
(``batch_size``, ``bootstrap``) and the analysis's own; defaults are the command line's.
Nothing is printed unless ``progress=True``; bad input raises ``repcompare.InputError``
with one sentence.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

import torch

from repcompare.analyses.atlas import draw_atlas
from repcompare.analyses.cka import compare
from repcompare.analyses.class_fit import measure_class_fit
from repcompare.analyses.invariance import InvarianceOptions, measure_invariance
from repcompare.analyses.study import PARTS_FOLDER, StudyOptions, StudyParts, run_study
from repcompare.capture.describe import LayersResult, layer_infos
from repcompare.capture.select import select_layers
from repcompare.distributed import current_job
from repcompare.errors import InputError, RepcompareWarning
from repcompare.extraction import ExtractResult
from repcompare.extraction import extract as extract_activations
from repcompare.options import (
    STUDY_AUGMENTATIONS,
    STUDY_EXCLUDES,
    AtlasOptions,
    BaselineOptions,
    CKAOptions,
    ClassFitOptions,
    DataOptions,
    LayerOptions,
    ModelOptions,
    RunOptions,
    ViewOptions,
    options_of,
)
from repcompare.progress import Feedback
from repcompare.report.outdir import out_dir_lock, staged_outputs
from repcompare.results.atlas import AtlasResult
from repcompare.results.cka import CKAResult
from repcompare.results.class_fit import ClassFitResult
from repcompare.results.invariance import InvarianceResult
from repcompare.results.study import StudyResult
from repcompare.sides.batches import resolve_device
from repcompare.sides.build import (
    build_sides,
    capture_target,
    cka_sides,
    distinct_sides,
    files_closed_after,
    input_plan,
    input_size,
    open_model,
    untrained_sides,
)
from repcompare.sides.side import Side

Model = str | Path | torch.nn.Module
Function = TypeVar("Function", bound=Callable[..., Any])


def _closing_files(function: Function) -> Function:
    """``function`` closing the activation files and Gram stores it opens on its way out,
    returned or raised (``sides.build.files_closed_after``)."""

    @functools.wraps(function)
    def closing(*args: Any, **kwargs: Any) -> Any:
        with files_closed_after():
            return function(*args, **kwargs)

    return cast(Function, closing)


def layers(model: str | torch.nn.Module, *, progress: bool = False, **options: Any) -> LayersResult:
    """The capture points of ``model`` (``layers``: presets, globs or names; default all)
    with output shapes, layouts and widths after ``reduce``."""
    model_options, layer = options_of("layers", options, ModelOptions, LayerOptions)
    loaded, graph = open_model(model, model_options, Feedback(progress))
    return LayersResult(
        str(loaded.spec),
        input_size(loaded, model_options.image_size),
        graph.mode,
        layer.reduce,
        layer_infos(graph, select_layers(graph, layer.layers), layer.reduce),
    )


def extract(
    model: str | torch.nn.Module,
    *,
    out: str | Path,
    store: str = "activations",
    dtype: str | None = None,
    compression: str = "none",
    force: bool = False,
    progress: bool = False,
    **options: Any,
) -> ExtractResult:
    """Capture ``model``'s ``layers`` (default: block outputs) over the data into the
    chunked, resumable HDF5 file ``out``, with ``views`` views of each image made by one
    ``augment``; rerunning after an interruption continues from the last complete batch,
    and an existing complete file is left as it is. ``store="grams"`` keeps each batch's
    float32 Gram matrix per layer instead of the activations (``dtype``: float16 by
    default for activations; a Gram store is float32): a side for minibatch CKA in
    ``cka``, ``atlas`` and ``invariance``."""
    model_options, layer, data, view, run = options_of(
        "extract",
        options,
        ModelOptions,
        LayerOptions,
        DataOptions,
        ViewOptions,
        RunOptions,
        exclude=("token_cap", "bootstrap"),
    )
    if Path(out).is_dir():
        raise InputError(
            f"--out {out} is a folder; give the activation file's path, e.g. {Path(out) / 'a.h5'}"
        )
    if view.augment and len(view.augment) > 1:
        raise InputError(
            f"an activation file holds views of one augmentation, not {len(view.augment)}; "
            "give one --augment per file"
        )
    job = current_job()
    feedback = Feedback(progress and job.main)
    plan = input_plan(
        data,
        model_options.image_size,
        run.batch_size,
        views=view.views,
        augment=view.augment[0] if view.augment else None,
        view_size=view.view_size,
    )
    device = job.device(resolve_device(data.device))
    target = capture_target(model, layer.layers, layer.reduce, model_options, feedback)
    return extract_activations(
        target,
        plan,
        Path(out),
        device,
        dtype=dtype,
        compression=compression,
        store=store,
        force=force,
        feedback=feedback,
        job=job,
    )


@_closing_files
def cka(
    a: Model,
    b: Model,
    *,
    layers_a: list[str] | str | None = None,
    layers_b: list[str] | str | None = None,
    reduce_a: str | None = None,
    reduce_b: str | None = None,
    progress: bool = False,
    **options: Any,
) -> CKAResult:
    """CKA between every layer of ``a`` (rows) and every layer of ``b`` (columns), or another
    ``measure`` (``repcompare.similarity.MEASURES``: the shape metrics streamed when their
    cross-covariances fit, else every measure on a fixed sample of ``sample`` images).
    Besides the shared options it takes those of ``repcompare.options.CKAOptions`` by name
    (``kernel``, ``rbf_sigma``, ``rbf_median``, ``estimator``, ``measure``, ``sample``);
    ``layers_a``/``layers_b`` and ``reduce_a``/``reduce_b`` choose each side's own (default:
    blocks, and ``reduce``).

    The same model given twice with the same layers and reduction is one model (the
    within-model matrix, computed once); ``layers_b`` defaults to ``layers_a`` then.
    Models are captured on the fly on the same images in the same order.
    """
    model_options, layer, data, run, chosen = options_of(
        "cka",
        options,
        ModelOptions,
        LayerOptions,
        DataOptions,
        RunOptions,
        CKAOptions,
        exclude=("layers",),
    )
    job = current_job()
    feedback = Feedback(progress and job.main)
    side_a, side_b, symmetric = cka_sides(
        a,
        b,
        LayerOptions(layers_a).layers,
        LayerOptions(layers_b).layers,
        (reduce_a, reduce_b, layer.reduce),
        model_options,
        feedback,
    )
    plan = input_plan(data, model_options.image_size, run.batch_size, [side_a, side_b])
    settings = replace(chosen, bootstrap=run.bootstrap, seed=data.seed)
    device = job.device(resolve_device(data.device))
    with feedback.bar("cka") as advance:
        return compare(
            side_a, side_b, settings, plan, device, symmetric, job.progress(advance), job
        )


@_closing_files
def invariance(*models: Model, progress: bool = False, **options: Any) -> InvarianceResult:
    """Per-layer CKA between augmented views of the same images, for every model: one curve
    per augmentation (``augment``: one name or several; default simclr) with ``views``
    views (default 2). Activation files bring their own views."""
    model_options, layer, data, view, run = options_of(
        "invariance", options, ModelOptions, LayerOptions, DataOptions, ViewOptions, RunOptions
    )
    job = current_job()
    feedback = Feedback(progress and job.main)
    settings = InvarianceOptions(view.augment, view.views, run.bootstrap, data.seed)
    sides = build_sides(models, layer.layers, layer.reduce, model_options, feedback)
    plan = input_plan(
        data, model_options.image_size, run.batch_size, sides, view_size=view.view_size
    )
    device = job.device(resolve_device(data.device))
    with feedback.bar("invariance") as advance:
        return measure_invariance(sides, settings, plan, device, job.progress(advance), job)


@_closing_files
def class_fit(*models: Model, progress: bool = False, **options: Any) -> ClassFitResult:
    """Per-layer class structure of every model over labelled images: CKA with the one-hot
    labels, crowding, kNN and linear-probe accuracy. Besides the shared options it takes
    those of ``repcompare.options.ClassFitOptions`` by name (``knn_k``, ``test_fraction``,
    ``probe_l2``; ``tokens``: also from the class token, the mean patch token and the
    centre patch token)."""
    model_options, layer, data, run, fit = options_of(
        "class_fit",
        options,
        ModelOptions,
        LayerOptions,
        DataOptions,
        RunOptions,
        ClassFitOptions,
        exclude=("token_cap",),
    )
    job = current_job()
    feedback = Feedback(progress and job.main)
    settings = replace(fit, bootstrap=run.bootstrap, seed=data.seed)
    sides = build_sides(models, layer.layers, layer.reduce, model_options, feedback)
    plan = input_plan(data, model_options.image_size, run.batch_size, sides)
    device = job.device(resolve_device(data.device))
    with feedback.bar("class-fit") as advance:
        return measure_class_fit(sides, settings, plan, device, job.progress(advance), job)


@_closing_files
def atlas(*models: Model, progress: bool = False, **options: Any) -> AtlasResult:
    """Every layer of every model against every other by each ``measure`` (``"cka"``, or
    several: a list or ``"cka,procrustes"``), from one pass over the data: CKA streamed over
    all images into one accumulator, the other measures on a fixed sample of ``sample``
    images; ``reference`` (a model's label or position from 1) adds curves of every other
    model against it."""
    model_options, layer, data, run, settings, baseline = options_of(
        "atlas",
        options,
        ModelOptions,
        LayerOptions,
        DataOptions,
        RunOptions,
        AtlasOptions,
        BaselineOptions,
        exclude=("token_cap", "bootstrap"),
    )
    job = current_job()
    feedback = Feedback(progress and job.main)
    sides = build_sides(models, layer.layers, layer.reduce, model_options, feedback)
    baselines = _baselines(sides, baseline, model_options, feedback)
    sides += distinct_sides(baselines)
    plan = input_plan(data, model_options.image_size, run.batch_size, sides)
    device = job.device(resolve_device(data.device))
    with feedback.bar("atlas") as advance:
        return draw_atlas(sides, settings, plan, device, job.progress(advance), job)


@_closing_files
def study(
    a: str | torch.nn.Module,
    b: str | torch.nn.Module,
    *,
    out: str | Path,
    class_fit: bool | None = None,
    progress: bool = False,
    **options: Any,
) -> StudyResult:
    """Every analysis of Grigg et al. 2021 on models ``a`` and ``b`` (``layers``: default
    the paper preset), on the same images, seeds and views: CKA within each and between
    them (``bootstrap`` intervals, default 100), their invariance to each of ``augment``
    (default simclr, crop, color, flip) with ``views`` views (default 2) and, on labelled
    images (or ``class_fit=True``), their class fit; written into ``out`` with
    ``report.html``, ``report.md`` and ``study.json``. Besides the shared options it takes
    those of ``CKAOptions`` (``estimator``, ``kernel``, ``rbf_sigma``) and of
    ``ClassFitOptions`` (but ``tokens``) by name.

    Both models run forward together: one plain pass feeds every CKA and the class fit,
    one pass per augmentation the invariance. Each finished pass is kept in ``out``, so
    rerunning an interrupted study computes only what is missing.
    """
    model_options, layer, data, view, run, chosen, fit, baseline = options_of(
        "study",
        options,
        ModelOptions,
        LayerOptions,
        DataOptions,
        ViewOptions,
        RunOptions,
        CKAOptions,
        ClassFitOptions,
        BaselineOptions,
        exclude=STUDY_EXCLUDES,
    )
    job = current_job()
    feedback = Feedback(progress and job.main)
    out = Path(out)
    settings = StudyOptions(
        cka_options=chosen,
        bootstrap=run.bootstrap,
        augment=view.augment or STUDY_AUGMENTATIONS,
        views=view.views,
        class_fit_options=fit,
        class_fit=class_fit,
    )
    with out_dir_lock(out) if job.main else nullcontext():
        sides = build_sides((a, b), layer.layers, layer.reduce, model_options, feedback)
        baselines = _baselines(sides, baseline, model_options, feedback)
        plan = input_plan(
            data, model_options.image_size, run.batch_size, sides, view_size=view.view_size
        )
        device = job.device(resolve_device(data.device))
        parts = StudyParts(out / PARTS_FOLDER)
        result = run_study(*sides, settings, plan, device, parts, feedback.bar, baselines, job)
        if job.main:  # one torchrun process writes; every process holds the result
            with staged_outputs(out, "study") as staging:
                result.save(staging)
    return result


def _baselines(
    sides: list[Side], chosen: BaselineOptions, options: ModelOptions, feedback: Feedback
) -> dict[str, Side]:
    """The untrained network of each model side, by its label, when ``chosen`` asks for
    them (activation files and Python modules have none, and say so)."""
    if chosen.baseline == "none":
        return {}
    baselines = untrained_sides(sides, options, feedback)
    for side in sides:
        if side.label not in baselines:
            warnings.warn(
                f"{side.label} has no untrained baseline: it is not a timm or torchvision "
                "spec, so there is no architecture to build one from",
                RepcompareWarning,
                stacklevel=3,
            )
    return baselines
