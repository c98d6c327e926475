"""Helpers for fault tests: real ``repcompare`` processes, file-size limits, byte comparison."""

import hashlib
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py

SMALL = [
    "--data",
    "builtin:96:32",
    "--image-size",
    "32",
    "--crop-pct",
    "1.0",
    "--num-samples",
    "65",
    "--batch-size",
    "16",
    "--workers",
    "0",
    "--layers",
    "layer1.0,layer4.1",
]
# long enough (25 batches of 48-pixel images) to be interrupted mid-way
LONG = [
    "--data",
    "builtin:200:48",
    "--image-size",
    "48",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--layers",
    "layer1.0,layer2.1,layer4.1",
]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "repcompare", *args]


def cli(*args: str, preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """Run ``repcompare ARGS`` in a new process; its exit code and output."""
    return subprocess.run(
        command(*args), capture_output=True, text=True, preexec_fn=preexec_fn, timeout=900
    )


def file_size_limit(nbytes: int) -> Callable[[], None]:
    """A ``preexec_fn`` that caps files at ``nbytes`` (``ulimit -f``); writes past it fail
    with EFBIG instead of killing the process with SIGXFSZ."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def error_sentence(stderr: str) -> str:
    """The one error line of a run that failed cleanly (asserting there is no traceback)."""
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def rows_done(path: Path) -> int:
    """``/rows_done`` of a file being written (0 while it cannot be read yet)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["rows_done"][()])
    except (OSError, KeyError):
        return 0


def start_and_wait(args: list[str], out: Path, rows: int) -> subprocess.Popen:
    """Start ``repcompare extract ARGS --out OUT`` and return once ``rows`` rows are done."""
    child = subprocess.Popen(
        command("extract", *args, "--out", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while rows_done(out) < rows and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    return child


def datasets(path: Path) -> dict[str, bytes]:
    """Every dataset of an HDF5 file, as bytes."""
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


def assert_same_datasets(path: Path, reference: Path) -> None:
    """``path`` is complete and every dataset equals the reference's byte for byte."""
    got, want = datasets(path), datasets(reference)
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name] == want[name], name
    with h5py.File(path, "r", locking=False) as a, h5py.File(reference, "r", locking=False) as b:
        assert a.attrs["complete"] and b.attrs["complete"]
        assert a.attrs["data_fingerprint"] == b.attrs["data_fingerprint"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
