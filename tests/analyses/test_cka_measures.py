"""``cka --measure``: the shape metrics streamed over every image, the other measures on a
fixed sample, each equal to the measure computed on the same rows of the activation files."""

import json

import h5py
import numpy as np
import pytest
import torch

import repcompare
from repcompare.analyses import cka as cka_module
from repcompare.cli import main
from repcompare.similarity import MEASURES
from tests.support.checkpoints import seeded_torchvision_resnet18

DATA = {"data": "builtin:40:32", "image_size": 32, "crop_pct": 1.0, "workers": 0}
LAYERS = "layer1.0,layer3.1,layer4.1"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two ResNet-18s (seeded random init) extracted in float32 from the same images."""
    root = tmp_path_factory.mktemp("measures")
    paths = []
    for seed in (0, 1):
        path = root / f"net{seed}.h5"
        repcompare.extract(
            seeded_torchvision_resnet18(root / f"net{seed}.pth", seed),
            out=path,
            layers=LAYERS,
            reduce="avgpool",
            dtype="float32",
            batch_size=10,
            **DATA,
        )
        paths.append(path)
    return paths


def _rows(path, count=None) -> list[torch.Tensor]:
    with h5py.File(path) as handle:
        names = json.loads(handle.attrs["layers"])
        return [torch.from_numpy(handle[f"activations/view0/{n}"][:count]) for n in names]


def _expected(name: str, a, b) -> np.ndarray:
    spec = MEASURES[name]
    return np.array([[float(spec.compute(x, y)) for y in b] for x in a])


def test_shape_metrics_stream_over_every_image(files):
    result = repcompare.cka(*files, measure="procrustes", batch_size=10)
    assert result.settings.method == "streamed cross-covariances over all 40 images"
    expected = _expected("procrustes", _rows(files[0]), _rows(files[1]))
    np.testing.assert_allclose(result.matrix.values, expected, atol=1e-7)


def test_other_measures_use_the_first_images_of_the_order(files):
    for name in ("rsa", "mutual-knn"):
        result = repcompare.cka(*files, measure=name, sample=24, batch_size=10)
        assert result.settings.method.startswith("on a fixed sample: the first 24 images")
        expected = _expected(name, _rows(files[0], 24), _rows(files[1], 24))
        np.testing.assert_allclose(result.matrix.values, expected, atol=1e-8, err_msg=name)


def test_a_shape_metric_too_wide_to_stream_falls_back_to_the_sample(files, monkeypatch):
    monkeypatch.setattr(cka_module, "available_memory", lambda: 0)
    result = repcompare.cka(*files, measure="angular", sample=30, batch_size=10)
    assert "fixed sample" in result.settings.method
    expected = _expected("angular", _rows(files[0], 30), _rows(files[1], 30))
    np.testing.assert_allclose(result.matrix.values, expected, atol=1e-8)


def test_the_cli_shows_a_distance_as_a_distance(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["cka", *map(str, files), "--measure", "procrustes", "--out", str(out)]) == 0
    document = json.loads((out / "cka.json").read_text())
    assert document["measure"] == "procrustes" and document["kind"] == "distance"
    values = np.array(document["procrustes"], dtype=float)
    for row, match in zip(values, document["best_matches"], strict=True):
        assert match["best_procrustes"] == pytest.approx(row.min())
    assert (out / "heatmap.png").stat().st_size > 0
    assert "procrustes" in (out / "cka.csv").read_text().splitlines()[0]


def test_bootstrap_is_for_cka_only(files):
    with pytest.raises(repcompare.InputError, match="drop it for --measure rsa"):
        repcompare.cka(*files, measure="rsa", bootstrap=10)
    with pytest.raises(repcompare.InputError, match="--measure"):
        repcompare.cka(*files, measure="cosine")


@pytest.mark.parametrize(
    ("measure", "images", "says"),
    [
        ("svcca", "4", "is 1 for any two layers on 4 images against layers up to 512"),
        ("pwcca", "8", "is 1 for any two layers on 8 images"),
        ("procrustes", "2", "is 0 for any two layers on 2 images"),
        ("rsa", "3", "needs 4 images or more"),
        ("mutual-knn", "10", "needs more than 10 images; it has 10"),
    ],
)
def test_a_measure_degenerate_at_this_n_is_refused_before_any_work(
    files, measure, images, says, tmp_path, capsys
):
    argv = ["cka", "torchvision:resnet18", "timm:resnet18", "--measure", measure]
    argv += ["--num-samples", images, "--layers-a", "layer4.1", "--layers-b", "layer4.1"]
    argv += ["--data", "builtin:40:32", "--image-size", "32", "--workers", "0"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and "images" not in err.split(says)[0][:5]
    assert not (tmp_path / "cka.json").exists()


def test_a_biased_measure_says_so_in_the_terminal_the_json_and_every_picture(
    files, tmp_path, capsys
):
    out = tmp_path / "biased"
    argv = ["cka", str(files[0]), str(files[1]), "--measure", "angular", "--out", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: --measure angular shrinks towards 0 on 40 images against layers up to 512" in (
        " ".join(err.split())
    )
    settings = json.loads((out / "cka.json").read_text())["settings"]
    assert "shrinks towards 0 on 40 images against layers up to 512 features" in settings["caveat"]
    assert "shrinks towards 0 on 40 images" in (out / "cka.md").read_text()
    result = repcompare.cka(*files, measure="angular")
    for figure in result.plot():
        titles = " ".join(" ".join(ax.get_title().split()) for ax in figure.axes)
        assert "biased: 40 images, width up to 512" in titles  # wrapped to the picture
