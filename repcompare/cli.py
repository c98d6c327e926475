"""The ``repcompare`` command line: parses arguments, runs analyses, hands results to reports.

Heavy libraries (torch, timm, torchvision) are imported inside the commands,
so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from repcompare.errors import InputError, RepcompareError, RepcompareWarning, RunError

if TYPE_CHECKING:
    from repcompare.activations import InputPlan

app = typer.Typer(
    name="repcompare",
    help=(
        "Compare the layer-by-layer representations of two vision networks: "
        "streaming CKA between every pair of layers, per-layer augmentation "
        "invariance and per-layer class structure."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the same clean-up runs."""


def _raise_terminated(_signum, _frame) -> None:
    raise Terminated


@contextmanager
def interrupt_says(message: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM inside: print ``interrupted; <message>`` and exit 130 or 143."""
    try:
        yield
    except KeyboardInterrupt as signal_raised:
        stderr.print(f"interrupted; {message}")
        name = "SIGTERM" if isinstance(signal_raised, Terminated) else "SIGINT"
        raise typer.Exit(SIGNAL_EXIT_CODES[name]) from None


@app.callback()
def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback when something fails."
    ),
) -> None:
    """Compare what two vision networks learn, layer by layer."""


def image_size_of(loaded, image_size: int | None) -> tuple[int, int, int]:
    """The (C, H, W) input size: the model's own, or N x N when given."""
    from repcompare.data.transforms import TransformOverrides, resolve_config

    return resolve_config(loaded.data_config, TransformOverrides(image_size=image_size)).input_size


def open_model(spec_text: str, params: dict, quiet: bool = False):
    """Parse, build and trace a model, telling the user what was loaded and how.

    The model options come from the command's ``params``: ``pretrained``,
    ``allow_missing``, ``image_size``, ``tracer``, ``init_seed``, ``encoder``/``key``
    (which encoder of the checkpoint) and ``model_kwargs`` (``key=value,...``, for the
    library's model constructor).
    """
    pretrained, allow_missing = params["pretrained"], params["allow_missing"]
    image_size, tracer, init_seed = params["image_size"], params["tracer"], params["init_seed"]
    encoder, key, model_kwargs = params["encoder"], params["key"], params["model_kwargs"]
    from dataclasses import replace

    from repcompare.capture.graph import discover
    from repcompare.capture.models import load_model
    from repcompare.capture.spec import parse_model_kwargs, parse_spec

    if tracer not in ("auto", "fx", "hooks"):
        raise InputError(f"unknown tracer {tracer!r}; use auto, fx or hooks")
    spec = replace(
        parse_spec(spec_text), kwargs=parse_model_kwargs(model_kwargs), encoder=encoder, key=key
    )
    loaded = load_model(
        spec,
        pretrained=pretrained,
        allow_missing=allow_missing,
        init_seed=init_seed,
        image_size=image_size,
    )
    graph = discover(loaded.module, image_size_of(loaded, image_size), tracer)
    if not quiet:
        for line in [*loaded.notes, *(loaded.load_report.lines() if loaded.load_report else [])]:
            stderr.print(f"[dim]{line}[/]")
        if graph.fallback_reason:
            stderr.print(f"[yellow]{graph.fallback_reason}; using module hooks[/]")
    return loaded, graph


ModelArg = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        help="timm:NAME, torchvision:NAME or a bare NAME, optionally @PATH to a checkpoint.",
    ),
]
LayersOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--layers",
        help="Presets (blocks, residual, paper, all), glob patterns or names; comma-separated "
        "or repeated.",
    ),
]
ReduceOpt = Annotated[
    str,
    typer.Option(
        "--reduce",
        help="flatten, avgpool, cls (class token), mean (patch tokens), or tokens (cka and "
        "invariance on the fly: every patch token of every image is an example).",
    ),
]
TokenCapOpt = Annotated[
    int,
    typer.Option(
        "--token-cap",
        help="With --reduce tokens: token rows kept per batch, a seeded random subset, the same "
        "for every layer, model and view.",
    ),
]
PretrainedOpt = Annotated[
    bool, typer.Option("--pretrained", help="Use the library's published weights (online).")
]
InitSeedOpt = Annotated[
    int,
    typer.Option(
        "--init-seed", help="Seed of the random initialisation (models built without weights)."
    ),
]
EncoderOpt = Annotated[
    str | None,
    typer.Option(
        "--encoder",
        help="Which encoder of a checkpoint holding several: base, momentum (MoCo), teacher, "
        "student (DINO). Default: teacher, else base.",
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key", help="Load the checkpoint's weights under this key prefix (e.g. student)."
    ),
]
ModelKwargsOpt = Annotated[
    str | None,
    typer.Option(
        "--model-kwargs",
        help="key=value,... for the model constructor (values are Python literals, else "
        "strings), e.g. global_pool=avg.",
    ),
]
AllowMissingOpt = Annotated[
    bool,
    typer.Option("--allow-missing", help="Load a checkpoint that lacks some backbone weights."),
]
ImageSizeOpt = Annotated[
    int | None, typer.Option("--image-size", help="Input size N (NxN) instead of the model's.")
]
TracerOpt = Annotated[str, typer.Option("--tracer", help="auto (fx, else hooks), fx or hooks.")]


@app.command()
def layers(
    ctx: typer.Context,
    model: ModelArg,
    layer_selection: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    pretrained: PretrainedOpt = False,
    init_seed: InitSeedOpt = 0,
    encoder: EncoderOpt = None,
    key: KeyOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    allow_missing: AllowMissingOpt = False,
    image_size: ImageSizeOpt = None,
    tracer: TracerOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the capture points of MODEL with output shapes and reduced widths."""
    from repcompare.capture.describe import layer_rows
    from repcompare.capture.select import select_layers
    from repcompare.report.terminal import layers_table, stdout_console

    loaded, graph = open_model(model, ctx.params, quiet=as_json)
    names = select_layers(graph, layer_selection or ["all"])
    rows = layer_rows(graph, names, reduce)
    if as_json:
        size = image_size_of(loaded, image_size)
        document = {
            "model": str(loaded.spec),
            "input_size": list(size),
            "tracer": graph.mode,
            "reduction": reduce,
            "layers": rows,
        }
        typer.echo(json.dumps(document, indent=2))
        return
    title = f"{loaded.spec}: {len(rows)} capture points ({graph.mode})"
    stdout_console().print(layers_table(rows, title, reduce))


DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="builtin[:N[:SIZE]] (default), an image folder, cifar10:PATH, cifar100:PATH, "
        "or a .npz with images and labels.",
    ),
]
NumSamplesOpt = Annotated[
    int | None, typer.Option("--num-samples", help="Use this many images (a seeded subset).")
]
OrderOpt = Annotated[
    str,
    typer.Option("--order", help="random (seeded permutation, default) or stored (source order)."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the sample order and the views.")]
ViewsOpt = Annotated[
    int, typer.Option("--views", help="Augmented views per image (needs --augment).")
]
AugmentOpt = Annotated[
    str | None,
    typer.Option("--augment", help="simclr, crop, flip, color, grayscale, blur or none."),
]
ViewSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--view-size", help="Size of augmented views (default: the data's own size or 224)."
    ),
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Images per batch.")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", help="Data-loading processes (default: cores - 1).")
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
CropOpt = Annotated[
    float | None, typer.Option("--crop-pct", help="Centre-crop fraction (1.0 = no crop margin).")
]
MeanOpt = Annotated[str | None, typer.Option("--mean", help="Normalisation mean R,G,B.")]
StdOpt = Annotated[str | None, typer.Option("--std", help="Normalisation std R,G,B.")]
InterpolationOpt = Annotated[
    str | None, typer.Option("--interpolation", help="bilinear, bicubic or nearest.")
]


def _triple(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise InputError(f"{option} takes three comma-separated numbers, e.g. 0.485,0.456,0.406")
    return values


def input_plan(
    params: dict, batch_size: int, views: int = 1, augment: str | None = None
) -> InputPlan:
    """The InputPlan of a command's shared data and preprocessing options (its ``ctx.params``)."""
    import os

    from repcompare.activations import InputPlan
    from repcompare.capture.reduce import DEFAULT_TOKEN_CAP
    from repcompare.data.transforms import TransformOverrides

    overrides = TransformOverrides(
        image_size=params["image_size"],
        crop_pct=params["crop_pct"],
        mean=_triple(params["mean"], "--mean"),
        std=_triple(params["std"], "--std"),
        interpolation=params["interpolation"],
    )
    workers = params["workers"]
    if workers is None:
        workers = max(0, min(8, (os.cpu_count() or 1) - 1))
    return InputPlan(
        data=params["data"],
        num_samples=params["num_samples"],
        order=params["order"],
        seed=params["seed"],
        views=views,
        augment=augment,
        view_size=params.get("view_size"),
        overrides=overrides,
        batch_size=batch_size,
        workers=workers,
        token_cap=params.get("token_cap", DEFAULT_TOKEN_CAP),
    )


@app.command()
def extract(
    ctx: typer.Context,
    model: ModelArg,
    out: Annotated[Path, typer.Option("--out", help="The HDF5 file to write.")],
    data: DataOpt = None,
    layer_selection: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    views: ViewsOpt = 1,
    augment: AugmentOpt = None,
    view_size: ViewSizeOpt = None,
    batch_size: BatchOpt = 64,
    num_samples: NumSamplesOpt = None,
    order: OrderOpt = "random",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="float16 or float32.")] = "float16",
    compression: Annotated[str, typer.Option("--compression", help="none, lzf or gzip.")] = "none",
    image_size: ImageSizeOpt = None,
    crop_pct: CropOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    interpolation: InterpolationOpt = None,
    workers: WorkersOpt = None,
    pretrained: PretrainedOpt = False,
    init_seed: InitSeedOpt = 0,
    encoder: EncoderOpt = None,
    key: KeyOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    allow_missing: AllowMissingOpt = False,
    tracer: TracerOpt = "auto",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing file made with other settings.")
    ] = False,
) -> None:
    """Capture layer activations of MODEL on a data set into a chunked, resumable HDF5 file.

    Rerunning the same command after an interruption continues from the last
    complete batch.
    """
    from repcompare.activations import CaptureTarget, resolve_device
    from repcompare.capture.select import select_layers
    from repcompare.extraction import extract as run_extract
    from repcompare.report.terminal import extract_summary, stdout_console

    plan = input_plan(ctx.params, batch_size, views, augment)
    target_device = resolve_device(device)
    loaded, graph = open_model(model, ctx.params)
    target = CaptureTarget(
        loaded, graph, select_layers(graph, layer_selection or ["blocks"]), reduce
    )
    with interrupt_says(f"rerun the same command to resume {out}"):
        result = run_extract(
            target,
            plan,
            out,
            target_device,
            dtype=dtype,
            compression=compression,
            force=force,
            console=stderr,
        )
    if result.images == 0:
        stderr.print(
            f"{out} is already complete with these settings; nothing to do (--force recomputes it)"
        )
    stdout_console().print(extract_summary(result))


def check_file_reduction(file, reduction: str | None) -> None:
    """A reduction asked of an activation file must be the one it was extracted with."""
    if reduction not in (None, file.settings.reduction):
        raise InputError(
            f"{file.path} holds activations reduced with {file.settings.reduction!r}, which a "
            f"file cannot change to {reduction!r}; extract it again with --reduce {reduction}, "
            "or drop the option"
        )


def build_side(text: str, selection: list[str] | None, params: dict, reduction: str | None = None):
    """A comparison side from an activation file path or a MODEL spec (model options from
    the command's ``params``; a model's reduction is ``reduction``, else ``--reduce``)."""
    from repcompare.activations import CaptureTarget
    from repcompare.analyses.sides import (
        Side,
        layer_roles,
        looks_like_file,
        select_stored_layers,
    )
    from repcompare.capture.select import select_layers
    from repcompare.store.reader import open_activations

    if looks_like_file(text):
        file = open_activations(Path(text))
        check_file_reduction(file, reduction)
        roles = json.loads(file.attrs.get("layer_roles", "{}"))
        return Side(file.path.stem, select_stored_layers(file, selection), file=file, roles=roles)
    loaded, graph = open_model(text, params)
    layers_chosen = select_layers(graph, selection or ["blocks"])
    target = CaptureTarget(loaded, graph, layers_chosen, reduction or params["reduce"])
    return Side(
        loaded.spec.short_name,
        layers_chosen,
        target=target,
        roles=layer_roles(graph.blocks, graph.residual),
    )


def reselect_side(side, selection, reduction: str | None, params: dict):
    """The same file or loaded model as ``side`` with other layers or another reduction
    (``reduction``, else ``--reduce`` from ``params``)."""
    from dataclasses import replace

    from repcompare.analyses.sides import select_stored_layers
    from repcompare.capture.select import select_layers

    if side.is_file:
        check_file_reduction(side.file, reduction)
        return replace(side, layers=select_stored_layers(side.file, selection))
    chosen = select_layers(side.target.graph, selection) if selection else side.layers
    target = replace(side.target, layers=chosen, reduction=reduction or params["reduce"])
    return replace(side, layers=chosen, target=target)


MinibatchOpt = Annotated[
    int | None,
    typer.Option("--batch-size", help="Examples per minibatch (default: 64, or the file's)."),
]
BootstrapOpt = Annotated[
    int, typer.Option("--bootstrap", help="Resamples of minibatches for 95% intervals.")
]
ModelsArg = Annotated[
    list[str],
    typer.Argument(metavar="A [B ...]", help="Activation files or MODEL specs, one or more."),
]
OutDirOpt = Annotated[Path, typer.Option("--out", help="Folder for tables and plots.")]


def distinct_labels(sides, texts: list[str]) -> None:
    """Give sides that share a label (same architecture) the argument they came from instead,
    and letters when even those agree."""
    if len({s.label for s in sides}) == len(sides):
        return
    labels = [t.split("@")[0] for t in texts]
    if len(set(labels)) < len(labels):
        labels = [f"{chr(ord('A') + i)}: {label}" for i, label in enumerate(labels)]
    for side, label in zip(sides, labels, strict=True):
        side.label = label


def build_sides(texts: list[str], selection: list[str] | None, params: dict):
    """One side per argument (files or MODEL specs), each named distinctly."""
    repeated = sorted({t for t in texts if texts.count(t) > 1})
    if repeated:
        raise InputError(f"{repeated[0]} is given more than once; give each model once")
    sides = [build_side(t, selection, params) for t in texts]
    distinct_labels(sides, texts)
    return sides


def batch_size_of(sides, batch_size: int | None) -> int:
    """The --batch-size given, else the first activation file's, else 64."""
    files = [s.file for s in sides if s.is_file]
    return batch_size or (files[0].settings.batch_size if files else 64)


def with_progress(description: str, compute):
    """``compute(progress)`` under a transient progress bar; ``progress(done, total)``."""
    from rich.progress import Progress

    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task(description, total=None)
        return compute(lambda done, total: bar.update(task, advance=done, total=total))


def computed_and_written(out: Path, owned: tuple[str, ...], description: str, compute, write):
    """``compute(progress)`` under a progress bar, then ``write(result, folder)`` into ``out``
    as a whole (see ``report.outdir``); a signal on the way leaves ``out`` as it was.

    Returns the result and the paths written.
    """
    from repcompare.report.outdir import staged_outputs

    with interrupt_says(f"nothing was written; the results in {out} are as they were"):
        result = with_progress(description, compute)
        with staged_outputs(out, owned) as staging:
            return result, write(result, staging)


def undefined_layers(layers: list[str], values) -> list[str]:
    """The layers whose value is NaN (undefined: the layer is constant over the images)."""
    return [n for n, v in zip(layers, values, strict=True) if math.isnan(v)]


def warn_constant(label: str, layers) -> None:
    """Tell the user which layers are constant over the images (undefined values)."""
    if layers:
        stderr.print(
            f"[yellow]{label}: {len(layers)} layer(s) are constant over these images, so their "
            f"values are undefined (grey or gaps in the pictures): {', '.join(layers)}. "
            "Random-init timm ResNets zero the last BatchNorm of each block; load trained "
            "weights.[/]"
        )


@app.command()
def cka(
    ctx: typer.Context,
    model_a: Annotated[
        str, typer.Argument(metavar="A", help="An activation file or a MODEL spec.")
    ],
    model_b: Annotated[
        str, typer.Argument(metavar="B", help="An activation file or a MODEL spec.")
    ],
    out: OutDirOpt,
    layers_a: Annotated[
        list[str] | None, typer.Option("--layers-a", help="Layers of A (default: blocks).")
    ] = None,
    layers_b: Annotated[
        list[str] | None, typer.Option("--layers-b", help="Layers of B (default: blocks).")
    ] = None,
    kernel: Annotated[str, typer.Option("--kernel", help="linear or rbf.")] = "linear",
    rbf_sigma: Annotated[
        float,
        typer.Option("--rbf-sigma", help="RBF bandwidth as a fraction of the median distance."),
    ] = 0.8,
    estimator: Annotated[
        str, typer.Option("--estimator", help="minibatch (unbiased HSIC_1), exact or debiased.")
    ] = "minibatch",
    bootstrap: BootstrapOpt = 0,
    batch_size: MinibatchOpt = None,
    data: DataOpt = None,
    num_samples: NumSamplesOpt = None,
    order: OrderOpt = "random",
    seed: SeedOpt = 0,
    reduce: ReduceOpt = "flatten",
    reduce_a: Annotated[
        str | None, typer.Option("--reduce-a", help="Reduction of model A (default: --reduce).")
    ] = None,
    reduce_b: Annotated[
        str | None, typer.Option("--reduce-b", help="Reduction of model B (default: --reduce).")
    ] = None,
    token_cap: TokenCapOpt = 1024,
    device: DeviceOpt = "auto",
    image_size: ImageSizeOpt = None,
    crop_pct: CropOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    interpolation: InterpolationOpt = None,
    workers: WorkersOpt = None,
    pretrained: PretrainedOpt = False,
    init_seed: InitSeedOpt = 0,
    encoder: EncoderOpt = None,
    key: KeyOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    allow_missing: AllowMissingOpt = False,
    tracer: TracerOpt = "auto",
) -> None:
    """Streaming CKA between every layer of A and every layer of B (files or MODEL specs).

    `cka A A` gives the within-model heatmap (the same spec or file twice is one
    model; --layers-b defaults to A's layers then). Model specs are captured on
    the fly on the same images in the same order and never written to disk.
    """
    from repcompare.activations import resolve_device
    from repcompare.analyses.cka import CKAOptions, compare
    from repcompare.report.cka import OWNED_FILES, write_cka_outputs
    from repcompare.report.outdir import check_out_dir
    from repcompare.report.tables import best_matches
    from repcompare.report.terminal import cka_table, stdout_console

    check_out_dir(out)
    side_a = build_side(model_a, layers_a, ctx.params, reduce_a)
    same_source = model_a == model_b
    same_layers = not layers_b or layers_b == layers_a
    symmetric = same_source and same_layers and (reduce_a or reduce) == (reduce_b or reduce)
    if symmetric:
        side_b = side_a
    elif same_source:
        side_b = reselect_side(side_a, layers_b or layers_a, reduce_b, ctx.params)
    else:
        side_b = build_side(model_b, layers_b, ctx.params, reduce_b)
    if not symmetric:
        distinct_labels([side_a, side_b], [model_a, model_b])
    plan = input_plan(ctx.params, batch_size_of([side_a, side_b], batch_size))
    options = CKAOptions(
        kernel=kernel, rbf_fraction=rbf_sigma, estimator=estimator, bootstrap=bootstrap, seed=seed
    )
    result, written = computed_and_written(
        out,
        OWNED_FILES,
        "cka",
        lambda progress: compare(
            side_a, side_b, options, plan, resolve_device(device), symmetric, progress
        ),
        write_cka_outputs,
    )
    stdout_console().print(cka_table(result, best_matches(result)))
    warn_constant(result.side_a, result.matrix.degenerate_a)
    warn_constant(result.side_b, result.matrix.degenerate_b)
    stderr.print(f"wrote {', '.join(p.name for p in written)} to {out}")


@app.command()
def invariance(
    ctx: typer.Context,
    models: ModelsArg,
    out: OutDirOpt,
    augment: Annotated[
        list[str] | None,
        typer.Option(
            "--augment",
            help="simclr (default), crop, flip, color, grayscale, blur or none; repeat it for a "
            "curve per augmentation. Activation files bring their own.",
        ),
    ] = None,
    views: Annotated[
        int | None,
        typer.Option("--views", help="Augmented views per image (default 2; files: their own)."),
    ] = None,
    layer_selection: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    token_cap: TokenCapOpt = 1024,
    bootstrap: BootstrapOpt = 0,
    batch_size: MinibatchOpt = None,
    data: DataOpt = None,
    num_samples: NumSamplesOpt = None,
    order: OrderOpt = "random",
    seed: SeedOpt = 0,
    view_size: ViewSizeOpt = None,
    device: DeviceOpt = "auto",
    image_size: ImageSizeOpt = None,
    crop_pct: CropOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    interpolation: InterpolationOpt = None,
    workers: WorkersOpt = None,
    pretrained: PretrainedOpt = False,
    init_seed: InitSeedOpt = 0,
    encoder: EncoderOpt = None,
    key: KeyOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    allow_missing: AllowMissingOpt = False,
    tracer: TracerOpt = "auto",
) -> None:
    """Per-layer CKA between augmented views of the same images, for one or more models.

    Every model sees the identical augmented images (same --seed, same views);
    activation files must hold at least two views (extract --views 2 --augment ...).
    """
    from repcompare.activations import resolve_device
    from repcompare.analyses.invariance import InvarianceOptions, measure_invariance
    from repcompare.report.invariance import (
        OWNED_FILES,
        columns,
        invariance_records,
        write_invariance_outputs,
    )
    from repcompare.report.outdir import check_out_dir
    from repcompare.report.terminal import records_table, stdout_console

    check_out_dir(out)
    options = InvarianceOptions(
        tuple(augment) if augment else None, views, bootstrap=bootstrap, seed=seed
    )
    sides = build_sides(models, layer_selection, ctx.params)
    plan = input_plan(ctx.params, batch_size_of(sides, batch_size))
    result, written = computed_and_written(
        out,
        OWNED_FILES,
        "invariance",
        lambda progress: measure_invariance(sides, options, plan, resolve_device(device), progress),
        write_invariance_outputs,
    )
    s = result.settings
    caption = "; ".join(f"{k} inputs {v[:16]}" for k, v in result.fingerprints.items())
    title = f"Invariance: CKA between {s.views} augmented views, {s.n_examples} images"
    table = records_table(invariance_records(result), columns(bootstrap > 0), title, caption)
    stdout_console().print(table)
    for curve in result.curves[: len(sides)]:
        warn_constant(curve.model, undefined_layers(curve.layers, curve.values))
    stderr.print(f"wrote {', '.join(p.name for p in written)} to {out}")


@app.command(name="class-fit")
def class_fit(
    ctx: typer.Context,
    models: ModelsArg,
    out: OutDirOpt,
    layer_selection: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    knn_k: Annotated[int, typer.Option("--knn-k", help="Neighbours of the kNN vote.")] = 20,
    test_fraction: Annotated[
        float,
        typer.Option("--test-fraction", help="Share of each class held out for kNN and probe."),
    ] = 0.2,
    probe_l2: Annotated[
        float, typer.Option("--probe-l2", help="L2 penalty of the linear probe.")
    ] = 1e-3,
    tokens: Annotated[
        bool,
        typer.Option(
            "--tokens",
            help="Also kNN and probe accuracy from the class token, the mean of the patch "
            "tokens and the centre patch token of each layer (ViTs; needs --reduce flatten).",
        ),
    ] = False,
    bootstrap: BootstrapOpt = 0,
    batch_size: MinibatchOpt = None,
    data: DataOpt = None,
    num_samples: NumSamplesOpt = None,
    order: OrderOpt = "random",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    image_size: ImageSizeOpt = None,
    crop_pct: CropOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    interpolation: InterpolationOpt = None,
    workers: WorkersOpt = None,
    pretrained: PretrainedOpt = False,
    init_seed: InitSeedOpt = 0,
    encoder: EncoderOpt = None,
    key: KeyOpt = None,
    model_kwargs: ModelKwargsOpt = None,
    allow_missing: AllowMissingOpt = False,
    tracer: TracerOpt = "auto",
) -> None:
    """Per-layer class structure: CKA with the labels, crowding, kNN and linear probe.

    Needs labelled images. kNN and the probe use spatially pooled features of
    every image, on one seeded, stratified train/test split; --tokens adds them
    for the class token, the mean patch token and the centre patch token.
    """
    from repcompare.activations import resolve_device
    from repcompare.analyses.class_fit import ClassFitOptions, measure_class_fit
    from repcompare.report.class_fit import (
        OWNED_FILES,
        class_fit_records,
        columns,
        write_class_fit_outputs,
    )
    from repcompare.report.outdir import check_out_dir
    from repcompare.report.terminal import records_table, stdout_console

    check_out_dir(out)
    options = ClassFitOptions(
        knn_k, test_fraction, probe_l2, bootstrap=bootstrap, seed=seed, tokens=tokens
    )
    sides = build_sides(models, layer_selection, ctx.params)
    plan = input_plan(ctx.params, batch_size_of(sides, batch_size))
    result, written = computed_and_written(
        out,
        OWNED_FILES,
        "class-fit",
        lambda progress: measure_class_fit(sides, options, plan, resolve_device(device), progress),
        write_class_fit_outputs,
    )
    s = result.settings
    title = (
        f"Class fit: {s.n_examples} images, {s.num_classes} classes "
        f"(kNN and probe: {s.n_train} train / {s.n_test} test)"
    )
    caption = f"inputs {result.fingerprint[:16]}; every measure in class_fit.csv"
    records = class_fit_records(result)
    stdout_console().print(records_table(records, columns(tokens), title, caption))
    for fit in result.fits:
        warn_constant(fit.model, undefined_layers(fit.layers, fit.measures["class_cka"]))
    stderr.print(f"wrote {', '.join(p.name for p in written)} to {out}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for checkpoints and results.")] = Path(
        "repcompare-demo"
    ),
    images: Annotated[
        int, typer.Option("--images", help="Built-in images to train on, and to analyse.")
    ] = 1000,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs of each model.")] = 8,
    device: DeviceOpt = "auto",
) -> None:
    """Train a supervised and a SimCLR ResNet-18 on built-in images, then compare them with
    every command (about 3 minutes on 2 CPU cores; checkpoints are reused on a rerun)."""
    from repcompare.activations import resolve_device
    from repcompare.demo import demo_commands, train_demo_model

    if images < 64 or epochs < 1:
        raise InputError("the demo needs --images 64 or more and --epochs 1 or more")
    target = resolve_device(device)
    specs = {}
    for objective in ("supervised", "simclr"):
        path = out / "checkpoints" / f"{objective}.safetensors"
        specs[objective] = f"timm:resnet18@{path}"
        stderr.print(
            f"[bold]training the {objective} ResNet-18[/] ({images} images, {epochs} epochs)"
        )
        trained = train_demo_model(
            objective,
            path,
            images,
            epochs,
            target,
            lambda epoch, loss: stderr.print(f"  epoch {epoch}: loss {loss:.3f}"),
        )
        if not trained:
            stderr.print(f"  {path} was trained with these settings already; reusing it")
    for args in demo_commands(specs, out, images, device):
        stderr.print(f"\n[bold]$ repcompare {' '.join(args)}[/]")
        code = main(args)
        if code:
            raise RunError(f"the demo step 'repcompare {args[0]}' failed with exit code {code}")
    stderr.print(
        f"\n[bold]done[/]: heatmaps in {out / 'cka'}, invariance curves in {out / 'invariance'}, "
        f"class structure in {out / 'class_fit'} (each folder has a .md summary)"
    )


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """repcompare's own warnings as one yellow sentence; others as Python shows them."""
    if issubclass(category, RepcompareWarning):
        stderr.print(f"[yellow]warning:[/] {message}")
    else:
        stderr.print(warnings.formatwarning(message, category, filename, lineno, line), end="")


def _signal_behind(error: BaseException) -> str | None:
    """``SIGINT``/``SIGTERM`` when ``error`` was raised while handling an interrupt.

    An interrupt that lands inside a library import or a C extension can come out
    as another exception (a RuntimeError from an import hook); it is still an interrupt.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return "SIGTERM" if isinstance(seen, Terminated) else "SIGINT"
        seen = seen.__context__
    return None


def _failure_code(error: BaseException, debug: bool) -> int:
    """Print one sentence for ``error`` (and its traceback under ``--debug``); its exit code."""
    if debug:
        traceback.print_exception(error)
    signal_name = _signal_behind(error)
    if signal_name is not None:
        stderr.print("interrupted; nothing was marked complete, rerun the command")
        return SIGNAL_EXIT_CODES[signal_name]
    if isinstance(error, RepcompareError):
        stderr.print(f"[bold red]error:[/] {error}")
        return error.exit_code
    stderr.print(
        f"[bold red]error:[/] unexpected {type(error).__name__}: {error}. "
        "Rerun with --debug for the traceback and report it if it persists."
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 failure, 2 bad input).

    ``--debug`` may stand anywhere on the command line and only adds the
    traceback; without it, errors are one sentence on stderr. SIGTERM is
    handled like Ctrl-C (clean-up runs, nothing is marked complete), exit 143.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args = ["--debug", *(a for a in args if a != "--debug")]
    command = typer.main.get_command(app)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            command.main(args=args, prog_name="repcompare", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    except Exception as error:
        return _failure_code(error, debug)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
