"""Benchmark: peak memory of ``repcompare cka`` does not grow with the number of samples.

Runs the same on-the-fly comparison over N and ``--factor`` x N images, each in
its own process, and reports the peak resident memory (``ru_maxrss`` of the
child) and, on CUDA, the peak allocated device memory. Model i is initialised with
seed i and saved to a checkpoint first, so the same spec given twice is two models
(as in workload W), not one model compared with itself. Target (issue 11): the
larger run peaks within 5% of the smaller one (CPU: 512 vs 4,096 images at
64 px; GPU: 10,000 vs 40,000 at 224 px).

    uv run python benchmarks/cka_memory.py [--images 512] [--factor 8] [--image-size 64]
        [--models torchvision:resnet18,torchvision:resnet34] [--layers blocks] [--device cpu]
        [--workers N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from harness import Report, Stopwatch, Workload, add_workload_arguments, run_command

HERE = str(Path(__file__).resolve().parent)
# the child: the command in this process, then its peaks (harness imports only the stdlib)
PEAKS = (
    f"import sys; sys.path.append({HERE!r}); from harness import peak_rss_mb, peak_device_mb; "
    "from repcompare.cli import main; code = main(sys.argv[1:]); "
    "print('PEAK', peak_rss_mb(), peak_device_mb() or 0); sys.exit(code)"
)
COLUMNS = ("images", "peak RSS (MB)", "peak device MB", "time (s)")


def peak_of_run(work: Workload, models: list[str]) -> tuple[float, float, float]:
    """(peak host MB, peak device MB, seconds) of one ``repcompare cka`` process."""
    out = tempfile.mkdtemp(prefix="repcompare-mem-")
    command = [sys.executable, "-c", PEAKS, "cka", *models]
    command += ["--layers-a", work.layers, "--layers-b", work.layers, *work.cli_options()]
    command += ["--crop-pct", "1.0", "--reduce", work.reduce, "--out", out]
    with Stopwatch() as watch:
        done = run_command(command)
    peaks = next(line for line in done.stdout.splitlines() if line.startswith("PEAK"))
    host, device = map(float, peaks.split()[1:])
    with open(f"{out}/cka.json") as handle:
        assert json.load(handle)["settings"]["n_examples"] == work.images
    return host, device, watch.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workload_arguments(
        parser,
        ["images", "image_size", "batch_size", "models", "layers", "device", "workers"],
        images=512,
        models="torchvision:resnet18,torchvision:resnet34",
        layers="blocks",
        device="cpu",
    )
    parser.add_argument("--factor", type=int, default=8)
    args = parser.parse_args()
    work = Workload.from_args(args)
    models = work.checkpoints(Path(tempfile.mkdtemp(prefix="repcompare-mem-models-")))
    title = (
        f"{args.models}, {work.layers}, {work.reduce}, batch {work.batch_size}, "
        f"{work.image_size}px, {work.device.type}"
    )
    table = Report(COLUMNS, title, align="rrrr")
    peaks = []
    for images in (work.images, args.factor * work.images):
        host, device, seconds = peak_of_run(replace(work, images=images), models)
        peaks.append((host, device))
        figures = (images, f"{host:.0f}", f"{device:.0f}", f"{seconds:.1f}")
        table.add(figures)
    table.close()
    (host_n, device_n), (host_kn, device_kn) = peaks
    growth = 100 * (host_kn / host_n - 1)
    device_growth = 100 * (device_kn / device_n - 1) if device_n else 0.0
    print(
        f"\ngrowth from {work.images} to {args.factor * work.images} images: host "
        f"{growth:+.1f}%, device {device_growth:+.1f}% (target within 5%)"
    )


if __name__ == "__main__":
    main()
