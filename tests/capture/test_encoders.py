"""Checkpoints holding several encoders: the intended one is loaded, said, and choosable."""

from dataclasses import replace

import pytest
import timm
import torch

from repcompare.capture.models import load_model
from repcompare.capture.spec import parse_spec
from repcompare.cli import main
from repcompare.errors import InputError

ARCH = "test_vit"


def seeded_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(ARCH).state_dict()


BASE, MOMENTUM = seeded_state(1), seeded_state(2)
IMAGES = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))


def features(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """The pre-logits features of ``ARCH`` with ``state``: what an encoder's weights compute."""
    model = timm.create_model(ARCH)
    model.load_state_dict(state)
    with torch.no_grad():
        return model.eval().forward_head(model.forward_features(IMAGES), pre_logits=True)


def loaded_features(path, **options) -> tuple[torch.Tensor, object]:
    loaded = load_model(replace(parse_spec(f"timm:{ARCH}@{path}"), **options))
    with torch.no_grad():
        module = loaded.module
        return module.forward_head(module.forward_features(IMAGES), pre_logits=True), loaded


def prefixed(state, prefix):
    return {prefix + k: v for k, v in state.items() if not k.startswith("head.")}


def moco_v3(momentum_first: bool) -> dict:
    """MoCo v3's layout: one DDP state dict holding both encoders (with projector heads)."""
    parts = [
        prefixed(BASE, "module.base_encoder."),
        prefixed(MOMENTUM, "module.momentum_encoder."),
    ]
    parts[0]["module.base_encoder.head.0.weight"] = torch.randn(256, 32)
    parts[1]["module.momentum_encoder.head.0.weight"] = torch.randn(256, 32)
    predictor = {"module.predictor.0.weight": torch.randn(64, 256)}
    state = {**parts[1], **parts[0]} if momentum_first else {**parts[0], **parts[1]}
    return {"epoch": 300, "arch": "vit_small", "state_dict": state | predictor}


def dino(student_first: bool) -> dict:
    """DINO's layout: teacher and student state dicts (student under DDP's module.)."""
    teacher = prefixed(BASE, "backbone.") | {"head.last_layer.weight_v": torch.randn(99, 32)}
    student = prefixed(MOMENTUM, "module.backbone.")
    pairs = [("teacher", teacher), ("student", student)]
    return {"epoch": 100, **dict(pairs[::-1] if student_first else pairs)}


@pytest.mark.parametrize("other_first", [False, True])
def test_moco_v3_takes_the_base_encoder_by_default_and_momentum_when_asked(tmp_path, other_first):
    path = tmp_path / "moco_v3.pth"
    torch.save(moco_v3(other_first), path)
    got, loaded = loaded_features(path)
    torch.testing.assert_close(got, features(BASE), rtol=0, atol=0)
    lines = loaded.load_report.lines()
    assert (
        "encoder: base (the default; choose with --encoder); "
        "the checkpoint also holds momentum, not loaded"
    ) in lines
    assert str(loaded.spec).endswith("[encoder=base]")
    got, loaded = loaded_features(path, encoder="momentum")
    torch.testing.assert_close(got, features(MOMENTUM), rtol=0, atol=0)
    assert "encoder: momentum (as asked)" in loaded.load_report.lines()[1]
    got, _ = loaded_features(path, key="state_dict.module.momentum_encoder")
    torch.testing.assert_close(got, features(MOMENTUM), rtol=0, atol=0)


@pytest.mark.parametrize("student_first", [False, True])
def test_dino_takes_the_teacher_by_default_and_the_student_when_asked(tmp_path, student_first):
    path = tmp_path / "dino.pth"
    torch.save(dino(student_first), path)
    got, loaded = loaded_features(path)
    torch.testing.assert_close(got, features(BASE), rtol=0, atol=0)
    assert loaded.load_report.container == ("teacher",)
    assert "encoder: teacher (the default" in loaded.load_report.lines()[1]
    for options in ({"encoder": "student"}, {"key": "student"}):
        got, loaded = loaded_features(path, **options)
        torch.testing.assert_close(got, features(MOMENTUM), rtol=0, atol=0)
        assert loaded.load_report.container == ("student",)


def test_wrong_encoder_choices_are_one_sentence(tmp_path):
    path = tmp_path / "dino.pth"
    torch.save(dino(False), path)
    with pytest.raises(
        InputError, match="holds no momentum encoder \\(it holds teacher, student\\)"
    ):
        loaded_features(path, encoder="momentum")
    with pytest.raises(InputError, match="unknown --encoder 'ema'"):
        loaded_features(path, encoder="ema")
    with pytest.raises(InputError, match=r"no tensors under --key 'teacher\.neck'"):
        loaded_features(path, key="teacher.neck")
    single = tmp_path / "plain.pth"
    torch.save(BASE, single)
    with pytest.raises(InputError, match="holds a single model"):
        loaded_features(single, encoder="teacher")
    with pytest.raises(InputError, match="names none"):
        load_model(replace(parse_spec(f"timm:{ARCH}"), encoder="base"))


def test_the_cli_takes_encoder_and_key_and_prints_the_choice(tmp_path, capsys):
    path = tmp_path / "moco_v3.pth"
    torch.save(moco_v3(True), path)
    common = ["layers", f"timm:{ARCH}@{path}", "--layers", "blocks.0"]
    assert main(common) == 0
    assert "encoder: base (the default; choose with --encoder)" in capsys.readouterr().err
    assert main([*common, "--encoder", "momentum"]) == 0
    assert "encoder: momentum (as asked)" in capsys.readouterr().err
    assert main([*common, "--key", "state_dict.module.momentum_encoder"]) == 0
    assert "encoder: --key state_dict.module.momentum_encoder" in capsys.readouterr().err
    assert main([*common, "--encoder", "teacher"]) == 2
    assert "holds no teacher encoder (it holds base, momentum)" in capsys.readouterr().err
