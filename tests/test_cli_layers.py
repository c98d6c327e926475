import json

import torch

from repcompare.cli import main


def test_layers_json_lists_the_paper_preset(capsys):
    assert (
        main(["layers", "timm:resnet18", "--layers", "paper", "--json", "--image-size", "64"]) == 0
    )
    document = json.loads(capsys.readouterr().out)
    names = [row["name"] for row in document["layers"]]
    assert names[:4] == ["layer1.0.bn2", "layer1.0", "layer1.1.bn2", "layer1.1"]
    assert document["tracer"] == "fx"
    first = document["layers"][0]
    assert first["shape"] == [64, 16, 16] and first["width"] == 64 * 16 * 16
    assert document["layers"][1]["presets"] == ["block"]


def test_layers_table_shows_widths_after_reduction_and_notes(capsys):
    assert main(["layers", "resnet18", "--layers", "layer4.1", "--reduce", "avgpool"]) == 0
    captured = capsys.readouterr()
    assert "layer4.1" in captured.out and "512" in captured.out
    assert "resolved to timm:resnet18" in captured.err
    assert "random weights" in captured.err


def test_layers_prints_the_checkpoint_load_report(tmp_path, capsys):
    torch.manual_seed(0)
    from repcompare.capture.models import load_model
    from repcompare.capture.spec import parse_spec

    state = load_model(parse_spec("torchvision:resnet18")).module.state_dict()
    ckpt = tmp_path / "ssl.pth"
    torch.save(
        {"state_dict": {f"backbone.{k}": v for k, v in state.items() if "fc" not in k}}, ckpt
    )
    assert main(["layers", f"torchvision:resnet18@{ckpt}", "--layers", "blocks"]) == 0
    err = capsys.readouterr().err
    assert "loaded 120 tensors" in err and "stripped key prefixes: backbone." in err
    assert "head left at initialisation (2): fc.weight, fc.bias" in err


def test_bad_layer_and_bad_model_exit_2_with_one_sentence(capsys):
    assert main(["layers", "timm:resnet18", "--layers", "layer9.9"]) == 2
    assert "no layer 'layer9.9'" in capsys.readouterr().err
    assert main(["layers", "timm:resnet1888"]) == 2
    err = capsys.readouterr().err
    assert "did you mean" in err and "Traceback" not in err
