"""The ``repcompare`` command line: parses arguments, runs analyses, hands results to reports.

Heavy libraries (torch, timm, torchvision) are imported inside the commands,
so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import atexit
import inspect
import json
import math
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from rich.markup import escape

from repcompare.errors import InputError, RepcompareError, RepcompareWarning, RunError
from repcompare.options import (
    STUDY_EXCLUDES,
    CKAOptions,
    ClassFitOptions,
    DataOptions,
    ModelOptions,
    option_fields,
)
from repcompare.progress import STDERR, failure_console, process_rank, torchrun_world

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
SIGNAL_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that the same clean-up runs."""


class Interrupted(typer.Exit):
    """The exit of an interrupt that ``interrupt_says`` has told."""


def _raise_terminated(_signum, _frame) -> None:
    raise Terminated


@contextmanager
def interrupt_says(message: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM inside: print ``interrupted; <message>`` and exit 130 or 143."""
    try:
        yield
    except KeyboardInterrupt as signal_raised:
        STDERR.print(_interrupted(message))
        name = "SIGTERM" if isinstance(signal_raised, Terminated) else "SIGINT"
        raise Interrupted(SIGNAL_EXIT_CODES[name]) from None


def with_options(
    *groups: type, exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None
) -> Callable:
    """Add to the decorated command a Typer option for every option field of the dataclass
    ``groups`` (``repcompare.options.option``: default, flag, help), but ``exclude`` (or
    ``only`` these); the command takes them as ``**options`` and hands ``ctx.params`` to
    the API."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        added = []
        for group in groups:
            hints = get_type_hints(group)
            for f in option_fields(group):
                if f.name in exclude or (only is not None and f.name not in only):
                    continue
                kind = f.metadata["cli_type"] or hints[f.name]
                flag = typer.Option(f.metadata["flag"], help=f.metadata["help"])
                added.append(
                    inspect.Parameter(
                        f.name,
                        inspect.Parameter.KEYWORD_ONLY,
                        default=f.default,
                        annotation=Annotated[kind, flag],
                    )
                )
        command.__signature__ = signature.replace(parameters=[*own, *added])
        return command

    return decorate


@app.callback()
def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback when something fails."
    ),
) -> None:
    """Compare what two vision networks learn, layer by layer."""


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


@app.command()
@with_options(ModelOptions)
def layers(
    ctx: typer.Context,
    model: ModelArg,
    layers: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    **options: Any,
) -> None:
    """List the capture points of MODEL with output shapes and reduced widths."""
    from repcompare import api
    from repcompare.report.terminal import layers_table, stdout_console

    result = api.layers(**api_arguments(ctx, "as_json"), progress=not as_json)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    title = f"{result.model}: {len(result.layers)} capture points ({result.tracer})"
    stdout_console().print(layers_table(result.records(), title, reduce))


def api_arguments(ctx: typer.Context, *cli_only: str) -> dict:
    """The command's arguments as the Python API's keyword arguments (the CLI's own left out)."""
    return {k: v for k, v in ctx.params.items() if k not in cli_only}


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


@app.command()
@with_options(ModelOptions, DataOptions, exclude=("token_cap",))
def extract(
    ctx: typer.Context,
    model: ModelArg,
    out: Annotated[Path, typer.Option("--out", help="The HDF5 file to write.")],
    layers: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    views: ViewsOpt = 1,
    augment: AugmentOpt = None,
    view_size: ViewSizeOpt = None,
    batch_size: BatchOpt = 64,
    dtype: Annotated[str, typer.Option("--dtype", help="float16 or float32.")] = "float16",
    compression: Annotated[str, typer.Option("--compression", help="none, lzf or gzip.")] = "none",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing file made with other settings.")
    ] = False,
    **options: Any,
) -> None:
    """Capture layer activations of MODEL on a data set into a chunked, resumable HDF5 file.

    Rerunning the same command after an interruption continues from the last
    complete batch.
    """
    from repcompare import api
    from repcompare.report.terminal import extract_summary, stdout_console

    with interrupt_says(f"rerun the same command to resume {out}"):
        result = api.extract(**api_arguments(ctx), progress=True)
    if result.images == 0:
        STDERR.print(
            f"{out} is already complete with these settings; nothing to do (--force recomputes it)"
        )
    stdout_console().print(extract_summary(result))


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


def computed_and_written(out: Path, command: str, compute):
    """Check and hold ``out``, ``compute()`` the result, save it into ``out`` as a whole (see
    ``report.outdir``: a signal on the way leaves ``out`` as it was), print its table and
    the files written. Returns the result."""
    from repcompare.report.files import write_report
    from repcompare.report.outdir import check_out_dir, out_dir_lock, staged_outputs
    from repcompare.report.terminal import report_table, stdout_console

    check_out_dir(out)
    writer = process_rank() == 0  # one torchrun process writes, the others hold the same result
    with (
        out_dir_lock(out) if writer else nullcontext(),
        interrupt_says(f"nothing was written; the results in {out} are as they were"),
    ):
        result = compute()
        if not writer:
            return result
        report = result.report()
        with staged_outputs(out, command) as staging:
            written = write_report(report, staging)
    stdout_console().print(report_table(report))
    STDERR.print(f"wrote {', '.join(p.name for p in written)} to {out}")
    return result


def undefined_layers(layers: list[str], values) -> list[str]:
    """The layers whose value is NaN (undefined: the layer is constant over the images)."""
    return [n for n, v in zip(layers, values, strict=True) if math.isnan(v)]


def warn_constant(label: str, layers) -> None:
    """Tell the user which layers are constant over the images (undefined values)."""
    if layers:
        STDERR.print(
            f"[yellow]{label}: {len(layers)} layer(s) are constant over these images, so their "
            f"values are undefined (grey or gaps in the pictures): {', '.join(layers)}[/]"
        )


@app.command()
@with_options(CKAOptions, ModelOptions, DataOptions)
def cka(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="An activation file or a MODEL spec.")],
    b: Annotated[str, typer.Argument(metavar="B", help="An activation file or a MODEL spec.")],
    out: OutDirOpt,
    layers_a: Annotated[
        list[str] | None, typer.Option("--layers-a", help="Layers of A (default: blocks).")
    ] = None,
    layers_b: Annotated[
        list[str] | None, typer.Option("--layers-b", help="Layers of B (default: blocks).")
    ] = None,
    bootstrap: BootstrapOpt = 0,
    batch_size: MinibatchOpt = None,
    reduce: ReduceOpt = "flatten",
    reduce_a: Annotated[
        str | None, typer.Option("--reduce-a", help="Reduction of model A (default: --reduce).")
    ] = None,
    reduce_b: Annotated[
        str | None, typer.Option("--reduce-b", help="Reduction of model B (default: --reduce).")
    ] = None,
    **options: Any,
) -> None:
    """Streaming CKA between every layer of A and every layer of B (files or MODEL specs).

    `cka A A` gives the within-model heatmap (the same spec or file twice is one
    model; --layers-b defaults to A's layers then). Model specs are captured on
    the fly on the same images in the same order and never written to disk.
    """
    from repcompare import api

    result = computed_and_written(
        out, "cka", lambda: api.cka(**api_arguments(ctx, "out"), progress=True)
    )
    warn_constant(result.side_a, result.matrix.degenerate_a)
    warn_constant(result.side_b, result.matrix.degenerate_b)


@app.command()
@with_options(ModelOptions, DataOptions)
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
    layers: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    bootstrap: BootstrapOpt = 0,
    batch_size: MinibatchOpt = None,
    view_size: ViewSizeOpt = None,
    **options: Any,
) -> None:
    """Per-layer CKA between augmented views of the same images, for one or more models.

    Every model sees the identical augmented images (same --seed, same views);
    activation files must hold at least two views (extract --views 2 --augment ...).
    """
    from repcompare import api

    result = computed_and_written(
        out,
        "invariance",
        lambda: api.invariance(*models, **api_arguments(ctx, "out", "models"), progress=True),
    )
    for curve in result.curves[: len(models)]:
        warn_constant(curve.model, undefined_layers(curve.layers, curve.values))


@app.command(name="class-fit")
@with_options(ClassFitOptions, ModelOptions, DataOptions, exclude=("token_cap",))
def class_fit(
    ctx: typer.Context,
    models: ModelsArg,
    out: OutDirOpt,
    layers: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    bootstrap: BootstrapOpt = 0,
    batch_size: MinibatchOpt = None,
    **options: Any,
) -> None:
    """Per-layer class structure: CKA with the labels, crowding, kNN and linear probe.

    Needs labelled images. kNN and the probe use spatially pooled features of
    every image, on one seeded, stratified train/test split; --tokens adds them
    for the class token, the mean patch token and the centre patch token.
    """
    from repcompare import api

    result = computed_and_written(
        out,
        "class-fit",
        lambda: api.class_fit(*models, **api_arguments(ctx, "out", "models"), progress=True),
    )
    for fit in result.fits:
        warn_constant(fit.model, undefined_layers(fit.layers, fit.measures["class_cka"]))


@app.command()
@with_options(ModelOptions, DataOptions, exclude=("token_cap",))
def atlas(
    ctx: typer.Context,
    models: Annotated[
        list[str],
        typer.Argument(metavar="M1 M2 [...]", help="Activation files or MODEL specs, two or more."),
    ],
    out: OutDirOpt,
    measure: Annotated[
        list[str] | None,
        typer.Option(
            "--measure",
            help="cka (default) or other measures of the registry: procrustes, angular, ... "
            "(docs/atlas.md; an unknown name lists them all); "
            "comma-separated or repeated.",
        ),
    ] = None,
    sample: Annotated[
        int,
        typer.Option("--sample", help="Images of the fixed sample for measures other than cka."),
    ] = 1024,
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="A model (label or position from 1) to draw curves to."),
    ] = None,
    layers: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    batch_size: MinibatchOpt = None,
    **options: Any,
) -> None:
    """Many models, many measures: every layer of every model against every other.

    One pass over the data: every model runs forward once per batch and CKA of
    all layer pairs comes from one accumulator; other measures use a fixed sample
    (--sample). Writes the full matrix, a clustered model x model map with its
    dendrogram, an MDS map and, with --reference, curves to that model.
    """
    from repcompare import api
    from repcompare.distributed import one_process

    one_process("atlas")  # before the --out folder is made
    arguments = api_arguments(ctx, "out", "models") | {"measure": measure or "cka"}
    computed_and_written(out, "atlas", lambda: api.atlas(*models, **arguments, progress=True))


@app.command()
@with_options(CKAOptions, ClassFitOptions, ModelOptions, DataOptions, exclude=STUDY_EXCLUDES)
def study(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="A MODEL spec.")],
    b: Annotated[str, typer.Argument(metavar="B", help="A MODEL spec.")],
    out: OutDirOpt,
    layers: Annotated[
        list[str] | None,
        typer.Option("--layers", help="Layers of both models (default: paper, Grigg et al.)."),
    ] = None,
    reduce: ReduceOpt = "flatten",
    augment: Annotated[
        list[str] | None,
        typer.Option(
            "--augment", help="Augmentations for invariance (default: simclr, crop, color, flip)."
        ),
    ] = None,
    views: Annotated[int, typer.Option("--views", help="Augmented views per image.")] = 2,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Resamples of minibatches for 95% intervals.")
    ] = 100,
    class_fit: Annotated[
        bool | None,
        typer.Option(
            "--class-fit/--no-class-fit",
            help="Measure class structure (default: when the images are labelled).",
        ),
    ] = None,
    batch_size: MinibatchOpt = None,
    view_size: ViewSizeOpt = None,
    **options: Any,
) -> None:
    """Every analysis of Grigg et al. 2021 on two models, and one self-contained report.html.

    On the same images, seeds and views: CKA within A, within B and A vs B (bootstrap
    intervals), invariance to each augmentation and, on labelled images, class fit.
    Both models run forward together, one pass for all CKA and the class fit and one
    per augmentation; finished passes are kept in OUT, so rerunning an interrupted
    study computes only what is missing.
    """
    from repcompare import api

    with interrupt_says(f"finished passes are kept in {out}; rerun the same command to resume"):
        result = api.study(**api_arguments(ctx), progress=True)
    report_study(result, out)


def report_study(result, out: Path) -> None:
    """Print a study's summary sentences, its warnings and where its report is."""
    from repcompare.report.terminal import stdout_console

    report = result.report()
    console = stdout_console()
    console.print(report.title, style="bold", markup=False)
    for sentence in report.summary:
        console.print(f"- {sentence.text}", markup=False)
    matrix = result.across.matrix
    warn_constant(result.across.side_a, matrix.degenerate_a)
    warn_constant(result.across.side_b, matrix.degenerate_b)
    if result.reused:
        STDERR.print(f"reused from an earlier run: {', '.join(result.reused)}")
    STDERR.print(f"wrote the report to {out / 'report.html'} (and report.md, study.json)")


@app.command()
@with_options(DataOptions, only=("device",))
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for checkpoints and results.")] = Path(
        "repcompare-demo"
    ),
    images: Annotated[
        int, typer.Option("--images", help="Built-in images to train on, and to analyse.")
    ] = 1000,
    epochs: Annotated[int, typer.Option("--epochs", help="Training epochs of each model.")] = 8,
    **options: Any,
) -> None:
    """Train a supervised and a SimCLR ResNet-18 on built-in images, then study them: every
    analysis and report.html (about 3 minutes on 2 CPU cores; checkpoints and finished
    passes are reused on a rerun)."""
    from repcompare.demo import demo_command, train_demo_model
    from repcompare.distributed import one_process
    from repcompare.sides.batches import resolve_device

    one_process("demo")
    device = options["device"]
    if images < 64 or epochs < 1:
        raise InputError("the demo needs --images 64 or more and --epochs 1 or more")
    target = resolve_device(device)
    specs = {}
    for objective in ("supervised", "simclr"):
        path = out / "checkpoints" / f"{objective}.safetensors"
        specs[objective] = f"timm:resnet18@{path}"
        STDERR.print(
            f"[bold]training the {objective} ResNet-18[/] ({images} images, {epochs} epochs)"
        )
        trained = train_demo_model(
            objective,
            path,
            images,
            epochs,
            target,
            lambda epoch, loss: STDERR.print(f"  epoch {epoch}: loss {loss:.3f}"),
        )
        if not trained:
            STDERR.print(f"  {path} was trained with these settings already; reusing it")
    args = demo_command(specs, out, images, device)
    STDERR.print(f"\n[bold]$ repcompare {' '.join(args)}[/]")
    code = main(args)
    if code:
        raise RunError(f"the demo's 'repcompare study' failed with exit code {code}")
    STDERR.print(f"\n[bold]done[/]: open {out / 'report.html'}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """repcompare's own warnings as one yellow sentence; others as Python shows them."""
    if issubclass(category, RepcompareWarning):
        STDERR.print(f"[yellow]warning:[/] {message}")
    else:
        STDERR.print(warnings.formatwarning(message, category, filename, lineno, line), end="")


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
    """Print one sentence for ``error`` (and its traceback under ``--debug``); its exit code.
    In a torchrun job the sentence names the rank (other than 0) that failed."""
    if debug:
        traceback.print_exception(error)
    console, rank = failure_console()
    signal_name = _signal_behind(error)
    if signal_name is not None:
        return _interrupted_code(signal_name)
    if torchrun_world() > 1:
        from repcompare.distributed import PeerStoppedError, record_failure

        if not isinstance(error, PeerStoppedError):
            record_failure()
    if isinstance(error, RepcompareError):
        console.print(f"[bold red]error:[/] {escape(f'{rank}{error}')}")
        return error.exit_code
    console.print(
        f"[bold red]error:[/] {escape(f'{rank}unexpected {type(error).__name__}: {error}')}. "
        "Rerun with --debug for the traceback and report it if it persists."
    )
    return 1


def _interrupted_code(signal_name: str) -> int:
    """Say that a signal ended the run; its exit code."""
    console, rank = failure_console()
    console.print(rank + _interrupted("nothing was marked complete, rerun the command"))
    return SIGNAL_EXIT_CODES[signal_name]


def _interrupted(message: str) -> str:
    """``interrupted; <message>``; in a torchrun job naming the rank that stopped first (when
    one ends, torchrun stops the others)."""
    stopped = None
    if torchrun_world() > 1:
        from repcompare.distributed import stopped_ranks_text

        stopped = stopped_ranks_text()
    cause = f" ({stopped} of this torchrun job stopped first)" if stopped else ""
    return f"interrupted{cause}; {message}"


def _unsaid_interrupt(done: SystemExit) -> str | None:
    """The signal behind an exit that Typer made of an interrupt outside ``interrupt_says``
    (it turns Ctrl-C, and so SIGTERM, into a silent exit 130), else None."""
    seen: BaseException | None = done
    while seen is not None:
        if isinstance(seen, Interrupted):
            return None  # said by interrupt_says
        if isinstance(seen, KeyboardInterrupt):
            return "SIGTERM" if isinstance(seen, Terminated) else "SIGINT"
        seen = seen.__cause__ or seen.__context__
    return None


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
        signal_name = _unsaid_interrupt(done)
        if signal_name is not None:
            return _interrupted_code(signal_name)
        return done.code if isinstance(done.code, int) else 0
    except Exception as error:
        return _failure_code(error, debug)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def run() -> None:
    """Console-script entry point.

    Outside torchrun and without a tracer or profiler (coverage, cProfile), the process
    ends as soon as the atexit handlers have run, without the interpreter's own
    finalisation: its garbage collections walk every object torch and its imports made,
    about a second per command. Outputs are written and closed before ``main`` returns.
    """
    ending: list[int] = []
    if torchrun_world() == 1 and sys.gettrace() is None and sys.getprofile() is None:
        atexit.register(_end_now, ending)  # the first registered, so the last to run
    ending.append(main())
    sys.exit(ending[0])


def _end_now(ending: list[int]) -> None:
    """End the process with the exit code of ``main`` (1 if it raised), stdout and stderr
    flushed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(ending[0] if ending else 1)
