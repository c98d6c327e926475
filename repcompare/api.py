"""The Python API: one function per command, with the CLI's options as keyword arguments.

    import repcompare
    r = repcompare.cka("torchvision:resnet18", "timm:resnet18", data="builtin:256:32",
                       image_size=32)
    r.matrix.values, r.plot(), r.save("out/")

Models are spec strings (``timm:NAME[@CHECKPOINT]``), activation files (``.h5``) or
``torch.nn.Module`` objects (put in eval mode; preprocessing from timm's config, else
224 px ImageNet). Every function also takes the shared options of ``ModelOptions``
and ``DataOptions`` (``repcompare.options``) by name: ``data`` (a spec string, a path,
or a torch Dataset/DataLoader of ``(image, label)``), ``num_samples``, ``order``,
``seed``, ``image_size``, ``crop_pct``, ``mean``, ``std``, ``interpolation``,
``workers``, ``device``, ``token_cap``, ``pretrained``, ``init_seed``, ``encoder``,
``key``, ``model_kwargs``, ``allow_missing`` and ``tracer``. Nothing is printed unless
``progress=True``; bad input raises ``repcompare.InputError`` with one sentence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from repcompare.analyses.atlas import AtlasOptions, draw_atlas
from repcompare.analyses.cka import compare
from repcompare.analyses.class_fit import measure_class_fit
from repcompare.analyses.invariance import InvarianceOptions, measure_invariance
from repcompare.analyses.study import (
    PARTS_FOLDER,
    STUDY_AUGMENTATIONS,
    STUDY_PRESET,
    StudyOptions,
    StudyParts,
    run_study,
)
from repcompare.capture.describe import LayersResult, layer_infos
from repcompare.capture.select import select_layers
from repcompare.distributed import current_job, one_process
from repcompare.errors import InputError
from repcompare.extraction import ExtractResult
from repcompare.extraction import extract as extract_activations
from repcompare.options import (
    STUDY_EXCLUDES,
    CKAOptions,
    ClassFitOptions,
    DataOptions,
    ModelOptions,
    model_and_data,
    split_options,
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
    DEFAULT_BATCH_SIZE,
    build_sides,
    capture_target,
    cka_sides,
    input_plan,
    input_size,
    open_model,
)
from repcompare.similarity.sampled import DEFAULT_SAMPLE

Model = str | Path | torch.nn.Module


def layers(
    model: str | torch.nn.Module,
    *,
    layers: list[str] | str | None = None,
    reduce: str = "flatten",
    progress: bool = False,
    **options: Any,
) -> LayersResult:
    """The capture points of ``model`` (``layers``: presets, globs or names; default all)
    with output shapes, layouts and widths after ``reduce``."""
    model_options, _ = model_and_data("layers", options)
    loaded, graph = open_model(model, model_options, Feedback(progress))
    names = select_layers(graph, _listed(layers) or ["all"])
    return LayersResult(
        str(loaded.spec),
        input_size(loaded, model_options.image_size),
        graph.mode,
        reduce,
        layer_infos(graph, names, reduce),
    )


def extract(
    model: str | torch.nn.Module,
    *,
    out: str | Path,
    layers: list[str] | str | None = None,
    reduce: str = "flatten",
    views: int = 1,
    augment: str | None = None,
    view_size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dtype: str = "float16",
    compression: str = "none",
    force: bool = False,
    progress: bool = False,
    **options: Any,
) -> ExtractResult:
    """Capture ``model``'s ``layers`` (default: block outputs) over the data into the
    chunked, resumable HDF5 file ``out``; rerunning after an interruption continues from
    the last complete batch, and an existing complete file is left as it is."""
    model_options, data_options = model_and_data("extract", options)
    if Path(out).is_dir():
        raise InputError(
            f"--out {out} is a folder; give the activation file's path, e.g. {Path(out) / 'a.h5'}"
        )
    job = current_job()
    feedback = Feedback(progress and job.main)
    plan = input_plan(
        data_options,
        model_options.image_size,
        batch_size,
        views=views,
        augment=augment,
        view_size=view_size,
    )
    device = job.device(resolve_device(data_options.device))
    target = capture_target(model, _listed(layers), reduce, model_options, feedback)
    return extract_activations(
        target,
        plan,
        Path(out),
        device,
        dtype=dtype,
        compression=compression,
        force=force,
        feedback=feedback,
        job=job,
    )


def cka(
    a: Model,
    b: Model,
    *,
    layers_a: list[str] | str | None = None,
    layers_b: list[str] | str | None = None,
    bootstrap: int = 0,
    batch_size: int | None = None,
    reduce: str = "flatten",
    reduce_a: str | None = None,
    reduce_b: str | None = None,
    progress: bool = False,
    **options: Any,
) -> CKAResult:
    """CKA between every layer of ``a`` (rows) and every layer of ``b`` (columns), or another
    ``measure`` (``repcompare.similarity.MEASURES``: the shape metrics streamed when their
    cross-covariances fit, else every measure on a fixed sample of ``sample`` images).
    Besides the shared options it takes those of ``repcompare.options.CKAOptions`` by name
    (``kernel``, ``rbf_sigma``, ``rbf_median``, ``estimator``, ``measure``, ``sample``).

    The same model given twice with the same layers and reduction is one model (the
    within-model matrix, computed once); ``layers_b`` defaults to ``layers_a`` then.
    Models are captured on the fly on the same images in the same order.
    """
    model, data, chosen = split_options("cka", options, ModelOptions, DataOptions, CKAOptions)
    model_options, data_options = ModelOptions(**model), DataOptions(**data)
    job = current_job()
    feedback = Feedback(progress and job.main)
    side_a, side_b, symmetric = cka_sides(
        a,
        b,
        _listed(layers_a),
        _listed(layers_b),
        (reduce_a, reduce_b, reduce),
        model_options,
        feedback,
    )
    plan = input_plan(data_options, model_options.image_size, batch_size, [side_a, side_b])
    settings = CKAOptions(**chosen, bootstrap=bootstrap, seed=data_options.seed)
    device = job.device(resolve_device(data_options.device))
    with feedback.bar("cka") as advance:
        return compare(
            side_a, side_b, settings, plan, device, symmetric, job.progress(advance), job
        )


def invariance(
    *models: Model,
    augment: list[str] | str | None = None,
    views: int | None = None,
    layers: list[str] | str | None = None,
    reduce: str = "flatten",
    bootstrap: int = 0,
    batch_size: int | None = None,
    view_size: int | None = None,
    progress: bool = False,
    **options: Any,
) -> InvarianceResult:
    """Per-layer CKA between augmented views of the same images, for every model: one curve
    per augmentation (``augment``: one name or several; default simclr) with ``views``
    views (default 2). Activation files bring their own views."""
    model_options, data_options = model_and_data("invariance", options)
    job = current_job()
    feedback = Feedback(progress and job.main)
    augmentations = _listed(augment)
    settings = InvarianceOptions(
        tuple(augmentations) if augmentations else None,
        views,
        bootstrap=bootstrap,
        seed=data_options.seed,
    )
    sides = build_sides(models, _listed(layers), reduce, model_options, feedback)
    plan = input_plan(
        data_options, model_options.image_size, batch_size, sides, view_size=view_size
    )
    device = job.device(resolve_device(data_options.device))
    with feedback.bar("invariance") as advance:
        return measure_invariance(sides, settings, plan, device, job.progress(advance), job)


def class_fit(
    *models: Model,
    layers: list[str] | str | None = None,
    reduce: str = "flatten",
    bootstrap: int = 0,
    batch_size: int | None = None,
    progress: bool = False,
    **options: Any,
) -> ClassFitResult:
    """Per-layer class structure of every model over labelled images: CKA with the one-hot
    labels, crowding, kNN and linear-probe accuracy. Besides the shared options it takes
    those of ``repcompare.options.ClassFitOptions`` by name (``knn_k``, ``test_fraction``,
    ``probe_l2``; ``tokens``: also from the class token, the mean patch token and the
    centre patch token)."""
    model, data, fit = split_options(
        "class_fit", options, ModelOptions, DataOptions, ClassFitOptions
    )
    model_options, data_options = ModelOptions(**model), DataOptions(**data)
    job = current_job()
    feedback = Feedback(progress and job.main)
    settings = ClassFitOptions(**fit, bootstrap=bootstrap, seed=data_options.seed)
    sides = build_sides(models, _listed(layers), reduce, model_options, feedback)
    plan = input_plan(data_options, model_options.image_size, batch_size, sides)
    device = job.device(resolve_device(data_options.device))
    with feedback.bar("class-fit") as advance:
        return measure_class_fit(sides, settings, plan, device, job.progress(advance), job)


def atlas(
    *models: Model,
    layers: list[str] | str | None = None,
    reduce: str = "flatten",
    measure: list[str] | str = "cka",
    sample: int = DEFAULT_SAMPLE,
    reference: str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    **options: Any,
) -> AtlasResult:
    """Every layer of every model against every other by each ``measure`` (``"cka"``, or
    several: a list or ``"cka,procrustes"``), from one pass over the data: CKA streamed over
    all images into one accumulator, the other measures on a fixed sample of ``sample``
    images; ``reference`` (a model's label or position from 1) adds curves of every other
    model against it."""
    one_process("atlas")
    model_options, data_options = model_and_data("atlas", options)
    feedback = Feedback(progress)
    names = [m.strip() for item in _listed(measure) or [] for m in item.split(",") if m.strip()]
    settings = AtlasOptions(tuple(names) or AtlasOptions.measures, sample, reference)
    sides = build_sides(models, _listed(layers), reduce, model_options, feedback)
    plan = input_plan(data_options, model_options.image_size, batch_size, sides)
    device = resolve_device(data_options.device)
    with feedback.bar("atlas") as advance:
        return draw_atlas(sides, settings, plan, device, advance)


def study(
    a: str | torch.nn.Module,
    b: str | torch.nn.Module,
    *,
    out: str | Path,
    layers: list[str] | str | None = None,
    reduce: str = "flatten",
    augment: list[str] | str | None = None,
    views: int = 2,
    bootstrap: int = 100,
    class_fit: bool | None = None,
    batch_size: int | None = None,
    view_size: int | None = None,
    progress: bool = False,
    **options: Any,
) -> StudyResult:
    """Every analysis of Grigg et al. 2021 on models ``a`` and ``b`` (``layers``: default
    the paper preset), on the same images, seeds and views: CKA within each and between
    them (bootstrap intervals), their invariance to each of ``augment`` (default simclr,
    crop, color, flip) and, on labelled images (or ``class_fit=True``), their class fit;
    written into ``out`` with ``report.html``, ``report.md`` and ``study.json``. Besides
    the shared options it takes those of ``CKAOptions`` (``estimator``, ``kernel``,
    ``rbf_sigma``) and of ``ClassFitOptions`` (but ``tokens``) by name.

    Both models run forward together: one plain pass feeds every CKA and the class fit,
    one pass per augmentation the invariance. Each finished pass is kept in ``out``, so
    rerunning an interrupted study computes only what is missing.
    """
    one_process("study")
    model, data, chosen, fit = split_options(
        "study",
        options,
        ModelOptions,
        DataOptions,
        CKAOptions,
        ClassFitOptions,
        exclude=STUDY_EXCLUDES,
    )
    model_options, data_options = ModelOptions(**model), DataOptions(**data)
    feedback = Feedback(progress)
    out = Path(out)
    augmentations = _listed(augment)
    settings = StudyOptions(
        cka_options=CKAOptions(**chosen),
        bootstrap=bootstrap,
        augmentations=tuple(augmentations) if augmentations else STUDY_AUGMENTATIONS,
        views=views,
        class_fit_options=ClassFitOptions(**fit),
        class_fit=class_fit,
    )
    with out_dir_lock(out):
        sides = build_sides(
            (a, b), _listed(layers) or [STUDY_PRESET], reduce, model_options, feedback
        )
        plan = input_plan(
            data_options, model_options.image_size, batch_size, sides, view_size=view_size
        )
        device = resolve_device(data_options.device)
        parts = StudyParts(out / PARTS_FOLDER)
        result = run_study(*sides, settings, plan, device, parts, feedback.bar)
        with staged_outputs(out, "study") as staging:
            result.save(staging)
    return result


def _listed(selection: list[str] | tuple[str, ...] | str | None) -> list[str] | None:
    """A selection given as one string or several, as a list (None when empty)."""
    if isinstance(selection, str):
        return [selection]
    return list(selection) if selection else None
