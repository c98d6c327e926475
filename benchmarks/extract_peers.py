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
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEER_PACKAGES = {"thingsvision": "2.7.3"}
RUN_PREFIX = "uv run " + " ".join(f"--with {p}=={v}" for p, v in PEER_PACKAGES.items())
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
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

    from repcompare.data.sources import open_source

    images = folder / "images"
    images.mkdir()
    source = open_source(f"builtin:{args.images}:{args.image_size}")
    for index in range(len(source)):
        source.load(index)[0].convert("RGB").save(images / f"{index:05d}.png")
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
    from torchvision import transforms

    model = ready_model(folder)
    preprocess = transforms.Compose(
        [
            transforms.Resize(args.image_size),
            transforms.CenterCrop(args.image_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    files = sorted((folder / "images").iterdir())
    images = torch.stack([preprocess(Image.open(f).convert("RGB")) for f in files])
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in images.split(args.batch_size):
            model(batch)
    return time.perf_counter() - start, ["images decoded and preprocessed before the timing"]


def run_thingsvision(args: argparse.Namespace, folder: Path, out: Path) -> tuple[float, list[str]]:
    import torch
    from thingsvision import get_extractor_from_model
    from thingsvision.utils.data import DataLoader, ImageDataset
    from thingsvision.utils.storing import save_features

    extractor = get_extractor_from_model(model=ready_model(folder), device="cpu", backend="pt")
    start = time.perf_counter()
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
    notes = []
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
        notes.append(f"returned {', '.join(sorted({str(a.dtype) for a in features.values()}))}")
        if list(features) != LAYERS:
            notes.append(f"returned its layers in another order: {', '.join(features)}")
        for layer in LAYERS:
            save_features(features[layer], out_path=str(out / layer), file_format=args.tv_format)
    return time.perf_counter() - start, notes


def run_repcompare(args: argparse.Namespace, folder: Path, out: Path) -> tuple[float, list[str]]:
    from repcompare import api

    model = ready_model(folder)
    start = time.perf_counter()
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
    seconds = time.perf_counter() - start
    share = result.seconds / seconds
    return seconds, [f"{100 * share:.0f}% of it in the capture loop (the rest: set-up)"]


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
    report = {
        "seconds": seconds,
        "bytes": written,
        "files": count,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "notes": notes,
    }
    Path(args.result).write_text(json.dumps(report))


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


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else "no error message"


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
    result.unlink(missing_ok=True)
    command = [
        *(python, __file__, "--job", job, "--folder", str(folder), "--result", str(result)),
        *("--images", str(args.images), "--image-size", str(args.image_size)),
        *("--batch-size", str(args.batch_size), "--workers", str(args.workers)),
        *("--tv-format", args.tv_format),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        if done.returncode < 0:
            return {"error": f"killed by signal {-done.returncode} (out of memory?)"}
        message = last_line(done.stderr)
        if message.startswith("ModuleNotFoundError"):
            return {"error": f"not installed or import failed: {message}"}
        return {"error": f"failed: {message}"}
    report = json.loads(result.read_text()) if result.exists() else {}
    report["wall"] = wall
    return report


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


def row(tool: str, runs: list[dict], args: argparse.Namespace, checks: dict) -> str:
    errors = [run["error"] for run in runs if "error" in run]
    if errors:
        return f"| {tool} | | | | | | | | {ABOUT[tool]}; **{errors[0]}** |"
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
    return (
        f"| {tool} | {median_text(speeds, 1)} | {median_text(walls, 1)} | {mb} | {rate} | "
        f"{peak} | {diff} | {'; '.join(notes)} |"
    )


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = models[0].split(":", 1)[1].strip() if models else cpu
    return f"Machine: {cpu} ({os.cpu_count()} cores), CPU runs"


def peer_versions() -> str:
    found = []
    for package in PEER_PACKAGES:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def table(args: argparse.Namespace, results: dict[str, list[dict]], checks: dict) -> str:
    lines = [
        machine_line(),
        f"Command: `{RUN_PREFIX} python benchmarks/extract_peers.py {shlex.join(sys.argv[1:])}`",
        f"Peers: {peer_versions()}",
        f"Workload: torchvision resnet18 (random init, seed {INIT_SEED}, one checkpoint), "
        f"{len(LAYERS)} block outputs flattened, {args.images} built-in images of "
        f"{args.image_size}px as PNG files, batch {args.batch_size}, {args.workers} loader "
        f"workers, {args.repeats} run(s) per tool, interleaved (median, then each run)",
        "",
        "| tool | images/s | start-to-end s | MB written | MB/s | peak MB "
        "| max abs diff vs thingsvision | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [row(tool, results[tool], args, checks) for tool in args.tools]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0, help="loader processes (both tools)")
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
    tools = list(TOOLS) if args.tools == "all" else [t.strip() for t in args.tools.split(",")]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {', '.join(TOOLS)}")
    args.tools = tools
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
    report = table(args, results, checks)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
