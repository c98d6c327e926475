"""Soak test: many short ``extract``/``cka`` commands under random faults.

    uv run python benchmarks/soak.py --runs 200

Each run is one real ``repcompare`` process (or two at once) on a few shared
output files, so faults pile up and later runs resume what earlier ones left:
SIGKILL, SIGTERM or SIGINT at a random moment, a full disk (a random
``RLIMIT_FSIZE``, as ``ulimit -f``), a second writer (``--force``) or a reader
(``cka``) while a writer works, a second writer reaching the file through a
symbolic link, a hard link or a ``..`` path, and two ``study`` runs into one
``--out`` folder that also holds a user's own files. It counts

- clear endings: exit 0, 1, 2, 130 or 143 with at most one ``error:`` sentence
  and no traceback (runs ended by the SIGKILL itself are counted apart);
- lost or mixed data: a file marked complete whose datasets differ from an
  uninterrupted run's, a ``cka`` or ``study`` whose result differs from the
  reference, or a user's file in the study folder changed or gone.
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
from harness import Workload, report

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
FAULTS = (
    "none",
    "sigkill",
    "sigterm",
    "sigint",
    "disk_full",
    "second_writer",
    "linked_writer",
    "reader",
    "cka",
    "study_writers",
)
STUDY = ["--augment", "flip", "--bootstrap", "0", "--layers", "layer1.0,layer4.1"]
USER_FILE = "heatmap_of_my_paper.png"


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


def other_name(out: Path, chance: random.Random) -> Path:
    """Another name of ``out``: a symbolic link, a hard link (once it exists) or a ``..``
    path."""
    kind = chance.choice(("symlink", "hardlink", "dotdot"))
    if kind == "dotdot":
        (out.parent / "sub").mkdir(exist_ok=True)
        return out.parent / "sub" / ".." / out.name
    link = out.with_name(f"{kind}-{out.name}")
    link.unlink(missing_ok=True)
    if kind == "hardlink" and out.exists():
        link.hardlink_to(out)
    else:
        link.symlink_to(out)
    return link


def study_args(specs: list[str], folder: Path) -> list[str]:
    return ["study", *specs, *ARGS[:-2], *STUDY, "--out", str(folder)]


def one_run(
    fault: str, spec: str, specs: list[str], out: Path, scratch: Path, chance: random.Random
) -> list:
    """Run one command (two for the concurrency faults) under ``fault``; their endings."""
    extract = ["extract", spec, *ARGS, "--out", str(out)]
    if fault == "study_writers":
        folder = out.parent / "study"
        first = start(study_args(specs, folder))
        time.sleep(chance.uniform(0.0, 10.0))
        second = start(study_args(specs, folder))
        return [ending(second, False), ending(first, False)]
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
    if fault in ("second_writer", "linked_writer"):
        time.sleep(chance.uniform(0.0, 6.0))
        name = other_name(out, chance) if fault == "linked_writer" else out
        other = start(["extract", spec, *ARGS, "--out", str(name), "--force"])
        return [ending(other, False), ending(process, False)]
    if fault == "reader":
        time.sleep(chance.uniform(0.0, 6.0))
        reader = start(["cka", str(out), str(out), "--out", str(scratch / "cka_during")])
        return [ending(reader, False), ending(process, False)]
    return [ending(process, False)]


def same_study(got: dict, want: dict) -> bool:
    """The same study results: every number of study.json but the run's own timing."""
    if isinstance(want, dict):
        keys = set(want) - {"seconds", "reused", "created"}
        return set(got) - {"seconds", "reused", "created"} == keys and all(
            same_study(got[k], want[k]) for k in keys
        )
    if isinstance(want, list):
        return len(got) == len(want) and all(map(same_study, got, want))
    if isinstance(want, float):
        return bool(np.isclose(got, want, atol=1e-6, equal_nan=True))
    return got == want


def counts(counter: Counter) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items()))


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
        specs = Workload(["torchvision:resnet18"] * 2).checkpoints(root)  # init seeds 0, 1
        spec = specs[0]
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
        subprocess.run(
            command(*study_args(specs, root / "study_ref")), check=True, capture_output=True
        )
        want_study = json.loads((root / "study_ref" / "study.json").read_text())
        (root / "study").mkdir()
        (root / "study" / USER_FILE).write_text("mine")
        endings, faults, lost, checked = Counter(), Counter(), 0, 0
        for run in range(options.runs):
            fault = chance.choice(FAULTS)
            out = root / f"out{chance.randrange(options.files)}.h5"
            scratch = root / f"scratch{run}"
            scratch.mkdir()
            faults[fault] += 1
            for result in one_run(fault, spec, specs, out, scratch, chance):
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
            study = root / "study"
            if (study / USER_FILE).read_text() != "mine":
                lost += 1
                print(f"  run {run}: the user's file in {study} changed", file=sys.stderr)
            if fault == "study_writers" and (study / "study.json").exists():
                checked += 1
                if not same_study(json.loads((study / "study.json").read_text()), want_study):
                    lost += 1
                    print(f"  run {run}: {study}/study.json differs", file=sys.stderr)
            print(
                f"run {run + 1}/{options.runs}: {fault}; endings so far {dict(endings)}, "
                f"lost or mixed {lost} of {checked} checked",
                file=sys.stderr,
            )
        seconds = time.perf_counter() - started
        figures = {
            "runs": options.runs,
            "faults": dict(faults),
            "endings": dict(endings),
            "complete_results_checked": checked,
            "lost_or_mixed": lost,
            "wall_seconds": round(seconds),
        }
        rows = [
            {"measure": "faults drawn", "value": counts(faults)},
            {"measure": "process endings", "value": counts(endings)},
            {"measure": "complete results checked against the reference", "value": checked},
            {"measure": "lost or mixed data", "value": lost},
            {"measure": "wall time", "value": f"{seconds:.0f} s"},
        ]
        report(rows, f"Soak test: {options.runs} runs, seed {options.seed}", align="ll")
        print("\n" + json.dumps(figures, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
