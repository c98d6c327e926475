"""Data sets through the real CLI: paths recorded absolutely, moved data found again with --data,
other images refused, stray and corrupt files in image folders."""

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
from PIL import Image

from repcompare.cli import main

MODEL = "torchvision:resnet18"
SMALL = ["--image-size", "32", "--workers", "0", "--batch-size", "16"]
LAYER = ["--layers", "layer4.1"]
PAIR = ["--layers-a", "layer4.1", "--layers-b", "layer4.1"]


def npz(path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    np.savez(path, images=images, labels=rng.integers(0, 4, 40))


def cka_value(out) -> float:
    return json.loads((out / "cka.json").read_text())["cka"][0][0]


def test_relative_data_is_recorded_absolute_and_an_explicit_data_must_match(
    tmp_path, monkeypatch, capsys
):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    npz(work / "imgs.npz", seed=0)
    monkeypatch.chdir(work)
    assert main(["extract", MODEL, "--data", "imgs.npz", "--out", "a.h5", *SMALL, *LAYER]) == 0
    with h5py.File(work / "a.h5") as f:
        assert f.attrs["data_spec"] == str(work / "imgs.npz")

    monkeypatch.chdir(elsewhere)
    file = str(work / "a.h5")
    assert main(["cka", file, "timm:resnet18", "--out", "found", *SMALL, *PAIR]) == 0
    reference = cka_value(elsewhere / "found")

    shutil.move(work / "imgs.npz", elsewhere / "moved.npz")
    assert main(["cka", file, "timm:resnet18", "--out", "lost", *SMALL, *PAIR]) == 2
    err = capsys.readouterr().err
    assert "not there any more" in err and "--data" in err
    argv = ["cka", file, "timm:resnet18", "--data", "moved.npz", "--out", "moved", *SMALL, *PAIR]
    assert main(argv) == 0
    assert cka_value(elsewhere / "moved") == reference

    npz(elsewhere / "other.npz", seed=1)
    argv = ["cka", file, "timm:resnet18", "--data", "other.npz", "--out", "other", *SMALL, *PAIR]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "differs from those recorded" in err and "Traceback" not in err
    assert not (elsewhere / "other" / "cka.json").exists()


def test_stray_files_are_skipped_and_a_corrupt_image_in_a_worker_is_one_sentence(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    (tmp_path / "imgs" / "a" / "notes.jpg").write_text("text, not a picture")
    whole = (tmp_path / "imgs" / "b" / "5.png").read_bytes()
    (tmp_path / "imgs" / "b" / "5.png").write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "a.h5"
    argv = [sys.executable, "-m", "repcompare", "extract", MODEL, "--data", str(tmp_path / "imgs")]
    argv += ["--out", str(out), "--image-size", "32", "--workers", "1", "--batch-size", "4"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert any("warning: skipped 1 file(s)" in line and "notes.jpg" in line for line in lines)
    assert "5.png' is corrupt" in lines[-1] and lines[-1].startswith("error:")
    assert not any("Traceback" in line or "Original" in line for line in lines)
    with h5py.File(out) as f:
        assert not f.attrs["complete"]
