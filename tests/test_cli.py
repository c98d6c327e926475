import gc
import subprocess
import sys

import pytest

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


def test_console_script_exits_with_main_code_and_the_collector_off_the_teardown(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["repcompare", "--no-such-flag"])
    try:
        with pytest.raises(SystemExit) as done:
            run()
        assert done.value.code == 2
        assert gc.get_freeze_count() > 0  # the final collections skip what the run built
    finally:
        gc.unfreeze()


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
