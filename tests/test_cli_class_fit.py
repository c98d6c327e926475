"""End-to-end ``repcompare class-fit``: models on the fly, activation files, and bad input."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from repcompare.cli import main
from repcompare.results.class_fit import MEASURES
from tests.support.checkpoints import seeded_timm_resnet18

DATA = ["--data", "builtin:60:32", "--image-size", "32", "--workers", "0", "--batch-size", "20"]
LAYERS = ["--layers", "layer2,layer3,layer4"]
POOLED = ("intra", "inter", "inter_min", "ratio", "knn", "probe")


def measures(out, model: str) -> dict[str, np.ndarray]:
    records = json.loads((out / "class_fit.json").read_text())["records"]
    rows = [r for r in records if r["model"] == model]
    return {m: np.array([r[m] for r in rows], dtype=float) for m in MEASURES}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A seeded ResNet-18 checkpoint and a float32 activation file of its flattened layers."""
    root = tmp_path_factory.mktemp("class_fit")
    spec = seeded_timm_resnet18(root / "a.pth")
    file = root / "a.h5"
    assert main(["extract", spec, "--out", str(file), *DATA, *LAYERS, "--dtype", "float32"]) == 0
    return spec, file


def test_two_models_write_every_table_and_plot(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["timm:resnet18", "torchvision:resnet18", "--out", str(out), *DATA, *LAYERS]
    assert main(["class-fit", *args, "--bootstrap", "20"]) == 0
    for model in ("timm:resnet18", "torchvision:resnet18"):
        values = measures(out, model)
        assert all(len(v) == 3 and np.all(np.isfinite(v)) for v in values.values())
        assert np.all(np.abs(values["class_cka"]) <= 1)
        assert np.all((values["knn"] >= 0) & (values["knn"] <= 1))
        assert np.all(values["inter_min"] <= values["inter"])
        np.testing.assert_allclose(values["ratio"], values["intra"] / values["inter"])
    with open(out / "class_fit.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and float(rows[0]["class_cka_ci_low"]) <= float(rows[0]["class_cka"])
    assert (out / "class_fit_measures.png").stat().st_size > 1000
    assert (out / "class_fit_measures.svg").exists()
    assert "class_fit_measures.png" in (out / "class_fit.md").read_text()
    assert "probe acc." in capsys.readouterr().out


def test_file_equals_model_and_pooling_equals_avgpool_capture(checkpoint, tmp_path):
    spec, file = checkpoint
    assert main(["class-fit", str(file), "--out", str(tmp_path / "f"), *DATA, *LAYERS]) == 0
    assert main(["class-fit", spec, "--out", str(tmp_path / "m"), *DATA, *LAYERS]) == 0
    pooled = ["class-fit", spec, "--out", str(tmp_path / "p"), *DATA, *LAYERS]
    assert main([*pooled, "--reduce", "avgpool"]) == 0
    from_file, flat, avgpool = (
        measures(tmp_path / k, n) for k, n in (("f", "a"), ("m", "resnet18@a"), ("p", "resnet18@a"))
    )
    for m in MEASURES:
        np.testing.assert_allclose(from_file[m], flat[m], atol=1e-5, err_msg=m)
    for m in POOLED:  # kNN, probe and crowding see pooled features however they were captured
        np.testing.assert_allclose(avgpool[m], flat[m], rtol=1e-4, atol=1e-5, err_msg=m)
    assert not np.allclose(avgpool["class_cka"], flat["class_cka"], atol=1e-3)


def test_unlabelled_images_exit_2_with_a_clear_message(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(8):
        Image.new("RGB", (32, 32), (30 * i, 0, 0)).save(folder / f"{i}.png")
    args = ["timm:resnet18", "--out", str(tmp_path / "o"), "--data", str(folder), "--workers", "0"]
    assert main(["class-fit", *args, "--batch-size", "4"]) == 2
    err = capsys.readouterr().err
    assert "class-fit needs labelled images" in err and "Traceback" not in err


def test_a_file_of_augmented_views_is_refused(tmp_path, capsys):
    file = tmp_path / "views.h5"
    args = ["timm:resnet18", "--out", str(file), *DATA, "--layers", "layer4", "--num-samples", "8"]
    assert main(["extract", *args, "--batch-size", "4", "--views", "2", "--augment", "flip"]) == 0
    capsys.readouterr()
    assert main(["class-fit", str(file), "--out", str(tmp_path / "o")]) == 2
    assert "holds augmented views (flip) but class-fit" in capsys.readouterr().err


def test_bad_probe_options_exit_2(capsys, tmp_path):
    assert main(["class-fit", "resnet18", "--out", str(tmp_path), "--test-fraction", "1.5"]) == 2
    assert "--test-fraction 1.5 must lie between 0 and 1" in capsys.readouterr().err
