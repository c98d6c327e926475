"""Release checkpoint layouts (DINO, MAE, BEiT pre-training, official DINOv2), model kwargs
and other input sizes: each loads into the intended encoder, checked by activations."""

import argparse
import os
from dataclasses import replace

import pytest
import timm
import torch
from timm.models.vision_transformer import checkpoint_filter_fn

from repcompare.capture.checkpoint import read_checkpoint
from repcompare.capture.models import load_model
from repcompare.capture.spec import parse_model_kwargs, parse_spec
from repcompare.cli import main
from repcompare.errors import InputError

ARGS = argparse.Namespace(arch="vit_tiny", patch_size=16, lr=5e-4, epochs=100)


def seeded(name: str, seed: int, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, **kwargs).eval()


def images(size: int) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def features(model: torch.nn.Module, size: int) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_head(model.forward_features(images(size)), pre_logits=True)


def load(path, name: str, image_size: int | None = None, **kwargs):
    spec = replace(parse_spec(f"timm:{name}@{path}"), kwargs=tuple(kwargs.items()))
    return load_model(spec, image_size=image_size)


def backbone(model: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in model.state_dict().items() if not k.startswith("head.")}


SMALL_VIT = {"depth": 2}


def test_dino_training_checkpoint_with_args_loads_the_teacher(tmp_path):
    teacher, student = (seeded("vit_tiny_patch16_224", s, **SMALL_VIT) for s in (1, 2))
    path = tmp_path / "checkpoint.pth"
    torch.save(
        {
            "student": backbone(student, "module.backbone.")
            | {"module.head.last_layer.weight_g": torch.ones(9, 1)},
            "teacher": backbone(teacher, "backbone.") | {"head.mlp.0.weight": torch.randn(16, 192)},
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
            "epoch": 100,
            "args": ARGS,
            "dino_loss": {"center": torch.zeros(1, 9)},
        },
        path,
    )
    assert read_checkpoint(path)["args"] == ARGS
    loaded = load(path, "vit_tiny_patch16_224", **SMALL_VIT)
    torch.testing.assert_close(features(loaded.module, 224), features(teacher, 224), rtol=0, atol=0)
    assert "encoder: teacher (the default" in loaded.load_report.lines()[1]


def mae_encoder(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return backbone(model) | {
        "mask_token": torch.zeros(1, 1, 128),
        "decoder_embed.weight": torch.randn(128, 192),
        "decoder_pos_embed": torch.zeros(1, 197, 128),
        "decoder_blocks.0.norm1.weight": torch.ones(128),
        "decoder_norm.weight": torch.ones(128),
        "decoder_pred.weight": torch.randn(768, 128),
    }


def test_mae_pretraining_checkpoint_loads_the_encoder_and_ignores_the_decoder(tmp_path):
    encoder = seeded("vit_tiny_patch16_224", 3, **SMALL_VIT)
    path = tmp_path / "mae_pretrain.pth"
    torch.save({"model": mae_encoder(encoder), "epoch": 799, "args": ARGS}, path)
    loaded = load(path, "vit_tiny_patch16_224", **SMALL_VIT)
    torch.testing.assert_close(features(loaded.module, 224), features(encoder, 224), rtol=0, atol=0)
    assert "decoder_pred.weight" in loaded.load_report.unexpected


def test_mae_finetuned_checkpoint_with_fc_norm_needs_and_takes_global_pool_avg(tmp_path):
    finetuned = seeded("vit_tiny_patch16_224", 4, global_pool="avg", **SMALL_VIT)
    assert (
        "fc_norm.weight" in finetuned.state_dict() and "norm.weight" not in finetuned.state_dict()
    )
    path = tmp_path / "mae_finetuned.pth"
    torch.save({"model": finetuned.state_dict(), "args": ARGS}, path)
    with pytest.raises(InputError, match=r"norm\.weight"):
        load(path, "vit_tiny_patch16_224", **SMALL_VIT)
    loaded = load(path, "vit_tiny_patch16_224", global_pool="avg", **SMALL_VIT)
    torch.testing.assert_close(
        features(loaded.module, 224), features(finetuned, 224), rtol=0, atol=0
    )
    assert str(loaded.spec).endswith("[global_pool='avg', depth=2]")


BEIT = {
    "depth": 2,
    "embed_dim": 64,
    "num_heads": 2,
    "use_shared_rel_pos_bias": True,
    "use_rel_pos_bias": False,
}


def test_beit_pretraining_layout_with_a_shared_relative_position_bias(tmp_path):
    reference = seeded("beit_base_patch16_224", 5, **BEIT)
    index = reference.rel_pos_bias.relative_position_index
    state = backbone(reference) | {
        "mask_token": torch.zeros(1, 1, 64),
        "lm_head.weight": torch.randn(8192, 64),
        "rel_pos_bias.relative_position_index": index,
    }
    path = tmp_path / "beit_pretrain.pth"
    torch.save({"model": state}, path)
    loaded = load(path, "beit_base_patch16_224", **BEIT)
    torch.testing.assert_close(
        features(loaded.module, 224), features(reference, 224), rtol=0, atol=0
    )
    lines = loaded.load_report.lines()
    assert any(
        line.startswith("applied timm's timm.models.beit.checkpoint_filter_fn") for line in lines
    )


DINOV2 = {"depth": 2, "embed_dim": 48, "num_heads": 2, "img_size": 56}


def test_official_dinov2_register_layout(tmp_path):
    reference = seeded("vit_small_patch14_reg4_dinov2", 6, **DINOV2)
    state = backbone(reference)
    position_0 = torch.randn(1, 1, 48)
    official = {k: v for k, v in state.items() if k not in ("reg_token", "cls_token", "pos_embed")}
    official |= {
        "register_tokens": state["reg_token"],
        "cls_token": state["cls_token"] - position_0[:, 0],
        "pos_embed": torch.cat([position_0, state["pos_embed"]], dim=1),
        "mask_token": torch.zeros(1, 48),
    }
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(official, path)
    with torch.no_grad():  # the class token timm's conversion gives back, rounding and all
        reference.cls_token.copy_(official["cls_token"] + position_0[:, 0])
    loaded = load(path, "vit_small_patch14_reg4_dinov2", **DINOV2)
    torch.testing.assert_close(features(loaded.module, 56), features(reference, 56), rtol=0, atol=0)
    assert "vision_transformer.checkpoint_filter_fn: replaced" in "\n".join(
        loaded.load_report.lines()
    )


def test_a_vit_checkpoint_at_another_input_size_is_resampled_by_timm(tmp_path):
    source = seeded("vit_tiny_patch16_224", 7, **SMALL_VIT)
    path = tmp_path / "vit.pth"
    torch.save(source.state_dict(), path)
    loaded = load(path, "vit_tiny_patch16_224", image_size=64, **SMALL_VIT)
    reference = timm.create_model("vit_tiny_patch16_224", img_size=64, **SMALL_VIT).eval()
    reference.load_state_dict(checkpoint_filter_fn(source.state_dict(), reference))
    torch.testing.assert_close(features(loaded.module, 64), features(reference, 64), rtol=0, atol=0)
    assert "built for 64x64 inputs (img_size=64)" in loaded.notes
    assert "resized pos_embed (1, 197, 192) -> (1, 17, 192)" in "\n".join(
        loaded.load_report.lines()
    )


def test_layers_takes_any_input_size_for_a_vit_and_model_kwargs(capsys):
    assert main(["layers", "timm:vit_tiny_patch16_224", "--image-size", "64", "--json"]) == 0
    assert '"input_size": [\n    3,\n    64,\n    64\n  ]' in capsys.readouterr().out
    assert main(["layers", "timm:resnet18", "--image-size", "64", "--layers", "layer1.0"]) == 0
    code = main(
        ["layers", "timm:test_vit", "--model-kwargs", "global_pool=avg", "--layers", "norm"]
    )
    assert code == 0
    for model in ("timm:test_vit", "timm:resnet18"):  # with and without img_size
        bad = ["layers", model, "--model-kwargs", "no_such_option=1", "--image-size", "64"]
        assert main(bad) == 2
        assert "does not take these --model-kwargs" in capsys.readouterr().err


def test_model_kwargs_are_python_literals_else_strings():
    assert parse_model_kwargs("global_pool=avg, drop_path_rate=0.1,img_size=(64, 96),x=True") == (
        ("global_pool", "avg"),
        ("drop_path_rate", 0.1),
        ("img_size", (64, 96)),
        ("x", True),
    )
    with pytest.raises(InputError, match="key=value pairs"):
        parse_model_kwargs("avg")


def test_empty_and_code_running_files_say_why(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="is empty"):
        read_checkpoint(empty)

    class RunsAShell:
        def __reduce__(self):
            return (os.system, ("true",))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": RunsAShell()}, evil)
    with pytest.raises(InputError, match=r"it pickles posix\.system"):
        read_checkpoint(evil)
