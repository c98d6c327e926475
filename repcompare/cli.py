"""The ``repcompare`` command line: parses arguments, runs analyses, hands results to reports.

Heavy libraries (torch, timm, torchvision) are imported inside the commands,
so ``--help`` and argument errors answer at once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

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


def _not_yet(command: str) -> None:
    raise InputError(
        f"'repcompare {command}' is not yet available in this version; "
        "see README.md for the commands that are"
    )


@app.command(context_settings=_PASSTHROUGH)
def layers(ctx: typer.Context) -> None:
    """List the capture points of MODEL with output shapes (timm:NAME, torchvision:NAME)."""
    _not_yet("layers")


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
