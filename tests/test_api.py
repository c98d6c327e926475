"""The Python API (``repcompare.cka`` and friends) against the CLI's files, modules against
specs, Datasets against ``.npz`` files."""

import json

import h5py
import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset

import repcompare
from repcompare.cli import main
from tests.support.checkpoints import seeded_torchvision_resnet18

LAYERS = "layer2.1,layer3.1,layer4.1"
DATA = {"data": "builtin:40:32", "image_size": 32, "crop_pct": 1.0, "workers": 0}
CLI_DATA = ["--data", "builtin:40:32", "--image-size", "32", "--crop-pct", "1.0", "--workers", "0"]
EXACT = 1e-12


def undefined_as_nan(values) -> np.ndarray:
    """JSON's null (undefined) as NaN."""
    return np.array(values, dtype=float)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two torchvision ResNet-18s, seeded random init, saved as state dicts; their specs."""
    root = tmp_path_factory.mktemp("api")
    return [seeded_torchvision_resnet18(root / f"net{seed}.pth", seed) for seed in (0, 1)]


def test_cka_result_holds_the_numbers_of_the_cli_files(checkpoints, tmp_path):
    a, b = checkpoints
    result = repcompare.cka(a, b, layers_a=LAYERS, layers_b=LAYERS, batch_size=16, **DATA)
    out = tmp_path / "cli"
    cli = ["cka", a, b, "--layers-a", LAYERS, "--layers-b", LAYERS, "--batch-size", "16"]
    assert main([*cli, *CLI_DATA, "--out", str(out)]) == 0
    written = json.loads((out / "cka.json").read_text())
    assert list(result.matrix.names_a) == written["side_a"]["layers"] == LAYERS.split(",")
    assert result.matrix.values.shape == (3, 3)
    np.testing.assert_allclose(result.matrix.values, undefined_as_nan(written["cka"]), atol=EXACT)
    assert written["settings"] == result.settings.to_dict()
    assert written["side_a"]["provenance"] == result.provenance_a.to_dict()


def test_invariance_result_holds_the_numbers_of_the_cli_files(checkpoints, tmp_path):
    a, b = checkpoints
    result = repcompare.invariance(a, b, layers=LAYERS, augment="flip", batch_size=16, **DATA)
    out = tmp_path / "cli"
    args = ["invariance", a, b, "--layers", LAYERS, "--augment", "flip", "--batch-size", "16"]
    assert main([*args, *CLI_DATA, "--out", str(out)]) == 0
    records = json.loads((out / "invariance.json").read_text())["records"]
    got = np.concatenate([curve.values for curve in result.curves])
    np.testing.assert_allclose(
        got, undefined_as_nan([r["invariance"] for r in records]), atol=EXACT
    )
    assert [r["layer"] for r in records] == [n for c in result.curves for n in c.layers]


def test_class_fit_result_holds_the_numbers_of_the_cli_files(checkpoints, tmp_path):
    a = checkpoints[0]
    result = repcompare.class_fit(a, layers=LAYERS, batch_size=16, knn_k=3, **DATA)
    out = tmp_path / "cli"
    args = ["class-fit", a, "--layers", LAYERS, "--batch-size", "16", "--knn-k", "3"]
    assert main([*args, *CLI_DATA, "--out", str(out)]) == 0
    records = json.loads((out / "class_fit.json").read_text())["records"]
    (fit,) = result.fits
    for measure in ("class_cka", "ratio", "knn", "probe"):
        written = undefined_as_nan([r[measure] for r in records])
        np.testing.assert_allclose(fit.measures[measure], written, atol=EXACT)


def test_extract_writes_the_file_the_cli_writes_and_layers_lists_the_same(checkpoints, tmp_path):
    a = checkpoints[0]
    result = repcompare.extract(a, out=tmp_path / "api.h5", layers=LAYERS, batch_size=16, **DATA)
    cli = tmp_path / "cli.h5"
    args = ["extract", a, "--layers", LAYERS, "--batch-size", "16", *CLI_DATA, "--out", str(cli)]
    assert main(args) == 0
    assert result.images == 40 and list(result.settings.layers) == LAYERS.split(",")
    document = json.loads(json.dumps(result.to_dict()))
    assert document["path"] == str(tmp_path / "api.h5") and document["images"] == 40
    with h5py.File(result.path) as made, h5py.File(cli) as written:
        assert document["settings"] == json.loads(made.attrs["settings"])
        assert document["widths"] == [
            made[f"activations/view0/{n}"].shape[1] for n in LAYERS.split(",")
        ]
        for name in LAYERS.split(","):
            stored = f"activations/view0/{name}"
            assert np.array_equal(made[stored][()], written[stored][()])


def test_activations_beyond_float16_are_refused_and_nothing_is_marked_complete(tmp_path):
    module = torchvision.models.resnet18()
    with torch.no_grad():
        module.fc.weight.mul_(1e7)  # logits far beyond float16's 65504
    out, layers = tmp_path / "big.h5", "layer4.1,fc"
    overflow = r"layer 'fc' has NaN or Inf activations in float16; use --dtype float32"
    with pytest.raises(repcompare.InputError, match=overflow):
        repcompare.extract(module, out=out, layers=layers, batch_size=16, **DATA)
    with h5py.File(out, "r") as f:
        assert not f.attrs["complete"] and int(f["rows_done"][()]) == 0
    wide = repcompare.extract(
        module, out=tmp_path / "wide.h5", layers=layers, batch_size=16, dtype="float32", **DATA
    )
    assert wide.images == 40


def test_layers_result_is_what_the_cli_prints_as_json(checkpoints, capsys):
    a = checkpoints[0]
    result = repcompare.layers(a, layers="blocks", image_size=32)
    assert main(["layers", a, "--layers", "blocks", "--image-size", "32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result.to_dict()))
    assert [r["name"] for r in result.records()][:2] == ["layer1.0", "layer1.1"]


def test_a_module_built_by_hand_gives_the_cka_of_the_same_weights_loaded_by_spec(checkpoints):
    a, b = checkpoints
    module = torchvision.models.resnet18()
    module.load_state_dict(torch.load(a.split("@")[1], weights_only=True))
    same_preprocessing = {"interpolation": "bilinear", "mean": (0.485, 0.456, 0.406)}
    same_preprocessing["std"] = (0.229, 0.224, 0.225)
    by_spec = repcompare.cka(a, b, layers_a=LAYERS, layers_b=LAYERS, **DATA, **same_preprocessing)
    by_hand = repcompare.cka(
        module, b, layers_a=LAYERS, layers_b=LAYERS, **DATA, **same_preprocessing
    )
    np.testing.assert_allclose(by_hand.matrix.values, by_spec.matrix.values, atol=EXACT)
    assert by_hand.side_a == "ResNet" and by_hand.provenance_a.model_spec == "module:ResNet"
    assert len(by_hand.provenance_a.checkpoint_sha256) == 64


class ArrayImages(Dataset):
    """(image, label) items from arrays, images as (3, H, W) uint8 tensors; no ``classes``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.images[i]).permute(2, 0, 1), int(self.labels[i])


def test_a_dataset_or_loader_gives_the_result_of_the_same_images_in_an_npz(checkpoints, tmp_path):
    a, b = checkpoints
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (36, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(36) % 3
    np.savez(tmp_path / "images.npz", images=images, labels=labels)
    options = {"image_size": 32, "crop_pct": 1.0, "workers": 0, "batch_size": 12}
    from_npz = repcompare.cka(a, b, layers_a=LAYERS, data=tmp_path / "images.npz", **options)
    dataset = ArrayImages(images, labels)
    from_dataset = repcompare.cka(a, b, layers_a=LAYERS, data=dataset, **options)
    np.testing.assert_allclose(from_dataset.matrix.values, from_npz.matrix.values, atol=EXACT)
    loader = DataLoader(dataset, batch_size=5, shuffle=True)
    fit_npz = repcompare.class_fit(a, layers=LAYERS, data=tmp_path / "images.npz", **options)
    fit_loader = repcompare.class_fit(a, layers=LAYERS, data=loader, **options)
    assert fit_loader.settings.num_classes == fit_npz.settings.num_classes == 3
    for measure in ("class_cka", "knn", "probe"):
        np.testing.assert_allclose(
            fit_loader.fits[0].measures[measure], fit_npz.fits[0].measures[measure], atol=EXACT
        )


def test_the_api_prints_nothing_unless_asked(checkpoints, capsys):
    a = checkpoints[0]
    repcompare.cka(a, a, layers_a="layer4.1", **DATA)
    assert capsys.readouterr() == ("", "")
    repcompare.cka(a, a, layers_a="layer4.1", progress=True, **DATA)
    assert "loaded" in capsys.readouterr().err


def test_an_unknown_keyword_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="'image_sise'"):
        repcompare.cka("resnet18", "resnet18", image_sise=32)


def test_a_bad_option_value_is_an_input_error():
    with pytest.raises(repcompare.InputError, match="--mean takes three"):
        repcompare.cka("resnet18", "resnet18", mean=(0.5, 0.5))


def test_the_issue_example_runs():
    r = repcompare.cka(
        "torchvision:resnet18", "timm:resnet18", data="builtin:256:32", image_size=32, workers=0
    )
    assert r.matrix.shape == (8, 8)
    assert r.matrix.names_a[0] == "layer1.0"


def test_the_rbf_bandwidth_convention_reaches_the_estimator(checkpoints):
    a, b = checkpoints
    run = {"layers_a": "layer4.1", "layers_b": "layer4.1", "kernel": "rbf", **DATA}
    results = {
        m: repcompare.cka(a, b, rbf_median=m, batch_size=20, **run) for m in ("all", "distinct")
    }
    assert results["distinct"].settings.rbf_median == "distinct"
    assert results["all"].to_dict()["settings"]["rbf_median"] == "all"
    assert abs(results["all"].matrix.values[0, 0] - results["distinct"].matrix.values[0, 0]) > 1e-6
    with pytest.raises(repcompare.InputError, match="--rbf-median"):
        repcompare.cka(a, b, rbf_median="mean", **run)


def test_a_call_closes_the_files_it_opened_whether_it_returns_or_is_refused(tmp_path):
    """No read lock outlives a call: the same file can be extracted again with force."""
    store = tmp_path / "g.h5"
    extract = {"layers": LAYERS, "store": "grams", "batch_size": 8, **DATA}
    repcompare.extract("timm:resnet18", out=store, **extract)
    with pytest.raises(repcompare.InputError, match="per-batch Gram matrices") as refused:
        repcompare.cka(store, "timm:resnet18", estimator="exact", layers_b=LAYERS, **DATA)
    assert refused.value is not None  # the traceback, and what it holds, still alive
    repcompare.extract("timm:resnet18", out=store, force=True, **extract)
    repcompare.cka(store, "timm:resnet18", layers_b=LAYERS, **DATA)
    repcompare.extract("timm:resnet18", out=store, force=True, **extract)
