"""End-to-end ``repcompare cka`` on files, on the fly, and mixed, against a float64 reference."""

import json

import h5py
import numpy as np
import pytest
import torch
import torchvision

from repcompare.cli import main
from repcompare.store.file_format import activation_path
from tests.support import numpy_reference as ref
from tests.support.checkpoints import seeded_timm_resnet18

LAYERS = "layer2.1,layer3.1,layer4.1"
NAMES = LAYERS.split(",")
DATA = ["--data", "builtin:40:32", "--image-size", "32", "--crop-pct", "1.0", "--workers", "0"]


def extract(spec: str, out, *extra: str) -> None:
    """The test files' extract settings: 16 per batch, pooled LAYERS, on DATA."""
    args = [spec, "--out", str(out), *DATA, "--batch-size", "16", "--layers", LAYERS]
    assert main(["extract", *args, "--reduce", "avgpool", *extra]) == 0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two seeded checkpoints and their float32 activation files (batch 16, 40 samples)."""
    root = tmp_path_factory.mktemp("cka")
    spec_a = seeded_timm_resnet18(root / "a.pth")
    torch.manual_seed(1)
    spec_b = root / "b.pth"
    torch.save(torchvision.models.resnet18().state_dict(), spec_b)
    specs = {"a": spec_a, "b": f"torchvision:resnet18@{spec_b}"}
    files = {}
    for key, spec in specs.items():
        files[key] = root / f"{key}.h5"
        extract(spec, files[key], "--dtype", "float32")
    return specs, files


def load(out) -> dict:
    return json.loads((out / "cka.json").read_text())


def reference(files, batch=16) -> np.ndarray:
    """Independent float64 minibatch CKA of every pair, from the stored activations."""
    with h5py.File(files["a"]) as fa, h5py.File(files["b"]) as fb:
        acts_a = [fa[activation_path(0, n)][()].astype(np.float64) for n in NAMES]
        acts_b = [fb[activation_path(0, n)][()].astype(np.float64) for n in NAMES]
    split = lambda x: [x[i : i + batch] for i in range(0, len(x), batch)]  # noqa: E731
    return np.array([[ref.minibatch_cka(split(x), split(y)) for y in acts_b] for x in acts_a])


def test_file_on_the_fly_and_mixed_inputs_match_the_float64_reference(setup, tmp_path):
    specs, files = setup
    expected = reference(files)
    runs = {
        "files": [str(files["a"]), str(files["b"])],
        "on_the_fly": [
            specs["a"],
            specs["b"],
            *DATA,
            "--batch-size",
            "16",
            "--layers-a",
            LAYERS,
            "--layers-b",
            LAYERS,
            "--reduce",
            "avgpool",
        ],
        "mixed": [str(files["a"]), specs["b"], *DATA, "--layers-b", LAYERS, "--reduce", "avgpool"],
    }
    results = {}
    for name, args in runs.items():
        out = tmp_path / name
        assert main(["cka", *args, "--out", str(out)]) == 0, name
        document = load(out)
        assert document["side_a"]["layers"] == NAMES and document["side_b"]["layers"] == NAMES
        results[name] = np.array(document["cka"])
        assert np.abs(results[name] - expected).max() <= 1e-5, name
    np.testing.assert_allclose(results["on_the_fly"], results["files"], atol=1e-6)
    np.testing.assert_allclose(results["mixed"], results["files"], atol=1e-6)
    assert np.ptp(expected) > 0.05  # the pairs really differ: no model compared with itself


def test_self_comparison_is_symmetric_with_unit_diagonal_and_swap_transposes(setup, tmp_path):
    _specs, files = setup
    args = ["cka", str(files["a"]), str(files["a"]), "--out", str(tmp_path / "aa")]
    assert main([*args, "--bootstrap", "50"]) == 0
    document = load(tmp_path / "aa")
    self_cka = np.array(document["cka"])
    np.testing.assert_allclose(np.diag(self_cka), 1.0, atol=1e-9)
    for key in ("cka", "ci_low", "ci_high"):  # rounding never written as a value above 1
        assert np.max(document[key]) <= 1.0, key
    np.testing.assert_allclose(self_cka, self_cka.T, atol=1e-9)
    assert main(["cka", str(files["a"]), str(files["b"]), "--out", str(tmp_path / "ab")]) == 0
    assert main(["cka", str(files["b"]), str(files["a"]), "--out", str(tmp_path / "ba")]) == 0
    ab, ba = np.array(load(tmp_path / "ab")["cka"]), np.array(load(tmp_path / "ba")["cka"])
    np.testing.assert_allclose(ab, ba.T, atol=1e-12)


def test_outputs_bootstrap_and_terminal_table(setup, tmp_path, capsys):
    _specs, files = setup
    out = tmp_path / "boot"
    assert (
        main(["cka", str(files["a"]), str(files["b"]), "--out", str(out), "--bootstrap", "200"])
        == 0
    )
    document = load(out)
    value, low, high = (np.array(document[k]) for k in ("cka", "ci_low", "ci_high"))
    assert np.all(low <= value + 1e-12) and np.all(value <= high + 1e-12)
    lines = (out / "cka.csv").read_text().splitlines()
    assert lines[0] == "layer_a,layer_b,cka,ci_low,ci_high,note" and len(lines) == 1 + 9
    for name in ("heatmap.png", "heatmap.svg", "cka.md"):
        assert (out / name).stat().st_size > 0
    table = capsys.readouterr().out
    assert "most similar" in table and "layer4.1" in table


def test_misaligned_incomplete_and_mismatched_views_exit_2(setup, tmp_path, capsys):
    specs, files = setup
    other = tmp_path / "other_seed.h5"
    extract(specs["b"], other, "--seed", "5")
    capsys.readouterr()
    assert main(["cka", str(files["a"]), str(other), "--out", str(tmp_path / "x")]) == 2
    assert "different order" in capsys.readouterr().err
    views = tmp_path / "views.h5"
    extract(specs["b"], views, "--augment", "flip", "--views", "2")
    capsys.readouterr()
    assert main(["cka", str(files["a"]), str(views), "--out", str(tmp_path / "y")]) == 2
    assert "view" in capsys.readouterr().err
    incomplete = tmp_path / "incomplete.h5"
    with h5py.File(files["a"]) as source, h5py.File(incomplete, "w") as copy:
        for key in source:
            source.copy(source[key], copy, key)
        copy.attrs.update(dict(source.attrs) | {"complete": False})
        copy["rows_done"][()] = 16
    assert main(["cka", str(incomplete), str(files["b"]), "--out", str(tmp_path / "z")]) == 2
    assert "incomplete (16 of 40 samples)" in capsys.readouterr().err


def test_constant_layers_are_reported_as_undefined_not_as_numbers(tmp_path, capsys):
    """Random-init timm ResNets zero each block's last BatchNorm: bn2 outputs are constant."""
    out = tmp_path / "dead"
    assert (
        main(
            [
                "cka",
                "timm:resnet18",
                "timm:resnet18",
                "--layers-a",
                "layer1.0.bn2,layer1.0",
                "--num-samples",
                "16",
                *DATA,
                "--batch-size",
                "8",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    err = " ".join(capsys.readouterr().err.split())
    assert "constant over these images" in err and "layer1.0.bn2" in err
    assert err.count("zero_init_last") == 1  # the cause, said once
    assert "8 normalisation layer(s) start at zero in this random init" in err
    rows = (out / "cka.csv").read_text().splitlines()
    assert "layer1.0.bn2,layer1.0,,,,undefined: constant layer" in rows
    assert load(out)["cka"][1][1] == pytest.approx(1.0)
    assert "nan" not in (out / "cka.csv").read_text().lower()


def test_each_side_takes_its_own_reduction(setup, tmp_path, capsys):
    specs, files = setup
    flat_b = tmp_path / "b_flat.h5"
    extract(specs["b"], flat_b, "--dtype", "float32", "--reduce", "flatten")
    from_files = tmp_path / "files"
    assert main(["cka", str(files["a"]), str(flat_b), "--out", str(from_files)]) == 0
    on_the_fly = tmp_path / "fly"
    args = ["cka", specs["a"], specs["b"], "--out", str(on_the_fly), *DATA, "--batch-size", "16"]
    args += ["--layers-a", LAYERS, "--layers-b", LAYERS]
    assert main([*args, "--reduce-a", "avgpool", "--reduce-b", "flatten"]) == 0
    expected = np.array(load(from_files)["cka"])
    np.testing.assert_allclose(np.array(load(on_the_fly)["cka"]), expected, atol=1e-5)
    same_model = tmp_path / "same"
    args = ["cka", specs["a"], specs["a"], "--out", str(same_model), *DATA, "--batch-size", "16"]
    args += ["--layers-a", LAYERS, "--reduce-a", "avgpool", "--reduce-b", "flatten"]
    assert main(args) == 0
    within = np.array(load(same_model)["cka"])
    # pooled against flattened: another representation, except where the map is 1x1 (layer4.1)
    assert np.all(np.diag(within)[:2] < 1 - 1e-3)
    assert abs(within[2, 2] - 1) < 1e-9
    capsys.readouterr()
    args = ["cka", str(files["a"]), str(flat_b), "--reduce-a", "flatten", "--out", str(tmp_path)]
    assert main(args) == 2
    assert "reduced with 'avgpool'" in capsys.readouterr().err


def test_two_specs_with_bit_identical_weights_are_called_one_network(tmp_path, capsys):
    """timm builds vit_tiny and deit_tiny alike: at one init seed they are one network."""
    argv = ["cka", "timm:vit_tiny_patch16_224", "timm:deit_tiny_patch16_224", "--layers-a"]
    argv += ["blocks.11", "--layers-b", "blocks.11", "--reduce", "cls", "--num-samples", "16"]
    argv += [*DATA, "--batch-size", "8", "--out", str(tmp_path / "one")]
    assert main(argv) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "vit_tiny_patch16_224 and deit_tiny_patch16_224 have bit-identical weights: "
        "they are one network (any difference is their preprocessing's)" in err
    )
    argv[argv.index("timm:deit_tiny_patch16_224")] = "timm:resnet18"
    argv[argv.index("blocks.11", 5)] = "layer4.1"
    argv[argv.index("cls")] = "avgpool"
    assert main([*argv[:-1], str(tmp_path / "two")]) == 0
    assert "bit-identical" not in capsys.readouterr().err
