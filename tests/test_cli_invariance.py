"""End-to-end ``repcompare invariance``: models on the fly, activation files, and bad input."""

import csv
import json

import numpy as np
import pytest

from repcompare.cli import main
from tests.support.checkpoints import seeded_timm_resnet18

DATA = ["--data", "builtin:40:32", "--image-size", "32", "--workers", "0", "--batch-size", "20"]
LAYERS = ["--layers", "layer1,layer2,layer3"]


def load(out) -> dict:
    return json.loads((out / "invariance.json").read_text())


def curve(document, model: str, augmentation: str) -> np.ndarray:
    rows = document["records"]
    return np.array(
        [r["invariance"] for r in rows if r["model"] == model and r["augmentation"] == augmentation]
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A seeded ResNet-18 checkpoint and an activation file of it with two flipped views."""
    root = tmp_path_factory.mktemp("invariance")
    spec = seeded_timm_resnet18(root / "a.pth")
    file = root / "a.h5"
    extract = ["extract", spec, "--out", str(file), *DATA, *LAYERS, "--dtype", "float32"]
    assert main([*extract, "--views", "2", "--augment", "flip", "--reduce", "avgpool"]) == 0
    return spec, file


def test_two_models_two_augmentations_write_tables_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["timm:resnet18", "torchvision:resnet18", "--out", str(out), *DATA, *LAYERS]
    assert main(["invariance", *args, "--augment", "flip", "--augment", "none"]) == 0
    document = load(out)
    for model in ("timm:resnet18", "torchvision:resnet18"):
        np.testing.assert_allclose(curve(document, model, "none"), 1.0, atol=1e-6)
        flipped = curve(document, model, "flip")
        assert len(flipped) == 3 and np.all((flipped > 0) & (flipped < 1 - 1e-3))
    fingerprints = document["input_fingerprints"]
    assert set(fingerprints) == {"flip", "none"} and fingerprints["flip"] != fingerprints["none"]
    with open(out / "invariance.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    assert float(rows[0]["invariance"]) == pytest.approx(document["records"][0]["invariance"])
    for name in ("invariance.png", "invariance.svg", "invariance.md"):
        assert (out / name).stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "torchvision:resnet18" in printed and "layer3" in printed


def test_file_model_and_mixed_runs_agree(checkpoint, tmp_path):
    spec, file = checkpoint
    common = [*DATA, *LAYERS, "--reduce", "avgpool"]
    assert main(["invariance", str(file), "--out", str(tmp_path / "f"), *common]) == 0
    assert (
        main(["invariance", spec, "--out", str(tmp_path / "m"), *common, "--augment", "flip"]) == 0
    )
    mixed = ["invariance", str(file), "torchvision:resnet18", "--out", str(tmp_path / "x")]
    assert main([*mixed, *common, "--bootstrap", "30"]) == 0
    from_file, on_the_fly, both = (load(tmp_path / k) for k in ("f", "m", "x"))
    np.testing.assert_allclose(
        curve(from_file, "a", "flip"), curve(on_the_fly, "resnet18@a", "flip"), atol=1e-5
    )
    np.testing.assert_allclose(curve(both, "a", "flip"), curve(from_file, "a", "flip"), atol=1e-9)
    assert both["input_fingerprints"] == on_the_fly["input_fingerprints"]
    record = both["records"][0]
    assert record["ci_low"] <= record["invariance"] <= record["ci_high"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--augment", "color"], "holds views augmented with 'flip'"),
        (["--views", "3"], "holds 2 views; drop --views"),
        (["--augment", "rotate"], "unknown augmentation 'rotate'"),
    ],
)
def test_options_that_contradict_the_file_exit_2(checkpoint, tmp_path, capsys, extra, message):
    _, file = checkpoint
    assert main(["invariance", str(file), "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("augment", "message"), [([], "no augmented views"), (["--augment", "flip"], "a single")]
)
def test_files_with_fewer_than_two_views_exit_2(tmp_path, capsys, augment, message):
    file = tmp_path / "one_view.h5"
    args = ["timm:resnet18", "--out", str(file), *DATA, "--layers", "layer1", "--num-samples", "8"]
    assert main(["extract", *args, "--batch-size", "4", *augment]) == 0
    capsys.readouterr()
    assert main(["invariance", str(file), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"holds {message}" in err and "--views 2" in err


def test_repeated_models_exit_2(tmp_path, capsys):
    assert main(["invariance", "resnet18", "resnet18", "--out", str(tmp_path / "o")]) == 2
    assert "resnet18 is given more than once" in capsys.readouterr().err
