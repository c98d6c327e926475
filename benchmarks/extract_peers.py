"""Benchmark: ``repcompare extract`` against thingsvision's feature extraction.

The same work goes through thingsvision (``thingsvision==2.7.3``) and
repcompare: one torchvision resnet18, random init (``torch.manual_seed(0)``)
saved once as a safetensors checkpoint and loaded into a torchvision resnet18
that each tool is handed, ready, in eval mode; its 8 residual-block outputs
(``layer1.0`` ... ``layer4.1``), flattened; the built-in procedural images,
written once as PNG files into one flat folder that both tools read in
file-name order, at their own size (resize and centre crop to
``--image-size`` leave them unchanged), ImageNet mean/std, in batches of
``--batch-size``, on the CPU, with ``--workers`` loader processes. Every
run is its own subprocess of this script; the tools run ``--repeats`` times,
interleaved.

Tools (``--tools``):

- ``thingsvision``: its documented path: ``get_extractor_from_model`` on the
  model, its ``ImageDataset`` over the folder with the extractor's
  ``get_transformations(resize_dim=S, crop_dim=S)``, its ``DataLoader`` (in the
  main process; with ``--workers`` > 0 a torch ``DataLoader`` with that many
  workers over the same dataset), ``extract_features(module_names=...,
  flatten_acts=True)``, then ``save_features`` of each layer
  (``--tv-format``, default npy) into a folder per layer.
- ``thingsvision-stream``: its memory-bounded mode instead: ``extract_features``
  with ``output_dir``, ``step_size=1`` and ``save_in_one_file=True`` (npy).
- ``repcompare``: ``repcompare.api.extract`` (the function behind
  ``repcompare extract``, which calls it with its parsed options) on the same
  model with ``--reduce flatten --order stored --crop-pct 1.0 --image-size S
  --dtype float32``; ``repcompare-f16``: the same with the default float16.
- ``forward-peer-env`` and ``forward-repcompare-env``: the model's bare forward
  over the same images (decoded and preprocessed beforehand) under
  ``inference_mode``, nothing captured, in each tool's environment: thingsvision
  pins ``torchvision==0.15.2``, so its runs get torch 2.0.1, not the project's.

Measured, per run: images/s over the timed part (from the tool's modules
imported and the model ready to the features written and closed, no fsync;
repcompare's includes its layer discovery and file allocation), process
start-to-end seconds (interpreter start to exit), bytes of the files written,
peak RSS of its main process (``ru_maxrss``, loader workers not counted), and once, the largest
absolute difference between thingsvision's saved features and each repcompare
file, layer by layer, rows and layers never reordered: a different layer list,
sample order or shape is reported instead.

Run (thingsvision in this run's environment only, never the package's; the
repcompare runs use the project's own environment)::

    uv run --with thingsvision==2.7.3 python benchmarks/extract_peers.py \\
        [--images 1024] [--image-size 112] [--batch-size 128] [--workers 0] \\
        [--repeats 2] [--tools all] [--tv-format npy] [--out FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# the harness imports only the standard library: fine in thingsvision's environment too
from harness import (
    REPO,
    Stopwatch,
    add_workload_arguments,
    builtin_images,
    command_line,
    cpu_name,
    imagenet_preprocess,
    package_versions,
    peak_rss_mb,
    report,
    spawn_job,
    tool_list,
)

PEER_PACKAGES = {"thingsvision": "2.7.3"}
RUN_PREFIX = "uv run " + " ".join(f"--with {p}=={v}" for p, v in PEER_PACKAGES.items())
LAYERS = [f"layer{stage}.{index}" for stage in range(1, 5) for index in range(2)]
INIT_SEED = 0

ABOUT = {
    "forward-peer-env": "bare forward, nothing captured, in thingsvision's environment",
    "forward-repcompare-env": "bare forward, nothing captured, in the project's environment",
    "thingsvision": (
        "hooks clone every layer's output, each batch kept in memory until the end "
        "(then one torch.cat copy per layer) before save_features writes anything; "
        "loads the first batch twice (extract_features' loader format check); "
        "one float32 file per layer + file_names.txt, no other metadata"
    ),
    "thingsvision-stream": (
        "extract_features with output_dir, step_size=1, save_in_one_file=True: a .npy per "
        "batch and layer, then each layer's files read back, concatenated and written again "
        "as one file (every byte written twice)"
    ),
    "repcompare": (
        "one HDF5 file, float32, a chunk per batch and layer, allocated up front, "
        "written by a background thread batch by batch; file holds sample order, "
        "input digests and settings"
    ),
    "repcompare-f16": "as repcompare, float16 (the default --dtype): half the bytes",
}
TOOLS = tuple(ABOUT)
SAVES = ("thingsvision", "thingsvision-stream", "repcompare", "repcompare-f16")
IN_PEER_ENV = {"forward-peer-env", "thingsvision", "thingsvision-stream"}
REPCOMPARE_FILES = {"repcompare": "float32", "repcompare-f16": "float16"}


# --- shared set-up, run in the project's environment -------------------------------------------


def prepare(args: argparse.Namespace, folder: Path) -> None:
    """The PNG folder of built-in images and the safetensors checkpoint of the model."""
    import torch
    import torchvision
    from safetensors.torch import save_file

    images = folder / "images"
    images.mkdir()
    for index, image in enumerate(builtin_images(args.images, args.image_size)):
        image.save(images / f"{index:05d}.png")
    torch.manual_seed(INIT_SEED)
    model = torchvision.models.resnet18()
    save_file(model.state_dict(), folder / "resnet18.safetensors")


def ready_model(folder: Path):
    """The benchmark's resnet18 with the checkpoint's weights, in eval mode (either env)."""
    import torchvision
    from safetensors.torch import load_file

    model = torchvision.models.resnet18()
    model.load_state_dict(load_file(folder / "resnet18.safetensors"))
    return model.eval()


# --- the runs ----------------------------------------------------------------------------------


def run_forward(args: argparse.Namespace, folder: Path, out: Path) -> tuple[float, list[str]]:
    import torch
    from PIL import Image

    model = ready_model(folder)
    preprocess = imagenet_preprocess(args.image_size)
    files = sorted((folder / "images").iterdir())
    images = torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files])
    with Stopwatch() as watch, torch.inference_mode():
        for batch in images.split(args.batch_size):
            model(batch)
    return watch.seconds, ["images decoded and preprocessed before the timing"]


def run_thingsvision(args: argparse.Namespace, folder: Path, out: Path) -> tuple[float, list[str]]:
    import torch
    from thingsvision import get_extractor_from_model
    from thingsvision.utils.data import DataLoader, ImageDataset
    from thingsvision.utils.storing import save_features

    extractor = get_extractor_from_model(model=ready_model(folder), device="cpu", backend="pt")
    notes = []
    with Stopwatch() as watch:
        dataset = ImageDataset(
            root=str(folder / "images"),
            out_path=str(out),
            backend=extractor.get_backend(),
            transforms=extractor.get_transformations(
                resize_dim=args.image_size, crop_dim=args.image_size
            ),
        )
        if args.workers:
            batches = torch.utils.data.DataLoader(
                dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers
            )
        else:
            batches = DataLoader(dataset=dataset, batch_size=args.batch_size, backend="pt")
        if args.job == "thingsvision-stream":
            extractor.extract_features(
                batches=batches,
                module_names=LAYERS,
                flatten_acts=True,
                output_type="ndarray",
                output_dir=str(out),
                step_size=1,
                save_in_one_file=True,
            )
        else:
            features = extractor.extract_features(
                batches=batches, module_names=LAYERS, flatten_acts=True, output_type="ndarray"
            )
            dtypes = sorted({str(a.dtype) for a in features.values()})
            notes.append(f"returned {', '.join(dtypes)}")
            if list(features) != LAYERS:
                notes.append(f"returned its layers in another order: {', '.join(features)}")
            for layer in LAYERS:
                save = out / layer
                save_features(features[layer], out_path=str(save), file_format=args.tv_format)
    return watch.seconds, notes


def run_repcompare(args: argparse.Namespace, folder: Path, out: Path) -> tuple[float, list[str]]:
    from repcompare import api

    model = ready_model(folder)
    with Stopwatch() as watch:
        result = api.extract(
            model,
            out=out / "features.h5",
            layers=LAYERS,
            reduce="flatten",
            data=str(folder / "images"),
            batch_size=args.batch_size,
            dtype=REPCOMPARE_FILES[args.job],
            image_size=args.image_size,
            crop_pct=1.0,
            order="stored",
            workers=args.workers,
            device="cpu",
        )
    share = result.seconds / watch.seconds
    return watch.seconds, [f"{100 * share:.0f}% of it in the capture loop (the rest: set-up)"]


RUNS = {
    "forward-peer-env": run_forward,
    "forward-repcompare-env": run_forward,
    "thingsvision": run_thingsvision,
    "thingsvision-stream": run_thingsvision,
    "repcompare": run_repcompare,
    "repcompare-f16": run_repcompare,
}
IMPORTS = {
    "thingsvision": ("thingsvision", "thingsvision.utils.data", "thingsvision.utils.storing"),
    "thingsvision-stream": ("thingsvision", "thingsvision.utils.data"),
    "repcompare": ("repcompare.api",),
    "repcompare-f16": ("repcompare.api",),
}


def files_size(folder: Path) -> tuple[int, int]:
    """Bytes and number of the files under ``folder``."""
    sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()]
    return sum(sizes), len(sizes)


def run_job(args: argparse.Namespace) -> None:
    """One run in this process; its figures go to ``args.result`` as JSON."""
    import importlib

    import torch

    for module in ("torchvision", "safetensors.torch", *IMPORTS.get(args.job, ())):
        importlib.import_module(module)  # imports are not part of the timing
    folder = Path(args.folder)
    out = folder / "out" / args.job
    out.mkdir(parents=True)
    seconds, notes = RUNS[args.job](args, folder, out)
    written, count = files_size(out)
    figures = {
        "seconds": seconds,
        "bytes": written,
        "files": count,
        "peak_mb": peak_rss_mb(),
        "torch": f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "notes": notes,
    }
    Path(args.result).write_text(json.dumps(figures))


# --- the agreement check, run in the project's environment -------------------------------------


class Features:
    """One run's saved features, read back layer by layer, with what its files say."""

    def __init__(self, tool: str, root: Path, file_format: str, images: int) -> None:
        import h5py
        import numpy as np

        self.tool, self.root, self.format, self.notes = tool, root, file_format, []
        self.handle = None
        if tool in REPCOMPARE_FILES:
            self.handle = h5py.File(root / "features.h5", "r")
            layers = json.loads(self.handle.attrs["layers"])
            if layers != LAYERS:
                self.notes.append(f"file's layers differ from those asked: {', '.join(layers)}")
            if not np.array_equal(self.handle["sample_index"][:], np.arange(images)):
                self.notes.append("rows are not in stored order (sample_index)")
        else:
            order = (root / "file_names.txt").read_text().split()
            if order != sorted(order):
                self.notes.append("file_names.txt is not in file-name order")

    def layer(self, name: str):
        import h5py
        import numpy as np
        import torch

        if self.handle is not None:
            return self.handle["activations/view0"][name][:]
        if self.format == "pt":
            return torch.load(self.root / name / "features.pt").numpy()
        if self.format == "hdf5":
            with h5py.File(self.root / name / "features.hdf5", "r") as handle:
                return handle["features"][:]
        return np.load(self.root / name / "features.npy")


def compare(args: argparse.Namespace) -> None:
    """Each run's features against thingsvision's, layer by layer, nothing reordered."""
    import numpy as np

    out = Path(args.folder) / "out"
    done = [tool for tool in SAVES if (out / tool).is_dir() and any((out / tool).iterdir())]
    formats = {tool: "npy" if tool == "thingsvision-stream" else args.tv_format for tool in done}
    runs = {tool: Features(tool, out / tool, formats[tool], args.images) for tool in done}
    reference = runs.get("thingsvision")
    report = {}
    for tool, run in runs.items():
        report[tool] = {"notes": run.notes}
        if reference is None or tool == "thingsvision":
            continue
        worst = (-1.0, "", 0.0)
        for layer in LAYERS:
            theirs, ours = reference.layer(layer), run.layer(layer)
            if theirs.shape != ours.shape:
                run.notes.append(f"{layer}: shape {ours.shape} vs thingsvision's {theirs.shape}")
                continue
            gap = float(np.abs(ours.astype(np.float32) - theirs).max())
            if gap > worst[0]:
                worst = (gap, layer, float(np.abs(theirs).max()))
        report[tool].update(max_abs=worst[0], layer=worst[1], scale=worst[2])
    Path(args.result).write_text(json.dumps(report))


# --- the driver --------------------------------------------------------------------------------


def project_python() -> str:
    """The interpreter of the project's own environment (this run may be a --with overlay)."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(
        ["uv", "run", "python", "-c", "import sys; print(sys.executable)"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def spawn(python: str, job: str, args: argparse.Namespace, folder: Path) -> dict:
    """Run ``job`` in a fresh process; its report, its wall time, or its one-line error."""
    result = folder / f"{job}.json"
    command = [
        *(python, __file__, "--job", job, "--folder", str(folder), "--result", str(result)),
        *("--images", str(args.images), "--image-size", str(args.image_size)),
        *("--batch-size", str(args.batch_size), "--workers", str(args.workers)),
        *("--tv-format", args.tv_format),
    ]
    return spawn_job(command, result)


def median_text(values: list[float], digits: int) -> str:
    text = f"{statistics.median(values):.{digits}f}"
    if len(values) > 1:
        text += " (" + " / ".join(f"{v:.{digits}f}" for v in values) + ")"
    return text


def diff_text(check: dict | None) -> str:
    if check is None or "error" in check:
        return f"check {check['error']}" if check else "n/a"
    if "max_abs" not in check:
        return "n/a (no thingsvision features)"
    if check["max_abs"] == 0:
        return "0 (every layer bit-identical)"
    if check["max_abs"] < 0:
        return "no layer comparable"
    relative = check["max_abs"] / check["scale"] if check["scale"] else float("nan")
    return f"{check['max_abs']:.1e} ({check['layer']}; {relative:.1e} of its max abs)"


COLUMNS = (
    "tool",
    "images/s",
    "start-to-end s",
    "MB written",
    "MB/s",
    "peak MB",
    "max abs diff vs thingsvision",
    "notes",
)


def row(tool: str, runs: list[dict], args: argparse.Namespace, checks: dict) -> dict | tuple:
    errors = [run["error"] for run in runs if "error" in run]
    if errors:
        return {"tool": tool, "notes": f"{ABOUT[tool]}; **{errors[0]}**"}
    speeds = [args.images / run["seconds"] for run in runs]
    walls = [run["wall"] for run in runs]
    peak = f"{max(run['peak_mb'] for run in runs):.0f}"
    written = runs[-1]["bytes"] / 1e6
    forward = tool.startswith("forward")
    mb = "" if forward else f"{written:.0f} in {runs[-1]['files']} files"
    rate = "" if forward else median_text([written / run["seconds"] for run in runs], 1)
    if tool == "thingsvision":
        diff = "(the reference)"
    else:
        diff = "" if forward else diff_text(checks.get(tool))
    notes = [ABOUT[tool], runs[-1]["torch"], *runs[-1]["notes"]]
    notes += checks.get(tool, {}).get("notes", [])
    cells = (tool, median_text(speeds, 1), median_text(walls, 1), mb, rate, peak, diff)
    return (*cells, "; ".join(notes))


def table(args: argparse.Namespace, results: dict[str, list[dict]], checks: dict) -> str:
    """Print the report; its text."""
    title = [
        f"Machine: {cpu_name()} ({os.cpu_count()} cores), CPU runs",
        f"Peers: {package_versions(list(PEER_PACKAGES))}",
        f"Workload: torchvision resnet18 (random init, seed {INIT_SEED}, one checkpoint), "
        f"{len(LAYERS)} block outputs flattened, {args.images} built-in images of "
        f"{args.image_size}px as PNG files, batch {args.batch_size}, {args.workers} loader "
        f"workers, {args.repeats} run(s) per tool, interleaved (median, then each run)",
    ]
    rows = [row(tool, results[tool], args, checks) for tool in args.tools]
    command = command_line(RUN_PREFIX)
    return report(rows, "\n".join(title), command, columns=COLUMNS, align="lrrrrrrl")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(
        parser,
        ["images", "image_size", "batch_size", "workers"],
        images=1024,
        image_size=112,
        batch_size=128,
        workers=0,
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tools", default="all", help=f"comma list of {', '.join(TOOLS)}")
    parser.add_argument("--tv-format", default="npy", choices=["npy", "hdf5", "pt"])
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    parser.add_argument("--keep", type=Path, help="work in this (empty) folder and keep it")
    internal = argparse.SUPPRESS
    parser.add_argument("--job", choices=["prepare", "compare", *TOOLS], help=internal)
    parser.add_argument("--folder", help=internal)
    parser.add_argument("--result", help=internal)
    args = parser.parse_args()
    if args.images % args.batch_size:
        parser.error("--images must be a multiple of --batch-size (equal batches for both)")
    args.tools = tool_list(parser, args.tools, TOOLS)
    return args


def main() -> None:
    args = parse_args()
    if args.job == "prepare":
        prepare(args, Path(args.folder))
        return
    if args.job == "compare":
        compare(args)
        return
    if args.job:
        run_job(args)
        return
    ours = project_python()
    results: dict[str, list[dict]] = {tool: [] for tool in args.tools}
    with tempfile.TemporaryDirectory(prefix="extract_peers_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if any(folder.iterdir()):
            sys.exit(f"--keep {folder} is not empty")
        done = spawn(ours, "prepare", args, folder)
        if "error" in done:
            sys.exit(f"preparing the images and checkpoint {done['error']}")
        for repeat in range(args.repeats):
            for tool in args.tools:
                shutil.rmtree(folder / "out" / tool, ignore_errors=True)
                python = sys.executable if tool in IN_PEER_ENV else ours
                results[tool].append(spawn(python, tool, args, folder))
                os.sync()  # one run's write-back does not spill into the next
                run = results[tool][-1]
                if "error" in run:  # nothing half-written goes into the agreement check
                    shutil.rmtree(folder / "out" / tool, ignore_errors=True)
                text = run.get("error") or f"{run['seconds']:.2f} s, wall {run['wall']:.1f} s"
                print(f"{tool} run {repeat + 1}: {text}", file=sys.stderr, flush=True)
        checks = {}
        if any(tool in SAVES for tool in args.tools):
            done = spawn(ours, "compare", args, folder)
            checks = {k: v for k, v in done.items() if k != "wall"}
            if "error" in done:
                checks = {tool: {"error": done["error"]} for tool in SAVES}
    text = table(args, results, checks)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
