"""Captured activations equal hand-written hooks and manual forwards, value for value."""

import pytest
import timm
import torch
import torchvision

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import discover
from tests.support.hooks import check_capture, hooked, module_outputs


def test_torchvision_resnet_blocks_and_branches():
    model = torchvision.models.resnet50().eval()
    names = ["layer1.0.bn3", "layer1.0", "layer3.5.bn3", "layer3.5"]
    check_capture(model, 64, names, module_outputs(names))


def test_timm_resnet_in_hook_mode_equals_fx_mode():
    model = timm.create_model("resnet18").eval()
    names = ["layer2.1.bn2", "layer2.1", "layer4.0"]
    check_capture(model, 64, names, module_outputs(names), mode="fx")
    check_capture(model, 64, names, module_outputs(names), mode="hooks")


def test_timm_vit_attention_mlp_and_block():
    model = timm.create_model("test_vit").eval()
    names = ["blocks.1.attn", "blocks.1.mlp", "blocks.1", "blocks.3"]
    check_capture(model, 160, names, module_outputs(names))


def test_timm_convnext_branch_is_the_input_of_drop_path():
    model = timm.create_model("test_convnext").eval()
    block = "stages.1.blocks.0"

    def reference(m, x):
        outputs = hooked(m, {block: m.get_submodule(block)}, x)
        branch = hooked(m, {f"{block}.mul": m.get_submodule(f"{block}.drop_path")}, x, pre=True)
        return outputs | branch

    check_capture(model, 64, [f"{block}.mul", block], reference)


def test_torchvision_vit_attention_output_tuple_element():
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=16, mlp_dim=32
    ).eval()
    name = "encoder.layers.encoder_layer_2.self_attention[0]"
    attention = model.get_submodule("encoder.layers.encoder_layer_2.self_attention")
    check_capture(model, 32, [name], lambda m, x: hooked(m, {name: attention}, x))


@pytest.mark.parametrize("mode", ["fx", "hooks"])
def test_in_place_ops_do_not_overwrite_captured_values(mode):
    """torchvision's Bottleneck does ``out += identity`` then an in-place ReLU."""
    model = torchvision.models.resnet50().eval()
    names = (
        ["layer1.0.bn3", "layer1.0.add", "layer1.0"]
        if mode == "fx"
        else ["layer1.0.bn3", "layer1.0.downsample", "layer1.0"]
    )
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    graph = discover(model, (3, 64, 64), mode)
    with capture_layers(model, graph, names) as capture:
        got = capture(images)
    block = model.layer1[0]
    with torch.no_grad():
        stem = model.maxpool(torch.relu(model.bn1(model.conv1(images))))
        inner = torch.relu(block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(stem))))))
        bn3 = block.bn3(block.conv3(inner))
        shortcut = block.downsample(stem)
    expected = [bn3, bn3 + shortcut if mode == "fx" else shortcut, torch.relu(bn3 + shortcut)]
    for name, value, want in zip(names, got, expected, strict=True):
        assert torch.allclose(value, want.flatten(1), atol=1e-5), name
    assert (got[0] < 0).any() and (got[1] < 0).any()


class ReusesActivation(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
        self.act = torch.nn.Tanh()

    def forward(self, x):
        return self.act(self.fc2(self.act(self.fc1(x.flatten(1)))))


@pytest.mark.parametrize("mode", ["fx", "hooks"])
def test_module_called_twice_gives_two_points_with_different_values(mode):
    model = ReusesActivation().eval()
    graph = discover(model, (1, 2, 2), mode)
    assert {"act", "act_1"} <= set(graph.names())
    images = torch.randn(5, 1, 2, 2)
    with capture_layers(model, graph, ["act", "act_1"]) as capture:
        first, second = capture(images)
    assert torch.equal(first, torch.tanh(model.fc1(images.flatten(1))))
    assert torch.equal(second, model(images))
    assert not torch.equal(first, second)


def test_requested_order_is_kept_and_hooks_and_mode_are_restored():
    model = timm.create_model("resnet18")
    model.train()
    graph = discover(model, (3, 32, 32), "hooks")
    model.train()
    images = torch.randn(2, 3, 32, 32)
    with capture_layers(model, graph, ["layer3.0", "layer1.0"]) as capture:
        late, early = capture(images)
        assert not model.training
    assert late.shape[1] == 256 * 2 * 2 and early.shape[1] == 64 * 8 * 8
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_torchvision_vit_sub_layer_names_are_the_modules():
    """torchvision's tracer named module ``ln_1`` ``ln`` and ``ln_2`` ``ln_1``."""
    model = torchvision.models.vit_b_16(image_size=32).eval()
    layer = "encoder.layers.encoder_layer_0"
    graph = discover(model, (3, 32, 32))
    assert graph.mode == "fx"
    names = [f"{layer}.ln_1", f"{layer}.ln_2", f"{layer}.mlp", "encoder.ln"]
    assert graph.point(f"{layer}.ln_1").name == f"{layer}.ln_1"
    assert graph.point(f"{layer}.ln_2").name == f"{layer}.ln_2"
    assert f"{layer}.ln" not in graph
    check_capture(model, 32, names, module_outputs(names))
