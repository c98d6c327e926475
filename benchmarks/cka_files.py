"""Benchmark: ``repcompare cka a.h5 b.h5`` against the disk's sequential read bandwidth (issue 11).

1. Extracts two activation files of the same images (two random inits of ``--model``,
   init seeds 0 and 1; ``--reduce flatten``, float16) with ``repcompare.api.extract``.
2. Measures the disk's sequential read speed in the same folder: a fresh file of
   ``--probe-mib`` MiB is written, ``fsync``-ed, dropped from the page cache with
   ``posix_fadvise(POSIX_FADV_DONTNEED)`` and read back in 16 MiB blocks. Whether the
   drop worked is checked with ``mincore`` (the fraction of the file's pages resident
   before the read) and reported.
3. ``fsync``s and drops both activation files the same way, then times the command
   ``python -m repcompare cka a.h5 b.h5`` in its own process, while a thread samples
   ``nvidia-smi --query-gpu=utilization.gpu`` every 100 ms (GPU busy; n/a on CPU).

Reported: MB of activations read (every layer of both files) per second of the CKA loop
(``seconds`` in ``cka.json``: from the start of the comparison to its result) and of the
whole command, against the measured read bandwidth. Target: >= 80% of the read
bandwidth, or GPU busy >= 90%.

    uv run python benchmarks/cka_files.py [--model torchvision:resnet18] [--layers paper]
        [--images 256] [--image-size 64] [--batch-size 64] [--device auto] [--folder DIR]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from harness import (
    SPARE_CORES,
    Stopwatch,
    Workload,
    add_workload_arguments,
    device_name,
    report,
    run_command,
    write_test_file,
)

from repcompare import api

BLOCK = 16 << 20
TARGET_READ, TARGET_BUSY = 0.80, 90.0


def libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def resident_fraction(path: Path) -> float | None:
    """Fraction of ``path``'s pages in the page cache (``mincore``); None if unavailable."""
    size = path.stat().st_size
    if size == 0:
        return 0.0
    try:
        c = libc()
        c.mmap.restype = ctypes.c_void_p
        c.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        c.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        c.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        fd = os.open(path, os.O_RDONLY)
        try:
            address = c.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if address in (None, ctypes.c_void_p(-1).value):
                return None
            try:
                pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
                vector = (ctypes.c_ubyte * pages)()
                if c.mincore(address, size, vector) != 0:
                    return None
                return float(np.frombuffer(vector, dtype=np.uint8).__and__(1).mean())
            finally:
                c.munmap(address, size)
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        return None


def drop_from_cache(path: Path) -> tuple[bool, float | None]:
    """``fsync`` and ``posix_fadvise(DONTNEED)`` ``path``: (advice accepted, resident after)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            accepted = True
        except (OSError, AttributeError):
            accepted = False
    finally:
        os.close(fd)
    return accepted, resident_fraction(path)


def read_speed(folder: Path, size: int) -> dict:
    """Sequential read of a freshly written, fsync-ed, dropped file: bytes/s and checks."""
    path = folder / "read_speed.bin"
    write = write_test_file(path, size, BLOCK)
    accepted, resident = drop_from_cache(path)
    buffer = bytearray(BLOCK)
    total = 0
    with Stopwatch() as watch, open(path, "rb", buffering=0) as handle:
        while chunk := handle.readinto(buffer):
            total += chunk
    path.unlink()
    return {
        "bytes": total,
        "read": total / watch.seconds,
        "write": write,
        "accepted": accepted,
        "resident": resident,
    }


class GpuBusy:
    """Samples ``nvidia-smi`` GPU utilisation every 100 ms in a thread."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self.process = None
        if shutil.which("nvidia-smi") and torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
            index = visible if visible.isdigit() else "0"
            self.process = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "100",
                    "-i",
                    index,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.samples.append((time.monotonic(), float(line.strip())))
            except ValueError:
                continue

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()

    def summary(self, begin: float, end: float) -> tuple[str, float | None]:
        """(text, busy % over the active part of [begin, end]) from the samples."""
        if self.process is None:
            return "n/a (no CUDA GPU or no nvidia-smi)", None
        values = [v for t, v in self.samples if begin <= t <= end]
        if not values:
            return "n/a (no samples)", None
        active = [i for i, v in enumerate(values) if v > 0]
        if not active:
            return f"0% over {len(values)} samples", 0.0
        window = values[active[0] : active[-1] + 1]
        busy = float(np.mean(window))
        return (
            f"{busy:.0f}% over the {len(window)} samples from the first to the last busy one "
            f"(~{len(window) / 10:.1f} s); {np.mean(values):.0f}% over the whole command",
            busy,
        )


def activation_bytes(path: Path) -> int:
    total = 0
    with h5py.File(path, "r") as handle:
        for view in handle["activations"].values():
            for dataset in view.values():
                total += dataset.size * dataset.dtype.itemsize
    return total


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ["model", "layers", "images", "image_size", "batch_size", "device", "workers"]
    add_workload_arguments(parser, names, workers=SPARE_CORES)
    parser.add_argument("--probe-mib", type=int, default=2048, help="size of the read test")
    parser.add_argument("--folder", default=None, help="where the files go (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="repcompare-cka-files-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        run(Workload.from_args(args), args.probe_mib, folder)
    finally:
        if not args.keep:
            for name in ("a.h5", "b.h5", ".a.h5.lock", ".b.h5.lock"):
                (folder / name).unlink(missing_ok=True)
            shutil.rmtree(folder / "cka", ignore_errors=True)


def run(work: Workload, probe_mib: int, folder: Path) -> None:
    device = work.device.type
    files, extracted = [], []
    for seed, name in enumerate(("a.h5", "b.h5")):
        result = api.extract(
            work.models[0],
            out=folder / name,
            layers=work.layers,
            reduce="flatten",
            dtype="float16",
            batch_size=work.batch_size,
            data=work.data,
            image_size=work.image_size,
            init_seed=seed,
            device=device,
            workers=work.workers,
            force=True,
        )
        files.append(folder / name)
        extracted.append(result)
    probe = read_speed(folder, probe_mib << 20)
    drops = [drop_from_cache(path) for path in files]
    size = sum(activation_bytes(path) for path in files)
    out = folder / "cka"
    command = [sys.executable, "-m", "repcompare", "cka", *map(str, files)]
    command += ["--out", str(out), "--device", device]
    gpu = GpuBusy()
    begin = time.monotonic()
    try:
        run_command(command)
    finally:
        end = time.monotonic()
        gpu.stop()
    loop = json.loads((out / "cka.json").read_text())["seconds"]
    busy_text, busy = gpu.summary(begin, end)
    first = extracted[0]
    notes = [
        f"{work.models[0]} x 2 (init seeds 0, 1), {len(first.widths)} layers ({work.layers}), "
        f"--reduce flatten, float16, {work.images} built-in images at {work.image_size}px, "
        f"batch {work.batch_size} (the files' chunks), {device} ({device_name(work.device)}); "
        f"files in {folder}"
    ]
    written = sum(r.bytes_written for r in extracted) / sum(r.seconds for r in extracted)
    notes.append(
        f"extract (two files, in-process): {sum(r.bytes_written for r in extracted) / 1e6:.0f} MB "
        f"in {sum(r.seconds for r in extracted):.1f} s, {written / 1e6:.0f} MB/s written"
    )
    resident = [r for _, r in drops]
    notes.append(
        f"disk: sequential write {probe['write'] / 1e6:.0f} MB/s, sequential read "
        f"{probe['read'] / 1e6:.0f} MB/s ({probe['bytes'] >> 20} MiB, fsync, "
        f"posix_fadvise(DONTNEED) {'accepted' if probe['accepted'] else 'refused'}, "
        f"{percent(probe['resident'])} of the file resident in the page cache before the read). "
        f"Activation files after fsync + DONTNEED: "
        f"{', '.join(percent(r) for r in resident)} resident before cka."
    )
    cached = [r for r in [probe["resident"], *resident] if r is not None and r > 0.05]
    notes.append(
        "Page-cache drop: "
        + (
            "worked (every file under 5% resident), so the reads come from the disk."
            if not cached and probe["resident"] is not None
            else "did NOT fully work (or could not be checked): reads may come from the page "
            "cache, so MB/s may exceed the disk."
        )
    )
    rate_loop, rate_wall = size / loop, size / (end - begin)
    fraction = rate_loop / probe["read"]
    met = fraction >= TARGET_READ or (busy is not None and busy >= TARGET_BUSY)
    verdict = "met" if met else "not met"
    row = {
        "run": "repcompare cka a.h5 b.h5",
        "MB read": f"{size / 1e6:.0f}",
        "command s": f"{end - begin:.1f}",
        "CKA loop s": f"{loop:.1f}",
        "MB/s (loop)": f"{rate_loop / 1e6:.0f}",
        "MB/s (command)": f"{rate_wall / 1e6:.0f}",
        "% of read bandwidth (loop)": f"{100 * fraction:.0f}%",
        "GPU busy": busy_text,
        "target": verdict,
    }
    report([row], "\n\n".join(notes), align="lrrrrrrll")
    print(
        f"\nVERDICT: {verdict}: {100 * fraction:.0f}% of the read bandwidth over the CKA loop, "
        f"GPU busy {'n/a' if busy is None else f'{busy:.0f}%'} (target >= 80% or busy >= 90%)"
    )


if __name__ == "__main__":
    main()
