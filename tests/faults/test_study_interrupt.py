"""An interrupted ``repcompare study`` resumes: the rerun reuses the finished passes (not
recomputed) and reports exactly what an uninterrupted study reports."""

import json
import signal
import subprocess
import time

import pytest

from tests.support.checkpoints import seeded_torchvision_resnet18
from tests.support.faults import command

pytestmark = pytest.mark.slow

STUDY = [
    *("--data", "builtin:200:48", "--image-size", "48", "--crop-pct", "1.0"),
    *("--batch-size", "8", "--workers", "0", "--bootstrap", "20"),
    *("--augment", "crop", "--augment", "flip", "--augment", "color"),
]


def _values(out) -> dict:
    """Every value the report prints and every result file's numbers (not the timings)."""
    study = json.loads((out / "study.json").read_text())
    files = {}
    for folder in study["sections"].values():
        for path in sorted((out / folder).glob("*.json")):
            document = json.loads(path.read_text())
            document.pop("seconds", None)
            files[f"{folder}/{path.name}"] = document
    return {"summary": study["summary"], "files": files}


def test_an_interrupted_study_resumes_with_the_finished_passes(tmp_path):
    specs = [seeded_torchvision_resnet18(tmp_path / f"net{seed}.pth", seed) for seed in (0, 1)]
    whole = tmp_path / "whole"
    finished = subprocess.run(
        command("study", *specs, "--out", str(whole), *STUDY), capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr

    out = tmp_path / "interrupted"
    parts = out / ".study-parts"
    process = subprocess.Popen(
        command("study", *specs, "--out", str(out), *STUDY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while not (parts / "invariance_crop.json").exists() and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "finished passes are kept" in stderr and "Traceback" not in stderr
    assert not (out / "report.html").exists()  # nothing passed off as complete
    kept = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.json")}
    assert {"plain.json", "invariance_crop.json"} <= set(kept)

    rerun = subprocess.run(
        command("study", *specs, "--out", str(out), *STUDY), capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "reused from an earlier run: plain, invariance_crop" in rerun.stderr
    for name, modified in kept.items():  # the finished passes were not computed again
        assert (parts / name).stat().st_mtime_ns == modified, name
    assert _values(out) == _values(whole)
