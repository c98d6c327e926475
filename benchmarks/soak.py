"""Soak test: many short ``extract``/``cka`` commands under random faults.

    uv run python benchmarks/soak.py --runs 200

Each run is one real ``repcompare`` process (or two at once) on a few shared
output files, so faults pile up and later runs resume what earlier ones left:
SIGKILL, SIGTERM or SIGINT at a random moment, a full disk (a random
``RLIMIT_FSIZE``, as ``ulimit -f``), a second writer (``--force``) or a reader
(``cka``) while a writer works. It counts

- clear endings: exit 0, 1, 2, 130 or 143 with at most one ``error:`` sentence
  and no traceback (runs ended by the SIGKILL itself are counted apart);
- lost or mixed data: a file marked complete whose datasets differ from an
  uninterrupted run's, or a ``cka`` whose result differs from the reference.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import torch
import torchvision

ARGS = [
    "--data",
    "builtin:120:32",
    "--image-size",
    "32",
    "--crop-pct",
    "1.0",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--layers",
    "layer1.0,layer3.1,layer4.1",
]
CLEAR_CODES = {0, 1, 2, 130, 143}
FAULTS = ("none", "sigkill", "sigterm", "sigint", "disk_full", "second_writer", "reader", "cka")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "repcompare", *args]


def file_limit(nbytes: int):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def datasets(path: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with h5py.File(path, "r", locking=False) as f:
        f.visititems(
            lambda name, item: (
                found.__setitem__(name, item[()].tobytes())
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    return found


def complete(path: Path) -> bool:
    try:
        with h5py.File(path, "r", locking=False) as f:
            return bool(f.attrs["complete"])
    except (OSError, KeyError):
        return False


def ending(process: subprocess.Popen, signalled: bool) -> str:
    """``killed``, ``clear`` or ``unclear`` for a finished process."""
    _, stderr = process.communicate()
    if process.returncode == -signal.SIGKILL and signalled:
        return "killed"
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    if process.returncode in CLEAR_CODES and "Traceback" not in stderr and len(errors) <= 1:
        return "clear"
    print(f"  unclear ending (exit {process.returncode}): {stderr[-600:]}", file=sys.stderr)
    return "unclear"


def start(args: list[str], limit: int | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=None if limit is None else file_limit(limit),
    )


def one_run(fault: str, spec: str, out: Path, scratch: Path, chance: random.Random) -> list:
    """Run one command (two for the concurrency faults) under ``fault``; their endings."""
    extract = ["extract", spec, *ARGS, "--out", str(out)]
    if fault == "cka":
        if not complete(out):
            return []
        process = start(["cka", str(out), str(out), "--out", str(scratch / "cka")])
        return [ending(process, False)]
    if fault == "disk_full":
        return [ending(start(extract, chance.randrange(10_000, 3_000_000)), False)]
    process = start(extract)
    if fault in ("sigkill", "sigterm", "sigint"):
        time.sleep(chance.uniform(0.5, 8.0))
        sig = {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}
        process.send_signal(sig[fault])
        return [ending(process, fault == "sigkill")]
    if fault == "second_writer":
        time.sleep(chance.uniform(0.0, 6.0))
        other = start([*extract, "--force"])
        return [ending(other, False), ending(process, False)]
    if fault == "reader":
        time.sleep(chance.uniform(0.0, 6.0))
        reader = start(["cka", str(out), str(out), "--out", str(scratch / "cka_during")])
        return [ending(reader, False), ending(process, False)]
    return [ending(process, False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--files", type=int, default=3, help="output files the runs share")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    chance = random.Random(options.seed)
    root = Path(tempfile.mkdtemp(prefix="repcompare-soak-"))
    started = time.perf_counter()
    try:
        torch.manual_seed(0)
        checkpoint = root / "resnet18.pth"
        torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
        spec = f"torchvision:resnet18@{checkpoint}"
        reference = root / "reference.h5"
        subprocess.run(
            command("extract", spec, *ARGS, "--out", str(reference)),
            check=True,
            capture_output=True,
        )
        want = datasets(reference)
        subprocess.run(
            command("cka", str(reference), str(reference), "--out", str(root / "cka_ref")),
            check=True,
            capture_output=True,
        )
        want_cka = json.loads((root / "cka_ref" / "cka.json").read_text())["cka"]
        endings, faults, lost, checked = Counter(), Counter(), 0, 0
        for run in range(options.runs):
            fault = chance.choice(FAULTS)
            out = root / f"out{chance.randrange(options.files)}.h5"
            scratch = root / f"scratch{run}"
            scratch.mkdir()
            faults[fault] += 1
            for result in one_run(fault, spec, out, scratch, chance):
                endings[result] += 1
            if complete(out):
                checked += 1
                if datasets(out) != want:
                    lost += 1
                    print(f"  run {run}: {out.name} is complete but differs", file=sys.stderr)
            for cka in scratch.glob("cka*/cka.json"):
                checked += 1
                got = json.loads(cka.read_text())["cka"]
                if not np.allclose(got, want_cka, atol=1e-6):
                    lost += 1
                    print(f"  run {run}: {cka} differs from the reference", file=sys.stderr)
            shutil.rmtree(scratch)
            print(
                f"run {run + 1}/{options.runs}: {fault}; endings so far {dict(endings)}, "
                f"lost or mixed {lost} of {checked} checked",
                file=sys.stderr,
            )
        seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "runs": options.runs,
                    "faults": dict(faults),
                    "endings": dict(endings),
                    "complete_results_checked": checked,
                    "lost_or_mixed": lost,
                    "wall_seconds": round(seconds),
                },
                indent=2,
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
