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


def _extracted(folder, out) -> tuple[np.ndarray, np.ndarray]:
    """``extract`` of an image folder's ``layer1.0``: its rows and the sample index."""
    argv = ["extract", MODEL, "--data", str(folder), "--out", str(out), *SMALL]
    assert main([*argv, "--layers", "layer1.0", "--order", "stored", "--dtype", "float32"]) == 0
    with h5py.File(out) as f:
        return f["activations/view0/layer1.0"][()], f["sample_index"][()]


def test_16_bit_greyscale_images_keep_their_range_scaled_to_8_bits(tmp_path):
    ramp = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    (tmp_path / "wide").mkdir()
    (tmp_path / "narrow").mkdir()
    for i, top in enumerate((60_000, 30_000, 5_000)):  # three images the old reader made white
        wide = np.round(ramp * top).astype(np.uint16)
        Image.fromarray(wide).save(tmp_path / "wide" / f"{i}.png")
        narrow = np.repeat(np.round(wide / 257).astype(np.uint8)[..., None], 3, axis=2)
        Image.fromarray(narrow).save(tmp_path / "narrow" / f"{i}.png")
    rows, _ = _extracted(tmp_path / "wide", tmp_path / "wide.h5")
    reference, _ = _extracted(tmp_path / "narrow", tmp_path / "narrow.h5")
    assert not np.allclose(rows[0], rows[1]) and not np.allclose(rows[1], rows[2])
    np.testing.assert_array_equal(rows, reference)


def test_linked_folders_are_not_followed_so_a_loop_adds_no_images(tmp_path, capsys):
    for c in ("a", "b"):
        for i in range(2):
            (tmp_path / "set" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((32, 32, 3), 40 * i + 100 * (c == "b"), np.uint8)).save(
                tmp_path / "set" / c / f"{i}.png"
            )
    (tmp_path / "set" / "a" / "loop").symlink_to(tmp_path / "set")  # back into the folder
    (tmp_path / "outside").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "outside" / "x.png")
    (tmp_path / "set" / "b" / "away").symlink_to(tmp_path / "outside")  # out of the folder
    (tmp_path / "set" / "c").symlink_to(tmp_path / "outside")  # a linked class folder
    rows, index = _extracted(tmp_path / "set", tmp_path / "set.h5")
    assert len(rows) == 4 and sorted(index) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "did not follow 3 linked folder(s)" in err
    with h5py.File(tmp_path / "set.h5") as f:
        assert f["labels"][()].tolist() == [0, 0, 1, 1]
