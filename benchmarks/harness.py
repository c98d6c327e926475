"""What the benchmark scripts share: the workload options and models, the device, timing,
peak memory, subprocess jobs and the Markdown report (printed under the command line
that produced it, optionally saved as JSON).

Only the standard library is imported here at start-up (torch, torchvision and repcompare
when a function needs them), so that a script's subprocesses can import this module
cheaply and in a peer's ``uv run --with`` environment, whose torch may be older."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPARE_CORES = max(0, (os.cpu_count() or 1) - 1)  # loader workers that leave one core free
DEVICES = ("auto", "cpu", "cuda")

# --- the workload ------------------------------------------------------------------------------

# option name: (flag, type, shared default, help); "model" is the one-model form of "models"
OPTIONS: dict[str, tuple[str, type, Any, str]] = {
    "models": (
        "--models",
        str,
        "torchvision:resnet18,torchvision:resnet18",
        "comma list of model specs; model i is initialised with seed i",
    ),
    "model": ("--model", str, "torchvision:resnet18", "model spec"),
    "layers": ("--layers", str, "paper", "layer preset or names"),
    "reduce": ("--reduce", str, "flatten", "reduction of each layer's output"),
    "images": ("--images", int, 256, "number of built-in images"),
    "image_size": ("--image-size", int, 64, "image size in pixels"),
    "batch_size": ("--batch-size", int, 64, "images per batch"),
    "device": ("--device", str, "auto", "auto is the GPU when there is one"),
    "workers": ("--workers", int, None, "data-loader worker processes; None: the command's own"),
}
WORKLOAD_OPTIONS = tuple(name for name in OPTIONS if name != "model")


def add_workload_arguments(
    parser: argparse.ArgumentParser,
    names: Sequence[str] = WORKLOAD_OPTIONS,
    *,
    aliases: Mapping[str, str] | None = None,
    **defaults: Any,
) -> None:
    """Add the workload options ``names`` (see ``OPTIONS``) to ``parser``, each with its
    shared default unless ``defaults`` gives the script's own; ``aliases`` adds another
    flag for an option (``{"image_size": "--size"}``). ``--model`` fills ``args.models``."""
    for name in names:
        flag, kind, default, text = OPTIONS[name]
        flags = [flag, *([aliases[name]] if aliases and name in aliases else [])]
        extra = {"choices": DEVICES} if name == "device" else {}
        parser.add_argument(
            *flags,
            dest="models" if name == "model" else name,
            type=kind,
            default=defaults.get(name, default),
            help=f"{text} (default: %(default)s)",
            **extra,
        )


@dataclass(frozen=True)
class Workload:
    """The workload the options describe: model specs (model i initialised with seed i),
    layers and reduction, ``images`` built-in images of ``image_size`` px in batches."""

    models: list[str]
    layers: str = OPTIONS["layers"][2]
    reduce: str = OPTIONS["reduce"][2]
    images: int = OPTIONS["images"][2]
    image_size: int = OPTIONS["image_size"][2]
    batch_size: int = OPTIONS["batch_size"][2]
    device: torch.device | None = None
    workers: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> Workload:
        """From the parsed options (the shared default for one the script lacks), with
        ``device`` resolved and ``overrides`` applied."""
        values = {
            f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)
        } | overrides
        values["models"] = values.get("models", OPTIONS["models"][2]).split(",")
        values["device"] = device(values.get("device") or "auto")
        return cls(**values)

    @property
    def data(self) -> str:
        """The ``--data`` of the built-in images."""
        return f"builtin:{self.images}:{self.image_size}"

    def cli_options(self, data: str | None = None) -> list[str]:
        """The options of a ``repcompare`` command for these images, batches and device."""
        options = ["--data", data or self.data, "--image-size", str(self.image_size)]
        options += ["--batch-size", str(self.batch_size), "--device", self.device.type]
        return options + ([] if self.workers is None else ["--workers", str(self.workers)])

    def modules(self) -> list[torch.nn.Module]:
        """The models, model i initialised with seed i, in eval mode on the device."""
        from repcompare.capture.models import load_model
        from repcompare.capture.spec import parse_spec

        return [
            load_model(parse_spec(spec), init_seed=seed, image_size=self.image_size)
            .module.to(self.device)
            .eval()
            for seed, spec in enumerate(self.models)
        ]

    def checkpoints(self, folder: Path) -> list[str]:
        """Model i built at its own input size, initialised with seed i and saved to
        ``folder/model<i>.safetensors`` (what ``--init-seed`` would build, as a checkpoint a
        bare script can load too); returned as ``spec@path`` specs."""
        from safetensors.torch import save_file

        from repcompare.capture.models import load_model
        from repcompare.capture.spec import parse_spec

        specs = []
        for seed, spec in enumerate(self.models):
            path = folder / f"model{seed}.safetensors"
            save_file(load_model(parse_spec(spec), init_seed=seed).module.state_dict(), path)
            specs.append(f"{spec}@{path}")
        return specs

    def cka(self, modules: list[torch.nn.Module]):
        """``repcompare.api.cka`` of the two ``modules`` over the built-in images."""
        from repcompare import api

        return api.cka(
            *modules,
            layers_a=self.layers,
            layers_b=self.layers,
            reduce=self.reduce,
            data=self.data,
            image_size=self.image_size,
            batch_size=self.batch_size,
            device=self.device.type,
            workers=self.workers,
        )


def builtin_images(count: int, size: int) -> Iterator[Any]:
    """The built-in procedural images as RGB PIL images."""
    from repcompare.data.sources import open_source

    source = open_source(f"builtin:{count}:{size}")
    for index in range(len(source)):
        yield source.load(index)[0].convert("RGB")


def imagenet_preprocess(size: int):
    """torchvision's resize, centre crop, to-tensor and ImageNet normalisation at ``size``."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(size),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


# --- the device --------------------------------------------------------------------------------


def device(name: str = "auto") -> torch.device:
    """``name`` as a device, with ``auto`` the GPU when there is one."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synchronise(on: torch.device | None) -> None:
    """Wait for the work queued on a CUDA device (nothing for the CPU or None)."""
    if on is not None and on.type == "cuda":
        import torch

        torch.cuda.synchronize(on)


def device_name(on: torch.device) -> str:
    """The GPU's name, or ``CPU``."""
    import torch

    return torch.cuda.get_device_name(on) if on.type == "cuda" else "CPU"


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def package_versions(packages: Sequence[str]) -> str:
    """``name version`` of each package, or ``name not installed``."""
    found = []
    for package in packages:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


# --- timing and memory -------------------------------------------------------------------------


class Stopwatch:
    """``with Stopwatch(device) as watch: ...``: ``watch.seconds`` is the block's
    ``time.perf_counter`` time, CUDA synchronised at both ends; it adds up over blocks."""

    def __init__(self, on: torch.device | None = None):
        self.device = on
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        synchronise(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronise(self.device)
        self.seconds += time.perf_counter() - self._start


@dataclass
class Timing:
    """Seconds of each timed run, and the last run's return value."""

    seconds: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def min(self) -> float:
        return min(self.seconds)


def interleaved(
    fns: Mapping[str, Callable[[], Any]],
    runs: int,
    warmup: int = 0,
    on: torch.device | None = None,
) -> dict[str, Timing]:
    """Each function ``warmup`` times untimed, then ``runs`` times timed, in turn within
    each round (a, b, a, b, ...), so that the machine's speed drifting between rounds
    hits every function alike: a ``Timing`` each, its seconds in round order."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    timings = {name: Timing() for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            with Stopwatch(on) as watch:
                timings[name].result = fn()
            timings[name].seconds.append(watch.seconds)
    return timings


def timed(
    fn: Callable[[], Any], runs: int = 3, warmup: int = 1, on: torch.device | None = None
) -> Timing:
    """``fn`` called ``warmup`` times untimed, then timed ``runs`` times."""
    return interleaved({"fn": fn}, runs, warmup, on)["fn"]


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory (``ru_maxrss``) of this process, or of its largest waited-for
    child, in MB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024


def peak_device_mb(on: torch.device | None = None) -> float | None:
    """``torch.cuda.max_memory_allocated`` in MB; None off CUDA (``on`` None: CUDA if any)."""
    import torch

    cuda = torch.cuda.is_available() if on is None else on.type == "cuda"
    return torch.cuda.max_memory_allocated(on) / 2**20 if cuda else None


def write_test_file(path: Path, size: int, block: int = 16 << 20) -> float:
    """Bytes/s of writing ``size`` bytes of random blocks to ``path`` and ``fsync``-ing it;
    the file is left in place."""
    import numpy as np

    data = np.random.default_rng(0).integers(0, 255, block, dtype=np.uint8).tobytes()
    with Stopwatch() as watch, open(path, "wb") as handle:
        for _ in range(max(1, size // block)):
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path.stat().st_size / watch.seconds


# --- subprocesses ------------------------------------------------------------------------------


def run_command(
    command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``command`` with its output captured; exit with the end of its stderr if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=cwd)
    if done.returncode != 0:
        raise SystemExit(
            f"{shlex.join(map(str, command))} failed (exit {done.returncode}):\n"
            f"{done.stderr[-3000:]}"
        )
    return done


def tool_list(parser: argparse.ArgumentParser, text: str, known: Sequence[str]) -> list[str]:
    """``--tools``: ``all`` or a comma list of ``known`` names (another is a usage error)."""
    tools = list(known) if text == "all" else [t.strip() for t in text.split(",")]
    unknown = sorted(set(tools) - set(known))
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {', '.join(known)}")
    return tools


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (progress bars' carriage returns count as breaks)."""
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


def spawn_job(command: Sequence[str], result: Path) -> dict:
    """Run one job of a benchmark in its own process, which writes its figures to
    ``result`` as JSON: those figures with ``wall`` (its start-to-exit seconds) added, or
    ``{"error": one line}`` if it failed."""
    result.unlink(missing_ok=True)
    with Stopwatch() as wall:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode < 0:
        return {"error": f"killed by signal {-done.returncode} (out of memory?)"}
    if done.returncode != 0:
        message = last_line(done.stderr)
        if message.startswith("ModuleNotFoundError"):
            return {"error": f"not installed or import failed: {message}"}
        return {"error": f"failed: {message}"}
    report = json.loads(result.read_text()) if result.exists() else {}
    return report | {"wall": wall.seconds}


# --- the report --------------------------------------------------------------------------------


def command_line(prefix: str | None = None) -> str:
    """The command that started this script, to paste into a shell at the repository root:
    ``prefix`` (default ``uv run`` when run by uv), ``python``, the script, its arguments."""
    if prefix is None:
        prefix = "uv run" if os.environ.get("UV") else ""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(REPO):
        script = script.relative_to(REPO)
    words = [prefix, "python", shlex.quote(str(script)), shlex.join(sys.argv[1:])]
    return " ".join(word for word in words if word)


def _cells(values: Sequence[Any]) -> str:
    text = ("" if value is None else str(value).replace("|", "\\|") for value in values)
    return "|" + "|".join(f" {cell} " if cell else " " for cell in text) + "|"


def _rule(columns: Sequence[str], align: str | None) -> str:
    align = align or "l" + "r" * (len(columns) - 1)
    return "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"


Row = Mapping[str, Any] | Sequence[Any]  # a dict by column, or the cells in column order


def _by_column(row: Row, columns: Sequence[str]) -> dict[str, Any]:
    return dict(row) if isinstance(row, Mapping) else dict(zip(columns, row, strict=True))


def _columns(rows: Sequence[Row], columns: Sequence[str] | None) -> list[str]:
    return list(columns or dict.fromkeys(key for row in rows for key in row))


def markdown_table(
    rows: Sequence[Row], columns: Sequence[str] | None = None, align: str | None = None
) -> str:
    """A Markdown table of ``rows`` (a missing or None cell is empty) under ``columns``
    (needed for rows that are not dicts; default: the rows' keys); ``align`` has a letter
    a column, ``l`` or ``r`` (default: the first left, the rest right)."""
    columns = _columns(rows, columns)
    rows = [_by_column(row, columns) for row in rows]
    lines = [_cells(columns), _rule(columns, align)]
    return "\n".join(lines + [_cells([row.get(c) for c in columns]) for row in rows])


class Report:
    """A Markdown table printed as its rows come (flushed, so a run cut short keeps the rows
    it has), under a title and the command line; ``close`` writes the JSON."""

    def __init__(
        self,
        columns: Sequence[str],
        title: str | None = None,
        command: str | None = None,
        json_path: Path | None = None,
        align: str | None = None,
    ):
        self.columns, self.title, self.json_path = list(columns), title, json_path
        self.command = command or command_line()
        self.rows: list[dict] = []
        head = [title, ""] if title else []
        head += [f"Command: `{self.command}`", "", _cells(self.columns), _rule(columns, align)]
        self.lines: list[str] = []
        self._print(*head)

    def _print(self, *lines: str) -> None:
        self.lines += lines
        print("\n".join(lines), flush=True)

    def add(self, row: Row) -> None:
        """Print one row."""
        self.rows.append(_by_column(row, self.columns))
        self._print(_cells([self.rows[-1].get(c) for c in self.columns]))

    def close(self, **extra: Any) -> str:
        """Write the title, command, rows and ``extra`` to ``json_path`` (if any); the text."""
        if self.json_path is not None:
            figures = {"title": self.title, "command": self.command, "rows": self.rows} | extra
            Path(self.json_path).write_text(json.dumps(figures, indent=1, default=str) + "\n")
        return "\n".join(self.lines)


def report(
    rows: Sequence[Row],
    title: str | None = None,
    command: str | None = None,
    json_path: Path | None = None,
    columns: Sequence[str] | None = None,
    align: str | None = None,
    **extra: Any,
) -> str:
    """Print ``title``, the command line (default: this script's) and the table of ``rows``;
    write them and ``extra`` to ``json_path`` as JSON if given; return the printed text."""
    table = Report(_columns(rows, columns), title, command, json_path, align)
    for row in rows:
        table.add(row)
    return table.close(**extra)
