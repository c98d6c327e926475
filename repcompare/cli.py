"""The ``repcompare`` command line: parses arguments, runs analyses, hands results to reports.

Heavy libraries (torch, timm, torchvision) are imported inside the commands,
so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console

from repcompare.errors import InputError, RepcompareError

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

_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.callback()
def root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback when something fails."
    ),
) -> None:
    """Compare what two vision networks learn, layer by layer."""


def image_size_of(loaded, image_size: int | None) -> tuple[int, int, int]:
    """The (C, H, W) input size: the model's own, or N x N when given."""
    channels = loaded.data_config.input_size[0]
    return (
        loaded.data_config.input_size if image_size is None else (channels, image_size, image_size)
    )


def open_model(
    spec_text: str,
    pretrained: bool,
    allow_missing: bool,
    image_size: int | None,
    tracer: str = "auto",
    quiet: bool = False,
):
    """Parse, build and trace a model, telling the user what was loaded and how."""
    from repcompare.capture.graph import discover
    from repcompare.capture.models import load_model
    from repcompare.capture.spec import parse_spec

    if tracer not in ("auto", "fx", "hooks"):
        raise InputError(f"unknown tracer {tracer!r}; use auto, fx or hooks")
    loaded = load_model(parse_spec(spec_text), pretrained=pretrained, allow_missing=allow_missing)
    graph = discover(loaded.module, image_size_of(loaded, image_size), tracer)
    if not quiet:
        for line in [*loaded.notes, *(loaded.load_report.lines() if loaded.load_report else [])]:
            stderr.print(f"[dim]{line}[/]")
        if graph.fallback_reason:
            stderr.print(f"[yellow]{graph.fallback_reason}; using module hooks[/]")
    return loaded, graph


def _not_yet(command: str) -> None:
    raise InputError(
        f"'repcompare {command}' is not yet available in this version; "
        "see README.md for the commands that are"
    )


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
    str, typer.Option("--reduce", help="flatten, avgpool, cls (first token) or mean (tokens).")
]
PretrainedOpt = Annotated[
    bool, typer.Option("--pretrained", help="Use the library's published weights (online).")
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
    model: ModelArg,
    layer_selection: LayersOpt = None,
    reduce: ReduceOpt = "flatten",
    pretrained: PretrainedOpt = False,
    allow_missing: AllowMissingOpt = False,
    image_size: ImageSizeOpt = None,
    tracer: TracerOpt = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the capture points of MODEL with output shapes and reduced widths."""
    from repcompare.capture.describe import layer_rows
    from repcompare.capture.select import select_layers
    from repcompare.report.terminal import layers_table, stdout_console

    loaded, graph = open_model(model, pretrained, allow_missing, image_size, tracer, quiet=as_json)
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


@app.command(context_settings=_PASSTHROUGH)
def extract(ctx: typer.Context) -> None:
    """Capture layer activations of MODEL on a data set into a chunked, resumable HDF5 file."""
    _not_yet("extract")


@app.command(context_settings=_PASSTHROUGH)
def cka(ctx: typer.Context) -> None:
    """Streaming CKA between every layer of A and every layer of B (files or MODEL specs)."""
    _not_yet("cka")


@app.command(context_settings=_PASSTHROUGH)
def invariance(ctx: typer.Context) -> None:
    """Per-layer CKA between augmented views of the same images, for one or more models."""
    _not_yet("invariance")


@app.command(name="class-fit", context_settings=_PASSTHROUGH)
def class_fit(ctx: typer.Context) -> None:
    """Per-layer class structure: CKA with the labels, crowding, kNN and linear probe."""
    _not_yet("class-fit")


@app.command(context_settings=_PASSTHROUGH)
def demo(ctx: typer.Context) -> None:
    """Run the whole pipeline on the built-in data set and two small built-in models."""
    _not_yet("demo")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 failure, 2 bad input).

    ``--debug`` may stand anywhere on the command line; without it, errors are
    one sentence on stderr and no traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args = ["--debug", *(a for a in args if a != "--debug")]
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="repcompare", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0
    except RepcompareError as error:
        if debug:
            raise
        stderr.print(f"[bold red]error:[/] {error}")
        return error.exit_code
    except Exception as error:
        if debug:
            raise
        stderr.print(
            f"[bold red]error:[/] unexpected {type(error).__name__}: {error}. "
            "Rerun with --debug for the traceback and report it if it persists."
        )
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
