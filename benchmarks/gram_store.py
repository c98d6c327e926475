"""Benchmark P-STORE: a Gram store on disk, and what it saves when a model joins an atlas.

Workload (issue 27), every run a fresh ``repcompare`` process on the built-in images, in
batches of 128, layers ``paper`` reduced with ``flatten``:

1. Bytes on disk per model: ``extract timm:resnet18`` of ``--images`` images at each
   ``--sizes`` px as float16 activations (the default store) and as a Gram store
   (``--store grams``), with each run's wall time.
2. A 13th model joins a 12-model atlas: 12 resnet18s (init seeds 0..11, saved as Gram
   stores at the first size) plus ``timm:resnet18#seed=12`` captured on the fly, against
   the same 13-model atlas with every model captured on the fly, and against the 13th
   model's own forward passes (its ``extract --store grams``).

    uv run python benchmarks/gram_store.py [--images 1024] [--sizes 64,224] [--models 12]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import Report, Stopwatch, add_workload_arguments, peak_rss_mb, run_command

SPEC = "timm:resnet18"
REPCOMPARE = [sys.executable, "-m", "repcompare"]


def repcompare(*args: str) -> float:
    """Seconds of one ``repcompare`` command run to its end."""
    with Stopwatch() as watch:
        run_command([*REPCOMPARE, *args])
    return watch.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(parser, ["images", "batch_size", "device"], images=1024)
    parser.set_defaults(batch_size=128)
    parser.add_argument("--sizes", default="64,224", help="image sizes, comma-separated")
    parser.add_argument("--models", type=int, default=12, help="models already in the atlas")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    common = ["--layers", "paper", "--reduce", "flatten", "--batch-size", str(args.batch_size)]
    common += ["--device", args.device, "--workers", "0"]
    disk = Report(
        ["image px", "store", "bytes per model", "MB per layer", "extract s"],
        title=f"P-STORE: {SPEC} `paper` flattened, {args.images} images, batch "
        f"{args.batch_size}: bytes on disk per model",
    )
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for size in sizes:
            data = ["--data", f"builtin:{args.images}:{size}", "--image-size", str(size)]
            for store, dtype in (("activations", "float16"), ("grams", "float32")):
                out = root / f"{store}{size}.h5"
                seconds = repcompare(
                    "extract", SPEC, *data, *common, "--store", store, "--out", str(out)
                )
                size_bytes = out.stat().st_size
                disk.add(
                    {
                        "image px": size,
                        "store": f"{store} ({dtype})",
                        "bytes per model": f"{size_bytes:,}",
                        "MB per layer": f"{size_bytes / 1e6 / _layers(out):.2f}",
                        "extract s": f"{seconds:.1f}",
                    }
                )
                out.unlink()
        disk.close()
        size = sizes[0]
        data = ["--data", f"builtin:{args.images}:{size}", "--image-size", str(size)]
        stores = []
        for seed in range(args.models):
            out = root / f"model{seed}.h5"
            repcompare(
                "extract",
                f"{SPEC}#seed={seed}",
                *data,
                *common,
                "--store",
                "grams",
                "--out",
                str(out),
            )
            stores.append(str(out))
        new = f"{SPEC}#seed={args.models}"
        on_the_fly = [f"{SPEC}#seed={seed}" for seed in range(args.models + 1)]
        join = Report(
            ["run", "wall s"],
            title=f"P-STORE: model {args.models + 1} joins a {args.models}-model atlas "
            f"({SPEC} `paper` flattened, {args.images} images at {size} px)",
            json_path=args.json,
        )
        rows = {
            f"atlas of {args.models + 1} models, all captured on the fly": repcompare(
                "atlas", *on_the_fly, *data, *common, "--out", str(root / "fly")
            ),
            f"atlas of {args.models} Gram stores + the new model on the fly": repcompare(
                "atlas", *stores, new, *data, *common, "--out", str(root / "joined")
            ),
            "the new model's own forward passes (extract --store grams)": repcompare(
                "extract", new, *data, *common, "--store", "grams", "--out", str(root / "new.h5")
            ),
        }
        for run, seconds in rows.items():
            join.add({"run": run, "wall s": f"{seconds:.1f}"})
        join.close(disk=disk.rows, peak_child_mb=peak_rss_mb(children=True))


def _layers(path: Path) -> int:
    """The number of layers the file ``path`` holds."""
    import json

    import h5py

    with h5py.File(path, "r") as handle:
        return len(json.loads(handle.attrs["layers"]))


if __name__ == "__main__":
    sys.exit(main())
