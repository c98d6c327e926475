"""``repcompare demo`` end to end at a small size: trains, reuses checkpoints, writes results."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from repcompare.cli import main
from repcompare.demo import demo_recipes, train_demo_model


def test_demo_trains_both_models_and_runs_every_command(tmp_path, capsys):
    out = tmp_path / "demo"
    small = ["--images", "64", "--train-images", "64", "--epochs", "1"]
    assert main(["demo", "--out", str(out), *small]) == 0
    with safe_open(str(out / "checkpoints" / "simclr.safetensors"), "pt") as handle:
        metadata = handle.metadata()
        names = handle.keys()
    assert metadata["objective"] == "simclr"
    training = json.loads(metadata["training"])
    assert training["chance_loss"] == pytest.approx(np.log(2 * 64 - 1))
    assert training["final_loss"] == training["losses"][-1]
    assert any(k.startswith("projector.") for k in names)
    assert "trained with simclr for 1 epochs on 64 images" in (out / "report.html").read_text()
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
    cpu = torch.device("cpu")
    assert not train_demo_model(demo_recipes(64, 1)["simclr"], path, cpu)  # reused as it is
    assert train_demo_model(demo_recipes(64, 2)["simclr"], path, cpu)  # other epochs: retrained


def test_demo_refuses_too_few_images(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--images", "10"]) == 2
    assert "--images and --train-images 64 or more" in capsys.readouterr().err


def _interval(document: dict, model: str, layer: str, key: str, **match) -> tuple[float, ...]:
    """(low, value, high) of ``key`` at ``model``'s ``layer`` in a per-layer JSON."""
    record = next(
        r
        for r in document["records"]
        if r["model"] == model and r["layer"] == layer and all(r[k] == v for k, v in match.items())
    )
    low, high = (
        ("ci_low", "ci_high") if key == "invariance" else (f"{key}_ci_low", f"{key}_ci_high")
    )
    return record[low], record[key], record[high]


@pytest.mark.slow
def test_the_full_demo_finds_the_papers_three_findings_against_the_untrained_network(
    tmp_path, capsys
):
    """Margins from our run (one run on 2 CPU cores, 165 s; the README quotes it): same-depth
    CKA 0.930 [0.926, 0.934] at layer1.0 and 0.616 [0.584, 0.649] at layer4.1; invariance
    to SimCLR views at layer4.1 0.558 [0.526, 0.586] (SimCLR), 0.175 [0.149, 0.208]
    (supervised), 0.142 [0.115, 0.176] (untrained); class CKA at layer4.1 0.765 (supervised),
    0.511 (SimCLR), 0.306 (untrained), at layer2.0 0.587 [0.567, 0.606] (SimCLR) against
    0.519 [0.500, 0.537] (untrained); kNN at layer4.1 0.820 (SimCLR) against 0.495; the
    SimCLR loss 4.49 against 6.24 for chance."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    summary = [s["text"] for s in json.loads((out / "study.json").read_text())["summary"]]
    a, b, untrained = "resnet18@supervised", "resnet18@simclr", "untrained resnet18"
    with safe_open(str(out / "checkpoints" / "simclr.safetensors"), "pt") as handle:
        training = json.loads(handle.metadata()["training"])
    assert training["final_loss"] < 0.8 * training["chance_loss"]
    # F1: they agree early and part with depth, intervals apart; the residual branches more
    cka = json.loads((out / "cka_a_vs_b" / "cka.json").read_text())
    layers = cka["side_a"]["layers"]
    first, last = layers.index("layer1.0"), layers.index("layer4.1")
    assert cka["cka"][first][first] > 0.85 and cka["cka"][last][last] < 0.75
    assert cka["ci_high"][last][last] < cka["ci_low"][first][first]
    same = [cka["cka"][i][i] for i in range(len(layers))]
    branches = [v for n, v in zip(layers, same, strict=True) if "bn2" in n]
    blocks = [v for n, v in zip(layers, same, strict=True) if "bn2" not in n]
    assert np.mean(branches) < np.mean(blocks) - 0.1
    assert any(t.startswith(f"{a} and {b} part with depth") for t in summary)
    # F2: SimCLR is the more invariant to its own views at the last block, and above the
    # untrained network, while the supervised one is not
    invariance = json.loads((out / "invariance" / "invariance.json").read_text())
    views = {
        m: _interval(invariance, m, "layer4.1", "invariance", augmentation="simclr")
        for m in (a, b, untrained)
    }
    assert views[b][0] > views[a][2] and views[b][1] > views[a][1] + 0.2
    assert views[b][0] > views[untrained][2]
    assert f"At the last block output, {b} is more invariant to simclr than {a}" in " ".join(
        summary
    )
    # F3: the supervised network fits the classes more; SimCLR's blocks fit them better than
    # the untrained network (layer2.0 by class CKA, intervals apart; the last by kNN)
    fit = json.loads((out / "class_fit" / "class_fit.json").read_text())
    last_fit = {m: _interval(fit, m, "layer4.1", "class_cka") for m in (a, b, untrained)}
    assert last_fit[a][0] > last_fit[b][2] and last_fit[a][1] > last_fit[b][1] + 0.15
    middle = {m: _interval(fit, m, "layer2.0", "class_cka") for m in (b, untrained)}
    assert middle[b][0] > middle[untrained][2]
    knn = {r["model"]: r["knn"] for r in fit["records"] if r["layer"] == "layer4.1"}
    assert knn[b] > knn[untrained] + 0.2 and knn[a] > 0.95
    assert any(f"{b} fits the classes more than its untrained network" in t for t in summary)
