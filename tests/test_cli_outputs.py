"""The --out folder of the analysis commands: checked first, replaced whole, never half written;
signals end a run with one sentence and nothing marked complete."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from repcompare.cli import main
from repcompare.report.outdir import MANIFEST

FAST = ["--data", "builtin:40:32", "--image-size", "32", "--workers", "0", "--batch-size", "16"]
MODEL = "torchvision:resnet18"


def one_sentence_exit_2(argv: list[str], capsys, *words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("command", ["cka", "invariance", "class-fit"])
def test_a_file_where_the_out_folder_should_be_is_exit_2_before_any_work(command, tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    models = [MODEL, MODEL] if command == "cka" else [MODEL]
    argv = [command, *models, "--out", str(blocker), *FAST]
    one_sentence_exit_2(argv, capsys, str(blocker), "is a file", "--out")
    under_a_file = blocker / "results"
    one_sentence_exit_2(
        [command, *models, "--out", str(under_a_file), *FAST], capsys, "cannot write", "--out"
    )
    assert blocker.read_text() == "a file"


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder nobody may write: permission bits for users, /sys (a read-only mount) for root."""
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        return locked
    try:
        tempfile.TemporaryFile(dir="/sys").close()
    except OSError:
        return Path("/sys")
    pytest.skip("root can write everywhere on this machine, /sys included")


@pytest.mark.parametrize("command", ["cka", "atlas"])
def test_a_refused_run_leaves_no_out_folder_it_made_and_a_users_folder_as_it_was(
    command, tmp_path, capsys
):
    made = tmp_path / "new" / "results"
    argv = [command, MODEL, "timm:resnet18", *FAST, "--batch-size", "2"]
    users = tmp_path / "mine"
    users.mkdir()
    (users / "notes.txt").write_text("kept")
    for out in (made, users):
        assert main([*argv, "--out", str(out)]) == 2
        assert "error: --batch-size 2 is too small" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in users.iterdir()) == ["notes.txt"]


def test_a_read_only_out_folder_is_exit_2(tmp_path, capsys):
    out = _read_only_folder(tmp_path) / "results"
    argv = ["cka", MODEL, MODEL, "--out", str(out), *FAST]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write results to") and str(out) in err, err
    assert "--out" in err and "Traceback" not in err
    assert not out.exists()  # refused before any work: no folder, no results


def test_rerun_replaces_the_results_and_removes_stale_pictures(tmp_path):
    out = tmp_path / "cmp"
    paper = ["--layers-a", "paper", "--layers-b", "paper"]
    assert main(["cka", MODEL, "timm:resnet18", "--out", str(out), *FAST, *paper]) == 0
    assert (out / "heatmap_blocks.png").is_file() and (out / "heatmap_residual.svg").is_file()
    (out / "my-notes.txt").write_text("keep me")
    (out / "heatmap_of_my_paper.png").write_text("mine")  # named like ours, never written by us
    assert main(["cka", MODEL, "timm:resnet18", "--out", str(out), *FAST]) == 0
    names = sorted(p.name for p in out.iterdir() if p.name != MANIFEST)
    assert names == [
        "cka.csv",
        "cka.json",
        "cka.md",
        "heatmap.png",
        "heatmap.svg",
        "heatmap_of_my_paper.png",
        "my-notes.txt",
    ]
    assert (out / "heatmap_of_my_paper.png").read_text() == "mine"
    assert "layer1.0.bn2" not in json.loads((out / "cka.json").read_text())["side_a"]["layers"]


def test_a_run_that_fails_after_the_check_leaves_the_earlier_results_as_they_were(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["cka", MODEL, "timm:resnet18", "--out", str(out), *FAST]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # one batch of 40: the bootstrap fails after the stream, before any file is written
    argv = ["cka", MODEL, "timm:resnet18", "--out", str(out), *FAST[:-1], "64"]
    assert main([*argv, "--bootstrap", "10"]) == 2
    assert "at least 2 batches" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _interrupted(tmp_path: Path, signum: int) -> subprocess.CompletedProcess:
    """A long ``cka`` run stopped by ``signum`` once both models are loaded."""
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "cka.json").write_text("earlier results")
    argv = [sys.executable, "-m", "repcompare", "cka", MODEL, "torchvision:resnet34"]
    argv += ["--out", str(out), "--data", "builtin:4000:32", "--image-size", "32"]
    argv += ["--workers", "0"]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    lines = []
    while len([line for line in lines if "random weights" in line]) < 2:
        line = process.stderr.readline()
        assert line, f"cka ended before loading both models: {lines}"
        lines.append(line)
    time.sleep(2)
    process.send_signal(signum)
    err = "".join(lines) + process.stderr.read()
    process.wait(timeout=60)
    assert (out / "cka.json").read_text() == "earlier results"
    assert not [p for p in out.iterdir() if p.name.startswith(".repcompare-staging")]
    return subprocess.CompletedProcess(argv, process.returncode, "", err)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_cka_says_so_and_writes_nothing(tmp_path, signum, code):
    done = _interrupted(tmp_path, signum)
    assert done.returncode == code, done.stderr
    assert "interrupted; nothing was written" in done.stderr
    assert "Traceback" not in done.stderr


HOLD_OUT_DIR = """
import sys, time
from pathlib import Path
from repcompare.report.outdir import out_dir_lock
with out_dir_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("command", ["cka", "study"])
def test_a_second_run_into_a_held_out_folder_is_refused_naming_the_first(command, tmp_path, capsys):
    out = tmp_path / "cmp"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_OUT_DIR, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        (tmp_path / "link").symlink_to(out)
        for name in (out, tmp_path / "link"):
            argv = [command, MODEL, "timm:resnet18", "--out", str(name), *FAST]
            one_sentence_exit_2(
                argv, capsys, f"--out {name} is being written by process {holder.pid}"
            )
    finally:
        holder.kill()
        holder.wait()
    assert not [p for p in out.iterdir() if not p.name.startswith(".")]  # no results written


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_command_starts_says_so(tmp_path, signum, code):
    """Before the work starts (imports, parsing) Typer turns an interrupt into a silent exit
    130; repcompare says so and gives the signal's own code."""
    argv = [sys.executable, "-m", "repcompare", "cka", MODEL, "timm:resnet18"]
    process = subprocess.Popen(
        [*argv, "--out", str(tmp_path / "cmp"), *FAST], stderr=subprocess.PIPE, text=True
    )
    time.sleep(2)  # importing torch and timm, or loading the models
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert "interrupted; nothing w" in err and "Traceback" not in err
