"""``repcompare demo`` end to end at a small size: trains, reuses checkpoints, writes results."""

import json

import numpy as np
import pytest
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
    cka = json.loads((out / "cka_a_vs_b" / "cka.json").read_text())
    assert cka["side_a"]["label"] == "resnet18@supervised"
    assert cka["side_b"]["label"] == "resnet18@simclr"
    assert (out / "cka_a_vs_b" / "heatmap_blocks.png").exists()
    assert (out / "cka_a_vs_b" / "heatmap_residual.png").exists()
    invariance = json.loads((out / "invariance" / "invariance.json").read_text())
    assert list(invariance["input_fingerprints"]) == ["simclr", "crop", "color", "flip"]
    fit = json.loads((out / "class_fit" / "class_fit.json").read_text())
    models = {"resnet18@supervised", "resnet18@simclr", "untrained resnet18"}
    assert {r["model"] for r in fit["records"]} == models
    assert (
        "<h1>Study: resnet18@supervised vs resnet18@simclr</h1>"
        in (out / "report.html").read_text()
    )
    assert str(out / "report.html") in capsys.readouterr().err
    path = out / "checkpoints" / "simclr.safetensors"
    assert not train_demo_model("simclr", path, 64, 1, torch.device("cpu"))  # reused as it is
    assert train_demo_model("simclr", path, 64, 2, torch.device("cpu"))  # other epochs: retrained


def test_demo_refuses_too_few_images(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--images", "10"]) == 2
    assert "--images 64 or more" in capsys.readouterr().err


def _last_block(document: dict, model: str, key: str, **match) -> list[float]:
    """``key`` of ``model``'s block outputs in depth order (records of a per-layer JSON)."""
    return [
        r[key]
        for r in document["records"]
        if r["model"] == model
        and "bn2" not in r["layer"]
        and all(r[k] == v for k, v in match.items())
    ]


@pytest.mark.slow
def test_the_full_demo_finds_the_papers_three_findings(tmp_path, capsys):
    """Margins from our run (1000 images, 8 epochs; docs in the README): same-depth CKA 0.90
    at layer1.0 and 0.45 at layer4.1, residual branches 0.55 against blocks 0.68 on average;
    crop invariance at layer4.1 0.42 (SimCLR) against 0.24; class CKA at layer4.1 0.72
    against 0.21, SimCLR's crowding ratio 0.55 -> 1.59."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    cka = json.loads((out / "cka_a_vs_b" / "cka.json").read_text())
    layers = cka["side_a"]["layers"]
    same = {n: cka["cka"][i][i] for i, n in enumerate(layers)}
    blocks = [same[n] for n in layers if "bn2" not in n]
    branches = [same[n] for n in layers if "bn2" in n]
    # 1. they agree early and part with depth, the residual branches more
    assert same["layer1.0"] > 0.8 and same["layer4.1"] < 0.6
    assert (
        cka["ci_high"][layers.index("layer4.1")][layers.index("layer4.1")]
        < cka["ci_low"][layers.index("layer1.0")][layers.index("layer1.0")]
    )
    assert np.mean(branches) < np.mean(blocks) - 0.05
    # 2. the SimCLR network is the more crop-invariant one at the end
    invariance = json.loads((out / "invariance" / "invariance.json").read_text())
    simclr = _last_block(invariance, "resnet18@simclr", "invariance", augmentation="crop")
    supervised = _last_block(invariance, "resnet18@supervised", "invariance", augmentation="crop")
    assert simclr[-1] > supervised[-1] + 0.08
    summary = json.loads((out / "study.json").read_text())["summary"]
    assert any("resnet18@simclr is more invariant to crop" in s["text"] for s in summary)
    # 3. the supervised network fits the classes more with depth; SimCLR's classes crowd
    fit = json.loads((out / "class_fit" / "class_fit.json").read_text())
    class_supervised = _last_block(fit, "resnet18@supervised", "class_cka")
    class_simclr = _last_block(fit, "resnet18@simclr", "class_cka")
    assert class_supervised[-1] > class_simclr[-1] + 0.3
    assert _last_block(fit, "resnet18@supervised", "probe")[-1] > 0.9
    ratio = _last_block(fit, "resnet18@simclr", "ratio")
    assert ratio[-1] > ratio[0] + 0.5
