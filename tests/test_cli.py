import atexit
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

from repcompare import cli
from repcompare.capture.models import REACH_SECONDS, check_reachable
from repcompare.capture.spec import parse_spec
from repcompare.cli import main, run
from repcompare.errors import InputError

COMMANDS = ["layers", "extract", "cka", "invariance", "class-fit", "demo"]


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out


def test_python_dash_m_works_like_the_console_script():
    done = subprocess.run(
        [sys.executable, "-m", "repcompare", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "class-fit" in done.stdout


def test_console_script_exits_with_main_code_and_skips_only_the_finalisation(monkeypatch):
    registered = []
    monkeypatch.setattr(atexit, "register", lambda *call: registered.append(call))
    monkeypatch.setattr(sys, "argv", ["repcompare", "--no-such-flag"])
    monkeypatch.setattr(sys, "gettrace", lambda: None)  # also when the tests run under coverage
    with pytest.raises(SystemExit) as done:
        run()
    assert done.value.code == 2
    assert registered == [(cli._end_now, [2])]  # os._exit(2) once every other handler ran
    monkeypatch.setenv("WORLD_SIZE", "2")
    registered.clear()
    with pytest.raises(SystemExit):
        run()
    assert registered == []  # torchrun: the interpreter finishes as usual


def test_a_command_ends_without_teardown_noise():
    command = ["layers", "torchvision:resnet18", "--image-size", "32"]
    done = subprocess.run(
        [sys.executable, "-m", "repcompare", *command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "torchvision:resnet18 has random weights (init seed 0; no checkpoint, no --pretrained)"
    ]


def test_unknown_option_is_a_usage_error(capsys):
    assert main(["--no-such-flag"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_input_error_is_one_sentence_exit_2_without_traceback(capsys, monkeypatch):
    def broken(*_args, **_kwargs):
        raise InputError("file 'x.h5' is incomplete; rerun extract to finish it")

    monkeypatch.setattr("repcompare.api.open_model", broken)
    assert main(["layers", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "file 'x.h5' is incomplete" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_unexpected_failure_exits_1_and_debug_shows_the_traceback(capsys, monkeypatch):
    def crash(*_args, **_kwargs):
        raise KeyError("boom")

    monkeypatch.setattr("repcompare.api.open_model", crash)
    assert main(["layers", "resnet18"]) == 1
    assert "Rerun with --debug" in capsys.readouterr().err
    assert main(["layers", "resnet18", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_debug_adds_the_traceback_and_keeps_exit_code_2(capsys, monkeypatch):
    def broken(*_args, **_kwargs):
        raise InputError("file 'x.h5' is incomplete; rerun extract to finish it")

    monkeypatch.setattr("repcompare.api.open_model", broken)
    assert main(["--debug", "layers", "resnet18"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "file 'x.h5' is incomplete" in err


def test_pretrained_offline_is_one_sentence_within_seconds(tmp_path):
    """No weights cached and the weights' host unreachable (port 9 of this machine refuses):
    the hub would retry for about a minute; the sentence comes after one refused connection."""
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }
    env.pop("HF_HUB_OFFLINE", None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "repcompare", "layers", "timm:resnet18", "--pretrained"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 30  # interpreter and imports included
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: cannot reach 127.0.0.1 to fetch the published weights")
    assert "give a local checkpoint as timm:resnet18@PATH" in errors[0]


def test_torchvision_weights_are_probed_unless_cached(tmp_path, monkeypatch):
    probed = []

    def refused(address, timeout):
        probed.append((address, timeout))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", refused)
    spec = parse_spec("torchvision:resnet18")
    with pytest.raises(InputError, match=r"reach download\.pytorch\.org .*Connection refused"):
        check_reachable(spec)
    assert probed == [(("download.pytorch.org", 443), REACH_SECONDS)]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "resnet18-f37072fd.pth").write_bytes(b"cached")
    check_reachable(spec)  # cached: no connection needed
    assert len(probed) == 1
