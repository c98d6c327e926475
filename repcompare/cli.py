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
from typing import Annotated, Any, get_args, get_type_hints

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup
from typer.models import OptionInfo

from repcompare.errors import InputError, RepcompareError, RepcompareWarning, RunError
from repcompare.options import (
    COMMAND_DEFAULTS,
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
    option_fields,
)
from repcompare.progress import STDERR, failure_console, process_rank, torchrun_world


class _BareHelpFlag:
    """``--help`` without a value metavar (Typer shows ``<bool>``), as every other flag."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option


class Command(_BareHelpFlag, TyperCommand):
    """A repcompare command."""


class Group(_BareHelpFlag, TyperGroup):
    """The repcompare command group."""


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
    cls=Group,
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


PANELS = ("Models", "Layers", "Data", "Analysis", "Output")  # the order of --help's sections


def with_options(
    *groups: type, exclude: tuple[str, ...] = (), only: tuple[str, ...] | None = None
) -> Callable:
    """Add to the decorated command a Typer option for every option field of the dataclass
    ``groups`` (``repcompare.options.option``: default, flag, help; the group's ``panel`` of
    ``--help``), but ``exclude`` (or ``only`` these); a default the command changes is read
    from ``COMMAND_DEFAULTS`` under the command's name. The command takes them as
    ``**options`` and hands ``ctx.params`` to the API. Every option of the command gets a
    metavar from its type (none for a flag), and ``--help`` lists them panel by panel."""

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        defaults = COMMAND_DEFAULTS.get(command.__name__, {})
        added = []
        for group in groups:
            hints = get_type_hints(group)
            for f in option_fields(group):
                if f.name in exclude or (only is not None and f.name not in only):
                    continue
                default = defaults.get(f.name, f.default)
                kind = f.metadata["cli_type"] or hints[f.name]
                flag = typer.Option(
                    f.metadata["flag"],
                    help=f.metadata["help"],
                    rich_help_panel=group.panel,
                    show_default=f.metadata["shown"] or False if default is None else True,
                )
                added.append(
                    inspect.Parameter(
                        f.name,
                        inspect.Parameter.KEYWORD_ONLY,
                        default=default,
                        annotation=Annotated[kind, flag],
                    )
                )
        plain = [p for p in own if _option_info(p.annotation) is None]
        flags = [p.replace(kind=p.KEYWORD_ONLY) for p in own if p not in plain] + added
        for parameter in flags:
            _name_the_value(parameter.annotation)
        flags.sort(key=lambda p: PANELS.index(_option_info(p.annotation).rich_help_panel))
        command.__signature__ = signature.replace(parameters=[*plain, *flags])
        return command

    return decorate


METAVARS = {bool: "", int: "INT", float: "FLOAT", str: "TEXT", Path: "PATH"}


def _option_info(annotation: Any) -> OptionInfo | None:
    """The ``typer.Option`` of an ``Annotated[kind, typer.Option(...)]`` annotation, if any."""
    return next((e for e in get_args(annotation)[1:] if isinstance(e, OptionInfo)), None)


def _name_the_value(annotation: Any) -> None:
    """Give the Typer option of ``annotation`` without a metavar the name of its value's
    type: INT, FLOAT, TEXT, PATH (none for a flag), instead of Typer's ``<list[str]>``."""
    info = _option_info(annotation)
    if info.metavar is not None:
        return
    kind = get_args(annotation)[0]
    inner = [t for t in (get_args(kind) or (kind,)) if t is not type(None)]
    inner = get_args(inner[0]) or inner  # list[str] -> str
    info.metavar = METAVARS.get(inner[0], "TEXT")


def command(*examples: str, name: str | None = None) -> Callable:
    """Register a command of ``app`` whose help is its docstring, with each paragraph's lines
    joined, and ``examples`` (command lines without ``repcompare``) below the options."""

    def register(function: Callable) -> Callable:
        paragraphs = inspect.cleandoc(function.__doc__ or "").split("\n\n")
        text = "\n\n".join(" ".join(p.split()) for p in paragraphs)
        lines = "\n".join(f"  $ repcompare {e}" for e in examples)
        epilog = f"Examples:\n{lines}"
        return app.command(name=name, cls=Command, help=text, epilog=epilog)(function)

    return register


@app.callback()
def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback when something fails.", metavar=""
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
ModelsArg = Annotated[
    list[str],
    typer.Argument(
        metavar="A [B ...]", help="Activation files, Gram stores or MODEL specs, one or more."
    ),
]
OutDirOpt = Annotated[
    Path, typer.Option("--out", help="Folder for tables and plots.", rich_help_panel="Output")
]


def api_arguments(ctx: typer.Context, *cli_only: str) -> dict:
    """The command's arguments as the Python API's keyword arguments (the CLI's own left out)."""
    return {k: v for k, v in ctx.params.items() if k not in cli_only}


@command("layers timm:vit_tiny_patch16_224", "layers timm:resnet50 --layers paper --json")
@with_options(ModelOptions, LayerOptions)
def layers(
    ctx: typer.Context,
    model: ModelArg,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print JSON instead of a table.", rich_help_panel="Output"),
    ] = False,
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
    stdout_console().print(layers_table(result.records(), title, options["reduce"]))


@command(
    "extract timm:resnet18@sl.pt --data images/ --out a.h5",
    "extract timm:resnet18 --layers paper --reduce flatten --store grams --out g.h5",
)
@with_options(
    ModelOptions,
    LayerOptions,
    DataOptions,
    ViewOptions,
    RunOptions,
    exclude=("token_cap", "bootstrap"),
)
def extract(
    ctx: typer.Context,
    model: ModelArg,
    out: Annotated[
        Path, typer.Option("--out", help="The HDF5 file to write.", rich_help_panel="Output")
    ],
    store: Annotated[
        str,
        typer.Option(
            "--store",
            help="activations (the features) or grams (each batch's Gram matrix per layer: "
            "minibatch CKA against later models, at b x b floats per batch).",
            rich_help_panel="Output",
        ),
    ] = "activations",
    dtype: Annotated[
        str | None,
        typer.Option(
            "--dtype",
            help="float16 (the default for activations) or float32 (a Gram store's).",
            rich_help_panel="Output",
        ),
    ] = None,
    compression: Annotated[
        str, typer.Option("--compression", help="none, lzf or gzip.", rich_help_panel="Output")
    ] = "none",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Overwrite an existing file made with other settings.",
            rich_help_panel="Output",
        ),
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


def computed_and_written(out: Path, command: str, compute):
    """Check and hold ``out``, ``compute()`` the result, save it into ``out`` as a whole (see
    ``report.outdir``: a signal on the way leaves ``out`` as it was), print its table and
    the files written. Returns the result."""
    from repcompare.report.files import write_report
    from repcompare.report.outdir import out_dir_lock, staged_outputs
    from repcompare.report.terminal import report_table, stdout_console

    writer = process_rank() == 0  # one torchrun process writes, the others hold the same result
    with (
        out_dir_lock(out) if writer else nullcontext(),  # rank 0 checks and holds it
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


def _side_option(flag: str, help: str) -> typer.Option:
    return typer.Option(flag, help=help, rich_help_panel=LayerOptions.panel)


@command(
    "cka timm:resnet18@sl.pt timm:resnet18@ssl.pt --bootstrap 100 --out o/",
    "cka a.h5 a.h5 --layers-a paper --out within/",
)
@with_options(CKAOptions, ModelOptions, LayerOptions, DataOptions, RunOptions, exclude=("layers",))
def cka(
    ctx: typer.Context,
    a: Annotated[
        str, typer.Argument(metavar="A", help="An activation file, a Gram store or a MODEL spec.")
    ],
    b: Annotated[
        str, typer.Argument(metavar="B", help="An activation file, a Gram store or a MODEL spec.")
    ],
    out: OutDirOpt,
    layers_a: Annotated[
        list[str] | None, _side_option("--layers-a", "Layers of A (default: blocks).")
    ] = None,
    layers_b: Annotated[
        list[str] | None, _side_option("--layers-b", "Layers of B (default: blocks).")
    ] = None,
    reduce_a: Annotated[
        str | None, _side_option("--reduce-a", "Reduction of model A (default: --reduce).")
    ] = None,
    reduce_b: Annotated[
        str | None, _side_option("--reduce-b", "Reduction of model B (default: --reduce).")
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


@command(
    "invariance timm:resnet18@sl.pt timm:resnet18@ssl.pt --out inv/",
    "invariance timm:resnet18 --augment crop,color --views 3 --out inv/",
)
@with_options(ModelOptions, LayerOptions, DataOptions, ViewOptions, RunOptions)
def invariance(ctx: typer.Context, models: ModelsArg, out: OutDirOpt, **options: Any) -> None:
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


@command(
    "class-fit timm:resnet18@sl.pt --data cifar10:data/ --out fit/",
    "class-fit timm:vit_tiny_patch16_224 --tokens --knn-k 10 --out fit/",
    name="class-fit",
)
@with_options(
    ClassFitOptions,
    ModelOptions,
    LayerOptions,
    DataOptions,
    RunOptions,
    exclude=("token_cap",),
)
def class_fit(ctx: typer.Context, models: ModelsArg, out: OutDirOpt, **options: Any) -> None:
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


@command(
    "atlas timm:resnet18 timm:resnet34 timm:vit_tiny_patch16_224 --out at/",
    "atlas a.h5 b.h5 c.h5 --measure cka,procrustes --reference 1 --out at/",
)
@with_options(
    AtlasOptions,
    BaselineOptions,
    ModelOptions,
    LayerOptions,
    DataOptions,
    RunOptions,
    exclude=("token_cap", "bootstrap"),
)
def atlas(
    ctx: typer.Context,
    models: Annotated[
        list[str],
        typer.Argument(
            metavar="M1 M2 [...]", help="Activation files, Gram stores or MODEL specs, two or more."
        ),
    ],
    out: OutDirOpt,
    **options: Any,
) -> None:
    """Many models, many measures: every layer of every model against every other.

    One pass over the data: every model runs forward once per batch and CKA of
    all layer pairs comes from one accumulator; other measures use a fixed sample
    (--sample). Writes the full matrix, a clustered model x model map with its
    dendrogram, an MDS map and, with --reference, curves to that model.
    """
    from repcompare import api

    arguments = api_arguments(ctx, "out", "models")
    computed_and_written(out, "atlas", lambda: api.atlas(*models, **arguments, progress=True))


@command(
    "study timm:resnet18@sl.pt timm:resnet18@ssl.pt --out study/",
    "study timm:resnet50 timm:resnet50@dino.pth --data images/ --out s/",
)
@with_options(
    CKAOptions,
    ClassFitOptions,
    BaselineOptions,
    ModelOptions,
    LayerOptions,
    DataOptions,
    ViewOptions,
    RunOptions,
    exclude=STUDY_EXCLUDES,
)
def study(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(metavar="A", help="A MODEL spec.")],
    b: Annotated[str, typer.Argument(metavar="B", help="A MODEL spec.")],
    out: OutDirOpt,
    class_fit: Annotated[
        bool | None,
        typer.Option(
            "--class-fit/--no-class-fit",
            help="Measure class structure (default: when the images are labelled).",
            rich_help_panel="Analysis",
        ),
    ] = None,
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
    if process_rank() == 0:  # one torchrun process writes and prints
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


@command("demo", "demo --out my-demo --device cuda")
@with_options(DataOptions, only=("device",))
def demo(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for checkpoints and results.", rich_help_panel="Output"),
    ] = Path("repcompare-demo"),
    images: Annotated[
        int,
        typer.Option("--images", help="Built-in images to analyse.", rich_help_panel="Data"),
    ] = 1000,
    train_images: Annotated[
        int | None,
        typer.Option(
            "--train-images",
            help="Built-in images (other ones) to train each model on.",
            rich_help_panel="Models",
            show_default="2000",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            help="Training epochs of each model.",
            rich_help_panel="Models",
            show_default="8 supervised, 15 SimCLR",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Train a supervised and a SimCLR ResNet-18 on built-in images, then study them against
    the untrained ResNet-18: every analysis and report.html (about 3 minutes on 2 CPU
    cores; checkpoints and finished passes are reused on a rerun)."""
    from repcompare.demo import demo_command, demo_recipes, train_demo_model
    from repcompare.distributed import one_process
    from repcompare.sides.batches import resolve_device

    one_process("demo")
    device = options["device"]
    if images < 64 or (train_images or 64) < 64 or (epochs or 1) < 1:
        raise InputError(
            "the demo needs --images and --train-images 64 or more, and --epochs 1 or more"
        )
    target = resolve_device(device)
    specs = {}
    for objective, recipe in demo_recipes(train_images, epochs).items():
        path = out / "checkpoints" / f"{objective}.safetensors"
        specs[objective] = f"timm:resnet18@{path}"
        STDERR.print(
            f"[bold]training the {objective} ResNet-18[/] ({recipe.images} images, "
            f"{recipe.epochs} epochs)"
        )
        trained = train_demo_model(
            recipe,
            path,
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
