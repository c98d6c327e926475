"""Benchmark: minibatch CKA of two models with repcompare and three peer libraries.

The same work goes through repcompare's library API, its command line, and
the peers torch_cka (``torch-cka==0.21``), pytorch-cka (``pytorch-cka==1.1.3``,
import ``cka``) and ckatorch (``ckatorch==1.0.3``): two torchvision models
(random init, seeded: A with seed 0, B with seed 1), the residual-block
outputs of each (``--preset paper`` adds each block's residual-branch end,
``layerS.i.bn3`` / ``bn2``), activations flattened, the built-in procedural
images preprocessed once to a float tensor, the same batches in the same
order for every tool (a ``DataLoader`` over a ``TensorDataset``, no shuffle),
and the minibatch estimator (unbiased HSIC_1, Nguyen et al. 2021) wherever a
tool offers it. Every measurement runs in its own subprocess of this script.

Measured, per tool:

- forward s: both models' bare forward over all batches under
  ``torch.inference_mode``, measured once, in its own process;
- total s: from models and batches ready (the tool's modules already
  imported) to the layer x layer matrix in hand;
- CKA overhead: total minus forward, in seconds and as % of forward;
- peak MB: ``ru_maxrss`` of the tool's process (plus the GPU's peak allocation
  on CUDA); the forward-only row is the baseline every process shares;
- max |dev|: largest absolute difference of the tool's matrix from a float64
  reference computed here: the same layers captured (cloned) with both models
  and the images in float64, HSIC_1 of Song et al. 2012 written out in float64
  on each batch's centred features, batches weighted equally;
- notes: what the tool computes and any layer-order or value problem seen.
  A matrix is never reordered: rows or columns that look permuted are reported.

Tools (``--tools``): ``repcompare``, ``repcompare-cli``, ``torch_cka``,
``pytorch-cka``, ``ckatorch`` (its ``CKA`` class, the documented way to compare
two models) and ``ckatorch-batch`` (its ``cka_batch`` function on activations
gathered with its hooks, since the class cannot take conv outputs).

The repcompare command line row times ``uv run repcompare cka ...`` end to end
(start-up, model build, procedural images and their preprocessing included);
its models are its own random init and its sample order its own, so its
matrix is checked for shape and range only. A tool that is not installed or
fails gets a row with its one-line error.

Run (peers installed into this run's environment only, never the package's)::

    uv run --with torch-cka==0.21 --with pytorch-cka==1.1.3 --with ckatorch==1.0.3 \\
        python benchmarks/cka_peers.py [--images 1024] [--image-size 224] [--batch-size 128] \\
        [--device auto] [--models resnet18,resnet34] [--preset blocks] [--tools all] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchvision
from harness import (
    REPO,
    Stopwatch,
    add_workload_arguments,
    builtin_images,
    command_line,
    cpu_name,
    device,
    imagenet_preprocess,
    package_versions,
    peak_device_mb,
    peak_rss_mb,
    report,
    run_command,
    spawn_job,
    synchronise,
    tool_list,
)
from torch.utils.data import DataLoader, TensorDataset

PEER_PACKAGES = {"torch-cka": "0.21", "pytorch-cka": "1.1.3", "ckatorch": "1.0.3"}
RUN_PREFIX = "uv run " + " ".join(f"--with {p}=={v}" for p, v in PEER_PACKAGES.items())
SEEDS = (0, 1)  # model A, model B
STAGES = ("layer1", "layer2", "layer3", "layer4")

# What each tool computes, read off its source (the table's first note).
ABOUT = {
    "repcompare": (
        "HSIC_1 minibatch; each Gram once per batch, all pairs in one product, float64 sums"
    ),
    "repcompare-cli": (
        "`repcompare cka` end to end: start-up, model build and image loading included"
    ),
    "torch_cka": (
        "HSIC_1 minibatch; B's Gram and HSIC(L,L) recomputed for every pair; uncentred float32 "
        "Grams; forward without no_grad; rows in hook-firing order, labels in module order"
    ),
    "pytorch-cka": (
        "HSIC_1 minibatch; each Gram once per batch, all pairs by einsum; uncentred float32 Grams "
        "and sums; result clamped to [0, 1]"
    ),
    "ckatorch": (
        "its CKA class (documented model API): hands each hooked output to cka_batch, which wants "
        "(batches, n, d); assigns, not adds, each batch's CKA (keeps the last batch only)"
    ),
    "ckatorch-batch": (
        "ckatorch's hooks, then cka_batch (HSIC_1 minibatch, float64) per pair on all batches "
        "stacked to (k, m, d): Grams recomputed per pair, every activation held in memory"
    ),
}
TOOLS = tuple(ABOUT)
IMPORTS = {
    "repcompare": (
        "repcompare.capture.capture",
        "repcompare.capture.graph",
        "repcompare.capture.select",
        "repcompare.similarity",
    ),
    "torch_cka": ("torch_cka",),
    "pytorch-cka": ("cka",),
    "ckatorch": ("ckatorch",),
    "ckatorch-batch": ("ckatorch",),
}


@dataclass
class Workload:
    """Two models (A, B), the layers compared on each, and the shared batches."""

    models: tuple[torch.nn.Module, torch.nn.Module]
    layers: tuple[list[str], list[str]]
    loader: DataLoader
    device: torch.device
    image_size: int
    preset: str


@dataclass
class JobResult:
    """What one subprocess reports back (or its failure)."""

    seconds: float | None = None
    peak_mb: float | None = None
    gpu_peak_mb: float | None = None
    matrix: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


ToolRun = Callable[[Workload], tuple[np.ndarray, list[str]]]


def module_layers(model: torch.nn.Module, preset: str) -> list[str]:
    """Module names of every residual block (and, for 'paper', its branch end), in depth order."""
    names = []
    for stage in STAGES:
        for index, block in enumerate(getattr(model, stage)):
            if preset == "paper":
                names.append(f"{stage}.{index}.{'bn3' if hasattr(block, 'bn3') else 'bn2'}")
            names.append(f"{stage}.{index}")
    return names


def name_notes(side: str, reported: list[str] | tuple[str, ...], expected: list[str]) -> list[str]:
    """A note when a tool labels its rows/columns differently from the layers asked for."""
    reported = list(reported)
    if reported == expected:
        return []
    if sorted(reported) == sorted(expected):
        first = next(i for i, (r, e) in enumerate(zip(reported, expected, strict=True)) if r != e)
        return [
            f"{side} labels come in another order than asked (position {first}: "
            f"{reported[first]} where {expected[first]} was asked)"
        ]
    return [f"{side} labels differ from the layers asked: {', '.join(reported)}"]


# --- the tools ------------------------------------------------------------------------------


def run_repcompare(work: Workload) -> tuple[np.ndarray, list[str]]:
    from repcompare.capture.capture import capture_layers
    from repcompare.capture.graph import discover
    from repcompare.capture.select import select_layers
    from repcompare.similarity import MinibatchCKA

    model_a, model_b = work.models
    size = (3, work.image_size, work.image_size)
    had_timm = "timm" in sys.modules
    with Stopwatch() as watch:
        graph_a, graph_b = discover(model_a, size), discover(model_b, size)
    discovery = f"of which discover() {watch.seconds:.2f} s"
    if not had_timm and "timm" in sys.modules:
        discovery += " (it imported timm)"
    names_a = select_layers(graph_a, [work.preset])
    names_b = select_layers(graph_b, [work.preset])
    with (
        capture_layers(model_a, graph_a, names_a, "flatten") as cap_a,
        capture_layers(model_b, graph_b, names_b, "flatten") as cap_b,
    ):
        acc = MinibatchCKA(names_a, names_b)
        for (images,) in work.loader:
            images = images.to(work.device)
            acc.update(cap_a(images), cap_b(images))
    result = acc.result()
    notes = [discovery, *name_notes("row", result.names_a, work.layers[0])]
    notes += name_notes("column", result.names_b, work.layers[1])
    if result.degenerate_a or result.degenerate_b:
        notes.append(f"degenerate: {', '.join(result.degenerate_a + result.degenerate_b)}")
    return result.values, notes


def run_torch_cka(work: Workload) -> tuple[np.ndarray, list[str]]:
    from torch_cka import CKA

    model_a, model_b = work.models
    cka = CKA(
        model_a,
        model_b,
        model1_name="A",
        model2_name="B",
        model1_layers=work.layers[0],
        model2_layers=work.layers[1],
        device=str(work.device),
    )
    cka.compare(work.loader)
    exported = cka.export()
    notes = name_notes("row", exported["model1_layers"], work.layers[0])
    notes += name_notes("column", exported["model2_layers"], work.layers[1])
    return exported["CKA"].double().numpy(), notes


def run_pytorch_cka(work: Workload) -> tuple[np.ndarray, list[str]]:
    from cka import compute_cka

    model_a, model_b = work.models
    (matrix,) = compute_cka(
        model_a,
        model_b,
        work.loader,
        layers=work.layers[0],
        model2_layers=work.layers[1],
        device=work.device,
        progress=False,
    )
    values = matrix.double().cpu().numpy()
    clamped = int(np.count_nonzero((values == 0) | (values == 1)))
    notes = [f"{clamped} entries exactly 0 or 1 (output clamped to [0, 1])"] if clamped else []
    return values, notes


def ckatorch_cka(work: Workload):
    """ckatorch's CKA object on the workload's two models and layers (it registers the hooks)."""
    from ckatorch import CKA

    model_a, model_b = work.models
    return CKA(
        model_a,
        model_b,
        layers=work.layers[0],
        second_layers=work.layers[1],
        first_name="A",
        second_name="B",
        device=work.device,
    )


def run_ckatorch(work: Workload) -> tuple[np.ndarray, list[str]]:
    cka = ckatorch_cka(work)
    matrix = cka(work.loader, epochs=1)
    notes = name_notes("row", cka.first_model_info.layers, work.layers[0])
    notes += name_notes("column", cka.second_model_info.layers, work.layers[1])
    return matrix.double().cpu().numpy(), notes


def run_ckatorch_batch(work: Workload) -> tuple[np.ndarray, list[str]]:
    from ckatorch import cka_batch

    model_a, model_b = work.models
    hooks = ckatorch_cka(work)
    kept_a: dict[str, list[torch.Tensor]] = {name: [] for name in work.layers[0]}
    kept_b: dict[str, list[torch.Tensor]] = {name: [] for name in work.layers[1]}
    with torch.no_grad():
        for (images,) in work.loader:
            hooks.first_features.clear()
            hooks.second_features.clear()
            images = images.to(work.device)
            model_a(images)
            model_b(images)
            for kept, features in (
                (kept_a, hooks.first_features),
                (kept_b, hooks.second_features),
            ):
                for name, output in features.items():
                    kept[name].append(output.flatten(1))
        stacked_a = [torch.stack(kept_a.pop(name)) for name in work.layers[0]]
        stacked_b = [torch.stack(kept_b.pop(name)) for name in work.layers[1]]
        matrix = [[cka_batch(x, y).item() for y in stacked_b] for x in stacked_a]
    return np.array(matrix, dtype=np.float64), []


TOOL_RUNS: dict[str, ToolRun] = {
    "repcompare": run_repcompare,
    "torch_cka": run_torch_cka,
    "pytorch-cka": run_pytorch_cka,
    "ckatorch": run_ckatorch,
    "ckatorch-batch": run_ckatorch_batch,
}


# --- forward baseline and float64 reference ---------------------------------------------------


def run_forward(work: Workload) -> tuple[np.ndarray, list[str]]:
    model_a, model_b = work.models
    with torch.inference_mode():
        for (images,) in work.loader:
            images = images.to(work.device)
            model_a(images)
            model_b(images)
    synchronise(work.device)
    return np.zeros((0, 0)), []


@contextmanager
def cloned_outputs(model: torch.nn.Module, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Hooks that keep a clone of each named module's output (safe from later in-place ops)."""
    store: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            store[name] = output.detach().clone()

        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in names]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def zero_diagonal_grams(store: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    """``(L, m, m)`` linear Grams of each layer's centred float64 features, diagonals zeroed.

    HSIC_1 is unchanged by centring the features (it only adds terms of the form
    ``a 1^T + 1 b^T`` to the Gram matrix); centring avoids cancellation.
    """
    grams = []
    for name in names:
        x = store[name].flatten(1)
        x = x - x.mean(dim=0)
        gram = x @ x.T
        gram.fill_diagonal_(0)
        grams.append(gram)
    return torch.stack(grams)


def hsic1_all_pairs(k: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Song et al.'s unbiased HSIC_1 of every pair of zero-diagonal Grams ``k[a]``, ``g[b]``.

    ``[tr(K L) + (1^T K 1)(1^T L 1) / ((m-1)(m-2)) - 2/(m-2) 1^T K L 1] / (m (m-3))``.
    """
    m = k.shape[-1]
    trace = torch.einsum("aij,bij->ab", k, g)
    totals = torch.outer(k.sum(dim=(1, 2)), g.sum(dim=(1, 2))) / ((m - 1) * (m - 2))
    row_sums = k.sum(dim=2) @ g.sum(dim=2).T
    return (trace + totals - 2 / (m - 2) * row_sums) / (m * (m - 3))


def run_reference(work: Workload) -> tuple[np.ndarray, list[str]]:
    model_a, model_b = work.models
    names_a, names_b = work.layers
    cross = torch.zeros(len(names_a), len(names_b), dtype=torch.float64, device=work.device)
    self_a = torch.zeros(len(names_a), dtype=torch.float64, device=work.device)
    self_b = torch.zeros(len(names_b), dtype=torch.float64, device=work.device)
    with (
        cloned_outputs(model_a, names_a) as store_a,
        cloned_outputs(model_b, names_b) as store_b,
        torch.inference_mode(),
    ):
        for (images,) in work.loader:
            images = images.to(work.device)
            model_a(images)
            model_b(images)
            grams_a = zero_diagonal_grams(store_a, names_a)
            grams_b = zero_diagonal_grams(store_b, names_b)
            cross += hsic1_all_pairs(grams_a, grams_b)
            self_a += torch.diagonal(hsic1_all_pairs(grams_a, grams_a))
            self_b += torch.diagonal(hsic1_all_pairs(grams_b, grams_b))
    notes = []
    selves = torch.cat([self_a, self_b]).tolist()
    negative = [n for n, s in zip(names_a + names_b, selves, strict=True) if s <= 0]
    if negative:
        notes.append(f"non-positive mean self-HSIC_1 (CKA undefined): {', '.join(negative)}")
    return (cross / torch.sqrt(torch.outer(self_a, self_b))).cpu().numpy(), notes


JOB_RUNS: dict[str, ToolRun] = {"reference": run_reference, "forward": run_forward, **TOOL_RUNS}


# --- the command line row -------------------------------------------------------------------


def cli_command(args: argparse.Namespace, out: Path) -> list[str]:
    model_a, model_b = args.models.split(",")
    return [
        *("uv", "run", "repcompare", "cka", f"torchvision:{model_a}", f"torchvision:{model_b}"),
        *("--layers-a", args.preset, "--layers-b", args.preset),
        *("--data", f"builtin:{args.images}:{args.image_size}"),
        *("--image-size", str(args.image_size), "--batch-size", str(args.batch_size)),
        *("--reduce", "flatten", "--device", args.device, "--out", str(out)),
    ]


def run_cli(args: argparse.Namespace, out: Path) -> tuple[float, np.ndarray, list[str]]:
    """Seconds, matrix and notes of ``repcompare cka`` run end to end in the project's env."""
    # Without VIRTUAL_ENV (this run's --with overlay), uv runs the project's own environment.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    with Stopwatch() as watch:
        run_command(cli_command(args, out), env=env, cwd=REPO)
    matrix = np.array(json.loads((out / "cka.json").read_text())["cka"], dtype=np.float64)
    finite = matrix[np.isfinite(matrix)]
    notes = [
        f"{matrix.shape[0]}x{matrix.shape[1]}, values {finite.min():.3f} to {finite.max():.3f}; "
        "own random init and sample order, so not compared with the reference"
    ]
    return watch.seconds, matrix, notes


# --- one job, in its own process ------------------------------------------------------------


def build_workload(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> Workload:
    models = []
    for seed, name in zip(SEEDS, args.models.split(","), strict=True):
        torch.manual_seed(seed)
        models.append(torchvision.models.get_model(name).eval().to(device, dtype))
    images = torch.load(args.data_file, weights_only=True).to(dtype)
    loader = DataLoader(TensorDataset(images), batch_size=args.batch_size, shuffle=False)
    layers = (module_layers(models[0], args.preset), module_layers(models[1], args.preset))
    return Workload((models[0], models[1]), layers, loader, device, args.image_size, args.preset)


def run_job(args: argparse.Namespace) -> None:
    """Run one job and write its seconds, peak memory, matrix and notes to ``args.result``."""
    on = torch.device(args.device)
    result = Path(args.result)
    if args.job == "repcompare-cli":
        seconds, matrix, notes = run_cli(args, result.parent / "cli_out")
        peak_mb = peak_rss_mb(children=True)
    else:
        for module in IMPORTS.get(args.job, ()):  # imports are not part of the timing
            importlib.import_module(module)
        dtype = torch.float64 if args.job == "reference" else torch.float32
        work = build_workload(args, on, dtype)
        with Stopwatch(on) as watch:
            matrix, notes = JOB_RUNS[args.job](work)
        seconds = watch.seconds
        peak_mb = peak_rss_mb()
    gpu_mb = peak_device_mb(on) if args.job != "repcompare-cli" else None
    figures = {
        "seconds": seconds,
        "peak_mb": peak_mb,
        "gpu_peak_mb": gpu_mb,
        "matrix": matrix.tolist(),
        "notes": notes,
    }
    result.write_text(json.dumps(figures))


def spawn(job: str, args: argparse.Namespace, data_file: Path, folder: Path) -> JobResult:
    """Run ``job`` in a fresh process of this script; a crash becomes ``JobResult.error``."""
    result = folder / f"{job}.json"
    command = [
        *(sys.executable, __file__, "--job", job, "--data-file", str(data_file)),
        *("--result", str(result), "--images", str(args.images)),
        *("--image-size", str(args.image_size), "--batch-size", str(args.batch_size)),
        *("--device", args.device, "--models", args.models, "--preset", args.preset),
    ]
    done = spawn_job(command, result)
    if "error" in done:
        return JobResult(error=done["error"])
    return JobResult(
        seconds=done["seconds"],
        peak_mb=done["peak_mb"],
        gpu_peak_mb=done["gpu_peak_mb"],
        matrix=np.array(done["matrix"], dtype=np.float64),
        notes=done["notes"],
    )


# --- the driver -----------------------------------------------------------------------------


def prepare_images(args: argparse.Namespace, folder: Path) -> Path:
    """The built-in procedural images, preprocessed once to a float tensor file."""
    preprocess = imagenet_preprocess(args.image_size)
    images = builtin_images(args.images, args.image_size)
    images = torch.stack([preprocess(image) for image in images])
    path = folder / "images.pt"
    torch.save(images, path)
    return path


def layout_notes(
    matrix: np.ndarray, reference: np.ndarray, names: tuple[list[str], list[str]]
) -> list[str]:
    """Rows/columns that look permuted or duplicated when set against the reference.

    Permuted: much closer to another reference row than to its own. Duplicated:
    two of the tool's rows are identical where the reference's differ (the same
    tensor captured twice, e.g. a hooked output changed by a later in-place op).
    """
    notes = []
    for side, tool, ref, labels in (
        ("row", matrix, reference, names[0]),
        ("column", matrix.T, reference.T, names[1]),
    ):
        gaps = np.nanmax(np.abs(tool[:, None, :] - ref[None, :, :]), axis=2)
        moved = [
            f"{labels[i]} ~ reference {labels[j]}"
            for i, j in enumerate(np.nanargmin(gaps, axis=1))
            if i != j and gaps[i, i] > 1e-3 and gaps[i, j] < gaps[i, i] / 10
        ]
        if moved:
            notes.append(f"{side}s match other reference {side}s: {', '.join(moved)}")
        same = np.nanmax(np.abs(tool[:, None, :] - tool[None, :, :]), axis=2) < 1e-6
        differ = np.nanmax(np.abs(ref[:, None, :] - ref[None, :, :]), axis=2) > 1e-3
        twins = [(i, j) for i, j in zip(*np.nonzero(np.triu(same & differ, 1)), strict=True)]
        if twins:
            i, j = twins[0]
            notes.append(
                f"{len(twins)} pairs of identical {side}s where the reference's differ "
                f"(e.g. {labels[i]} = {labels[j]}): one tensor captured twice"
            )
    return notes


def deviation(matrix: np.ndarray, reference: np.ndarray) -> str:
    if matrix.shape != reference.shape:
        return f"shape {matrix.shape} vs {reference.shape}"
    text = f"{np.nanmax(np.abs(matrix - reference)):.1e}"
    bad = int(np.count_nonzero(~np.isfinite(matrix)))
    return f"{text} ({bad} non-finite)" if bad else text


def peak_text(result: JobResult) -> str:
    text = f"{result.peak_mb:.0f}"
    return f"{text} (GPU {result.gpu_peak_mb:.0f})" if result.gpu_peak_mb is not None else text


def reference_line(reference: JobResult) -> str:
    if reference.error:
        return reference.error
    finite = reference.matrix[np.isfinite(reference.matrix)]
    return "; ".join(
        [
            f"{reference.seconds:.2f} s, peak {peak_text(reference)} MB, "
            f"values {finite.min():.3f} to {finite.max():.3f}",
            *reference.notes,
        ]
    )


COLUMNS = (
    "tool",
    "forward s",
    "total s",
    "CKA overhead s",
    "overhead % of forward",
    "peak MB",
    "max abs dev vs float64",
    "notes",
)


def table(
    args: argparse.Namespace,
    on: torch.device,
    results: dict[str, JobResult],
    layers: tuple[list[str], list[str]],
) -> str:
    """Print the report; its text."""
    reference, forward = results["reference"], results["forward"]
    gpu = f", GPU {torch.cuda.get_device_name(on)}" if on.type == "cuda" else ""
    title = [
        f"Machine: {cpu_name()} ({os.cpu_count()} cores){gpu}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        f"Peers: {package_versions(list(PEER_PACKAGES))}",
        f"Workload: {args.models} ({len(layers[0])} x {len(layers[1])} layers, preset "
        f"{args.preset}, flattened), {args.images} images of {args.image_size}px, batch "
        f"{args.batch_size}, {on.type}",
        f"float64 reference (this script): {reference_line(reference)}",
    ]
    baseline = "forward only (baseline)"
    if forward.error:
        rows = [{"tool": baseline, "notes": forward.error}]
        fwd = math.nan
    else:
        fwd = forward.seconds
        rows = [
            {
                "tool": baseline,
                "forward s": f"{fwd:.2f}",
                "total s": f"{fwd:.2f}",
                "peak MB": peak_text(forward),
                "notes": "both models, inference_mode, every batch",
            }
        ]
    for tool in args.tools:
        result = results[tool]
        if result.error:
            notes = f"{ABOUT[tool]}; **{result.error}**"
            rows.append({"tool": tool, "forward s": f"{fwd:.2f}", "notes": notes})
            continue
        overhead = result.seconds - fwd
        if tool == "repcompare-cli" or reference.matrix is None:
            dev, notes = "n/a", result.notes
        else:
            dev = deviation(result.matrix, reference.matrix)
            notes = result.notes
            if result.matrix.shape == reference.matrix.shape:
                notes = notes + layout_notes(result.matrix, reference.matrix, layers)
        figures = (tool, f"{fwd:.2f}", f"{result.seconds:.2f}", f"{overhead:.2f}")
        figures += (f"{100 * overhead / fwd:.0f}%", peak_text(result), dev)
        rows.append((*figures, "; ".join([ABOUT[tool], *notes])))
    command = command_line(RUN_PREFIX)
    return report(rows, "\n".join(title), command, columns=COLUMNS, align="lrrrrrrl")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(
        parser,
        ["images", "image_size", "batch_size", "device"],
        images=1024,
        image_size=224,
        batch_size=128,
    )
    parser.add_argument("--models", default="resnet18,resnet34", help="A,B (torchvision names)")
    parser.add_argument("--preset", default="blocks", choices=["blocks", "paper"])
    parser.add_argument("--tools", default="all", help=f"comma list of {', '.join(TOOLS)}")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    internal = argparse.SUPPRESS
    parser.add_argument("--job", choices=["reference", "forward", *TOOLS], help=internal)
    parser.add_argument("--data-file", help=internal)
    parser.add_argument("--result", help=internal)
    args = parser.parse_args()
    if args.images % args.batch_size or args.batch_size < 4:
        parser.error("--images must be a multiple of --batch-size, and batches need >= 4 images")
    if len(args.models.split(",")) != 2:
        parser.error("--models takes two names, A,B")
    args.tools = tool_list(parser, args.tools, TOOLS)
    return args


def main() -> None:
    args = parse_args()
    if args.job:
        run_job(args)
        return
    on = device(args.device)
    args.device = on.type
    layers = tuple(
        module_layers(torchvision.models.get_model(name), args.preset)
        for name in args.models.split(",")
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="cka_peers_") as tmp:
        folder = Path(tmp)
        data_file = prepare_images(args, folder)
        for job in ("reference", "forward", *args.tools):
            results[job] = spawn(job, args, data_file, folder)
            done = results[job]
            print(f"{job}: {done.error or f'{done.seconds:.2f} s'}", file=sys.stderr, flush=True)
    text = table(args, on, results, (layers[0], layers[1]))
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
