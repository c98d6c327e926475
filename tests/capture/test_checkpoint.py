"""Every checkpoint layout users bring loads back to identical weights."""

from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from repcompare.capture.checkpoint import (
    CheckpointMismatchError,
    load_checkpoint_into,
    read_checkpoint,
)
from repcompare.errors import InputError


def seeded_resnet18(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=1000)
    for buffer_name, buffer in model.named_buffers():
        if buffer_name.endswith(("running_mean", "running_var")):
            buffer.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    return seeded_resnet18(1).state_dict()


def backbone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def assert_backbone_equal(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    for key, value in backbone(expected).items():
        assert torch.equal(got[key], value.to(got[key].dtype)), key


def with_prefix(state, prefix):
    return {prefix + k: v for k, v in state.items()}


LAYOUTS = {
    "plain.pth": lambda s: s,
    "wrapped_state_dict.pth": lambda s: {"state_dict": s, "epoch": 3},
    "wrapped_model.pt": lambda s: {"model": s, "optimizer": {"lr": 0.1}},
    "wrapped_module.bin": lambda s: {"module": s},
    "wrapped_net.pth": lambda s: {"net": s},
    "dino.pth": lambda s: {"teacher": s, "student": {k: v * 0 for k, v in s.items()}},
    "wrapped_backbone.pth": lambda s: {"backbone": s},
    "ddp.pth": lambda s: with_prefix(s, "module."),
    "compiled.pth": lambda s: with_prefix(s, "_orig_mod."),
    "encoder.pth": lambda s: with_prefix(s, "encoder."),
    "nested_prefixes.pth": lambda s: {"model": with_prefix(s, "module.backbone.")},
    "lightning.ckpt": lambda s: {
        "epoch": 9,
        "global_step": 1000,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": with_prefix(s, "model."),
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
        "hyper_parameters": {"lr": 0.1, "arch": "resnet18"},
    },
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_loads_back_to_identical_weights(tmp_path, source, layout):
    path = tmp_path / layout
    torch.save(LAYOUTS[layout](source), path)
    target = seeded_resnet18(2)
    report = load_checkpoint_into(target, path)
    assert_backbone_equal(target, source)
    assert report.missing == () and report.wrong_shape == ()
    assert report.loaded == len(source)


def test_safetensors_and_reported_prefixes(tmp_path, source):
    path = tmp_path / "weights.safetensors"
    save_file(with_prefix(source, "module.model."), str(path))
    target = seeded_resnet18(2)
    report = load_checkpoint_into(target, path)
    assert_backbone_equal(target, source)
    assert report.stripped == ("module.model.",)


def test_ssl_checkpoint_drops_projector_and_keeps_classifier_at_init(tmp_path, source):
    ssl = {f"backbone.{k}": v for k, v in backbone(source).items()}
    ssl["projector.0.weight"] = torch.randn(2048, 512)
    ssl["projector.2.weight"] = torch.randn(128, 2048)
    path = tmp_path / "simclr.pth"
    torch.save({"state_dict": ssl}, path)
    target = seeded_resnet18(2)
    fc_before = target.fc.weight.clone()
    report = load_checkpoint_into(target, path)
    assert_backbone_equal(target, source)
    assert report.dropped_head == ("projector.0.weight", "projector.2.weight")
    assert report.head_left_at_init == ("fc.weight", "fc.bias")
    assert torch.equal(target.fc.weight, fc_before)
    assert any("dropped head tensors (2)" in line for line in report.lines())


def test_classifier_for_another_number_of_classes_is_dropped(tmp_path, source):
    state = dict(source)
    state["fc.weight"], state["fc.bias"] = torch.randn(10, 512), torch.randn(10)
    path = tmp_path / "cifar10_head.pth"
    torch.save(state, path)
    target = seeded_resnet18(2)
    report = load_checkpoint_into(target, path)
    assert_backbone_equal(target, source)
    assert report.dropped_head == ("fc.weight", "fc.bias")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_are_cast_to_the_model_dtype(tmp_path, source, dtype):
    half = {k: v.to(dtype) if v.is_floating_point() else v for k, v in source.items()}
    path = tmp_path / "half.safetensors"
    save_file(half, str(path))
    target = seeded_resnet18(2)
    report = load_checkpoint_into(target, path)
    assert_backbone_equal(target, half)
    assert target.conv1.weight.dtype == torch.float32
    assert report.cast == {str(dtype).removeprefix("torch."): len(half) - 20}


def test_mismatched_architecture_fails_with_the_report(tmp_path, source):
    path = tmp_path / "r18.pth"
    torch.save(source, path)
    torch.manual_seed(0)
    with pytest.raises(CheckpointMismatchError) as caught:
        load_checkpoint_into(torchvision.models.resnet50(), path)
    report = caught.value.report
    assert "layer1.0.conv3.weight" in report.missing
    assert any(key.startswith("layer1.0.conv1.weight") for key in report.wrong_shape)
    assert "does not fit this architecture" in str(caught.value)


def test_missing_backbone_weights_need_allow_missing(tmp_path, source):
    partial = {k: v for k, v in source.items() if not k.startswith("layer4.")}
    path = tmp_path / "partial.pth"
    torch.save(partial, path)
    with pytest.raises(CheckpointMismatchError, match="--allow-missing"):
        load_checkpoint_into(seeded_resnet18(2), path)
    target = seeded_resnet18(2)
    report = load_checkpoint_into(target, path, allow_missing=True)
    assert "layer4.0.conv1.weight" in report.missing
    assert torch.equal(target.layer1[0].conv1.weight, source["layer1.0.conv1.weight"])


def test_weights_of_a_deeper_variant_are_refused_not_truncated(tmp_path):
    torch.manual_seed(3)
    deeper = torchvision.models.resnet34()
    path = tmp_path / "r34.pth"
    torch.save(deeper.state_dict(), path)  # every resnet18 tensor is in it, same shape
    with pytest.raises(CheckpointMismatchError, match="layers this model lacks") as caught:
        load_checkpoint_into(seeded_resnet18(2), path)
    report = caught.value.report
    assert "layer1.2.conv1.weight" in report.extra_layers
    assert not report.missing and not report.wrong_shape
    assert "--allow-missing" in str(caught.value)
    target = seeded_resnet18(2)
    report = load_checkpoint_into(target, path, allow_missing=True)
    assert "layer3.5.bn2.running_var" in report.unexpected
    assert torch.equal(target.layer4[1].conv2.weight, deeper.layer4[1].conv2.weight)


def test_a_deeper_vit_is_refused(tmp_path):
    import timm

    path = tmp_path / "vit4.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", depth=4).state_dict(), path)
    with pytest.raises(CheckpointMismatchError) as caught:
        load_checkpoint_into(timm.create_model("vit_tiny_patch16_224", depth=2), path)
    assert {k.split(".")[1] for k in caught.value.report.extra_layers} == {"2", "3"}


def test_tensors_outside_the_model_or_extra_on_its_modules_are_ignored(tmp_path, source):
    extra = {
        "mask_token": torch.zeros(1, 1, 8),  # on the root module
        "decoder_blocks.0.norm1.weight": torch.ones(8),  # a module tree the model has not
        "layer1.0.bn1.extra_buffer": torch.ones(64),  # an extra tensor of a module it has
    }
    path = tmp_path / "more.pth"
    torch.save(source | extra, path)
    target = seeded_resnet18(2)
    report = load_checkpoint_into(target, path)
    assert set(report.unexpected) == set(extra) and not report.extra_layers
    assert_backbone_equal(target, source)


class CreatesAFile:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_that_runs_code_is_refused_and_never_executed(tmp_path, source):
    path, marker = tmp_path / "evil.pth", tmp_path / "pwned"
    torch.save({"state_dict": source, "payload": CreatesAFile(marker)}, path)
    with pytest.raises(InputError, match=r"needs arbitrary code to load \(it pickles "):
        read_checkpoint(path)
    assert not marker.exists()
    with open(path, "rb") as handle:  # the payload is real: a plain unpickler runs it
        torch.load(handle, weights_only=False)
    assert marker.exists()


def test_garbage_file_is_an_input_error(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)
    st = tmp_path / "broken.safetensors"
    st.write_bytes(b"\x00" * 12)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        read_checkpoint(st)


def test_no_state_dict_inside_is_an_input_error(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 1, "config": {"lr": 0.1}}, path)
    with pytest.raises(InputError, match="holds no state dict"):
        load_checkpoint_into(seeded_resnet18(0), path)
