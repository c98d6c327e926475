"""``repcompare extract`` under faults: a full disk, SIGTERM, a second process on the file."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from repcompare.cli import main
from repcompare.errors import InputError
from repcompare.store.lock import lock_path
from repcompare.store.reader import open_activations
from tests.support.checkpoints import seeded_torchvision_resnet18
from tests.support.faults import (
    LONG,
    SMALL,
    assert_same_datasets,
    cli,
    error_sentence,
    file_size_limit,
    sha256,
    start_and_wait,
)


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> str:
    return seeded_torchvision_resnet18(tmp_path_factory.mktemp("ckpt") / "resnet18.pth")


@pytest.fixture(scope="module")
def reference(spec, tmp_path_factory):
    """Uninterrupted runs, made on demand, one per argument list."""
    root, made = tmp_path_factory.mktemp("reference"), {}

    def get(args: list[str]):
        key = " ".join(args)
        if key not in made:
            made[key] = root / f"{len(made)}.h5"
            assert main(["extract", spec, *args, "--out", str(made[key])]) == 0
        return made[key]

    return get


def test_a_disk_too_small_is_one_sentence_before_any_work_and_the_rerun_completes(
    spec, reference, tmp_path
):
    out = tmp_path / "a.h5"
    failed = cli("extract", spec, *SMALL, "--out", str(out), preexec_fn=file_size_limit(200_000))
    assert failed.returncode == 1
    sentence = error_sentence(failed.stderr)
    assert f"disk full while writing {out}: it needs" in sentence and " MB more" in sentence
    assert sentence.endswith("free space and rerun the same command to resume")
    assert "images" not in failed.stderr  # no progress bar: it failed before any work
    assert not out.exists() and not lock_path(out).exists()
    assert main(["extract", spec, *SMALL, "--out", str(out)]) == 0
    assert_same_datasets(out, reference(SMALL))


def test_sigterm_stops_like_ctrl_c_with_exit_143_and_the_rerun_resumes(spec, reference, tmp_path):
    out = tmp_path / "a.h5"
    child = start_and_wait([spec, *LONG], out, rows=16)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 143, stderr
    assert f"interrupted; rerun the same command to resume {out}" in stderr
    assert "Traceback" not in stderr
    with pytest.raises(InputError, match="incomplete"):
        open_activations(out)
    assert main(["extract", spec, *LONG, "--out", str(out)]) == 0
    assert_same_datasets(out, reference(LONG))


HOLD_WRITE_LOCK = """
import sys, time
from pathlib import Path
from repcompare.store.lock import lock_for_writing
lock = lock_for_writing(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(600)
"""


def test_a_file_in_use_is_never_truncated_and_others_are_told_who_uses_it(
    spec, reference, tmp_path, capsys
):
    out = tmp_path / "a.h5"
    shutil.copy(reference(SMALL), out)
    before = sha256(out)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        capsys.readouterr()
        (tmp_path / "sub").mkdir()
        (tmp_path / "link.h5").symlink_to(out)
        os.link(out, tmp_path / "sub" / "hard.h5")
        names = [out, tmp_path / "link.h5", tmp_path / "sub" / "hard.h5", tmp_path / "sub/../a.h5"]
        for name in names:  # every name of the file: itself, a symlink, a hard link, a .. path
            argv = ["extract", spec, *SMALL, "--out", str(name), "--force", "--seed", "3"]
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"{name} is being written by process {holder.pid}; wait for it to" in err
            assert sha256(out) == before
        with pytest.raises(InputError, match=rf"being written by process {holder.pid}; wait"):
            open_activations(out)
        assert main(["cka", str(out), str(out), "--out", str(tmp_path / "cka")]) == 2
        assert f"being written by process {holder.pid}; wait" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    with open_activations(out) as file:  # the lock died with its holder
        assert file.settings.num_samples == 65
    assert sha256(out) == before
