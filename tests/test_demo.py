"""``repcompare demo`` end to end at a small size: trains, reuses checkpoints, writes results."""

import json

import torch
from safetensors import safe_open

from repcompare.cli import main
from repcompare.demo import train_demo_model


def test_demo_trains_both_models_and_runs_every_command(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--images", "64", "--epochs", "1"]) == 0
    with safe_open(str(out / "checkpoints" / "simclr.safetensors"), "pt") as handle:
        assert handle.metadata()["objective"] == "simclr"
        names = handle.keys()
    assert any(k.startswith("projector.") for k in names)
    cka = json.loads((out / "cka" / "cka.json").read_text())
    assert cka["side_a"]["label"] == "supervised" and cka["side_b"]["label"] == "simclr"
    assert (out / "cka" / "heatmap_blocks.png").exists()
    invariance = json.loads((out / "invariance" / "invariance.json").read_text())
    assert set(invariance["input_fingerprints"]) == {"crop", "color", "flip"}
    fit = json.loads((out / "class_fit" / "class_fit.json").read_text())
    assert {r["model"] for r in fit["records"]} == {"resnet18@supervised", "resnet18@simclr"}
    path = out / "checkpoints" / "simclr.safetensors"
    assert not train_demo_model("simclr", path, 64, 1, torch.device("cpu"))  # reused as it is
    assert train_demo_model("simclr", path, 64, 2, torch.device("cpu"))  # other epochs: retrained


def test_demo_refuses_too_few_images(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--images", "10"]) == 2
    assert "--images 64 or more" in capsys.readouterr().err
