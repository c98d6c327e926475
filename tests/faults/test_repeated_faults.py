"""Crash safety under repeated faults (slow): SIGKILLs in a row, a disk that fills, two writers.

Every case ends with a rerun of the same command and a file whose datasets equal an
uninterrupted run's byte for byte; ``complete`` is set only by the run that finishes.
"""

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import h5py
import pytest

from repcompare.cli import main
from repcompare.errors import InputError
from repcompare.store.reader import open_activations
from tests.support.checkpoints import seeded_torchvision_resnet18
from tests.support.faults import (
    LONG,
    assert_same_datasets,
    cli,
    error_sentence,
    rows_done,
    start_and_wait,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    return seeded_torchvision_resnet18(tmp_path_factory.mktemp("ckpt") / "resnet18.pth")


@pytest.fixture(scope="module")
def reference(spec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "whole.h5"
    assert main(["extract", spec, *LONG, "--out", str(out)]) == 0
    return out


def assert_incomplete(path: Path) -> None:
    with h5py.File(path, "r", locking=False) as f:
        assert not f.attrs["complete"]
    with pytest.raises(InputError, match="incomplete"):
        open_activations(path)


def test_five_sigkills_in_a_row_then_a_rerun_give_the_uninterrupted_file(spec, reference, tmp_path):
    out, chance = tmp_path / "a.h5", random.Random(16)
    killed_at = []
    for _ in range(5):
        target = min(rows_done(out) + chance.randrange(0, 40), 150)  # room for 0.3 s more
        child = start_and_wait([spec, *LONG], out, rows=target)
        time.sleep(chance.uniform(0, 0.3))  # anywhere in a batch, or while starting
        child.send_signal(signal.SIGKILL)
        child.wait()
        killed_at.append(rows_done(out))
        if out.exists() and rows_done(out) < 200:
            assert_incomplete(out)
    assert max(killed_at) < 200, "every kill must land before the end"
    assert main(["extract", spec, *LONG, "--out", str(out)]) == 0
    assert_same_datasets(out, reference)


@pytest.fixture
def small_disk(tmp_path):
    """A 32 MB tmpfs (needs root), unmounted afterwards; the LONG file takes about 11 MB."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)])
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(path: Path) -> None:
    """Write to ``path`` until the disk is full."""
    with path.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_is_one_sentence_and_the_rerun_after_freeing_space_completes(
    spec, reference, small_disk
):
    out, filler = small_disk / "a.h5", small_disk / "filler"
    fill(filler)
    failed = cli("extract", spec, *LONG, "--out", str(out))
    assert failed.returncode == 1
    sentence = error_sentence(failed.stderr)
    assert f"disk full while writing {out}: it needs" in sentence
    assert sentence.endswith("free space and rerun the same command to resume")
    filler.unlink()
    assert main(["extract", spec, *LONG, "--out", str(out)]) == 0
    assert_same_datasets(out, reference)


def test_a_disk_filling_up_mid_run_cannot_break_the_reserved_file(spec, reference, small_disk):
    out, filler = small_disk / "a.h5", small_disk / "filler"
    child = start_and_wait([spec, *LONG], out, rows=16)
    child.send_signal(signal.SIGSTOP)
    fill(filler)  # the disk is now full, mid-run
    child.send_signal(signal.SIGCONT)
    _, stderr = child.communicate(timeout=600)
    assert child.returncode == 0, stderr
    assert_same_datasets(out, reference)


def test_a_second_writer_and_a_reader_are_turned_away_while_the_first_finishes(
    spec, reference, tmp_path
):
    out = tmp_path / "a.h5"
    first = start_and_wait([spec, *LONG], out, rows=16)
    first.send_signal(signal.SIGSTOP)  # still at work, holding the file, while others try
    outcomes = {}

    def second(name: str, *args: str) -> None:
        outcomes[name] = cli(*args)

    runs = [
        threading.Thread(
            target=second, args=("writer", "extract", spec, *LONG, "--out", str(out), "--force")
        ),
        threading.Thread(
            target=second, args=("reader", "cka", str(out), str(out), "--out", str(tmp_path))
        ),
    ]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    for name, outcome in outcomes.items():
        assert outcome.returncode == 2, (name, outcome.stderr)
        sentence = error_sentence(outcome.stderr)
        assert f"{out} is being written by process {first.pid}; wait for it to finish" in sentence
    assert_same_datasets(out, reference)
