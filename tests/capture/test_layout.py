"""Layouts and prefix tokens per capture point, found from the graph: every reduction
equals the same reduction done by hand on an independent forward hook's output."""

import pytest
import timm
import torch
import torchvision

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import discover
from repcompare.capture.layout import Layout
from repcompare.capture.reduce import pool, reduced_width
from repcompare.errors import InputError
from tests.support.hooks import hooked


def captured(model, size: int, names: list[str], how: str, mode: str = "auto"):
    """``(graph, captured values by name, hooked module outputs by name)`` for one batch."""
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    graph = discover(model.eval(), (3, size, size), mode)
    with capture_layers(model, graph, names, how) as capture:
        got = dict(zip(names, capture(images), strict=True))
    return graph, got, hooked(model, {n: model.get_submodule(n) for n in names}, images)


def tokens(prefix: int, cls: bool) -> Layout:
    return Layout("tokens", prefix, cls)


# model, input size, {module: layout}, per point family
VITS = {
    "timm:vit_tiny_patch16_224": (
        lambda: timm.create_model("vit_tiny_patch16_224", img_size=32),
        32,
        {"patch_embed": tokens(0, False), "blocks.0.attn": tokens(1, True)}
        | {"blocks.1": tokens(1, True), "norm": tokens(1, True)},
    ),
    "timm:deit_tiny_distilled_patch16_224": (
        lambda: timm.create_model("deit_tiny_distilled_patch16_224", img_size=32),
        32,
        {"patch_embed": tokens(0, False), "blocks.0.mlp": tokens(2, True)}
        | {"blocks.1": tokens(2, True), "norm": tokens(2, True)},
    ),
    "timm:vit_wee_patch16_reg1_gap_256": (
        lambda: timm.create_model("vit_wee_patch16_reg1_gap_256", img_size=32),
        32,
        {"patch_embed": tokens(0, False), "blocks.0.attn": tokens(1, False)}
        | {"blocks.1": tokens(1, False), "norm": tokens(1, False)},
    ),
    "torchvision:vit_b_16": (
        lambda: torchvision.models.vit_b_16(image_size=32),
        32,
        {"encoder.layers.encoder_layer_0.ln_1": tokens(1, True)}
        | {"encoder.layers.encoder_layer_0.mlp": tokens(1, True)}
        | {"encoder.layers.encoder_layer_1": tokens(1, True), "encoder.ln": tokens(1, True)},
    ),
}


@pytest.mark.parametrize("case", sorted(VITS))
def test_vit_token_reductions_use_each_points_own_prefix_tokens(case):
    build, size, expected = VITS[case]
    model = build()
    names = list(expected)
    graph, means, reference = captured(model, size, names, "mean")
    for name, layout in expected.items():
        assert graph.point(name).layout == layout, name
        want = reference[name][:, layout.prefix_tokens :].mean(1)
        assert torch.allclose(means[name], want, atol=1e-6), name
    with_class = [n for n, layout in expected.items() if layout.class_token]
    if with_class:
        _, firsts, reference = captured(model, size, with_class, "cls")
        for name in with_class:
            assert torch.equal(firsts[name], reference[name][:, 0]), name
    for name in [n for n in names if n not in with_class]:
        point = graph.point(name)
        with pytest.raises(InputError, match=f"layer '{name}' has no class token"):
            reduced_width(point.shape, "cls", point.layout, name)  # what capture calls


SWINS = {
    "timm:swin_tiny_patch4_window7_224": (
        lambda: timm.create_model("swin_tiny_patch4_window7_224", img_size=56),
        56,
        ["patch_embed", "layers.0.blocks.1", "layers.1.downsample", "layers.1.blocks.0"],
    ),
    "torchvision:swin_t": (
        lambda: torchvision.models.swin_t(),
        64,
        ["features.0", "features.1.0", "features.2", "features.3.1"],
    ),
}


@pytest.mark.parametrize("case", sorted(SWINS))
def test_swin_avgpool_averages_the_channels_last_maps_over_positions(case):
    build, size, names = SWINS[case]
    model = build()
    graph, pooled, reference = captured(model, size, names, "avgpool")
    _, flat, _ = captured(model, size, names, "flatten")
    for name in names:
        point = graph.point(name)
        assert point.layout == Layout("NHWC"), name
        want = reference[name].mean((1, 2))
        assert pooled[name].shape[1] == point.shape[2]
        assert torch.allclose(pooled[name], want, atol=1e-5), name
        # class-fit's pooling of a stored flattened layer
        got = pool(flat[name], point.shape, "flatten", point.layout, name)
        assert torch.allclose(got, want, atol=1e-5), name


def test_channels_first_maps_and_vectors_are_unchanged():
    model = torchvision.models.resnet18()
    names = ["layer1.0.bn2", "layer2.0", "avgpool", "fc"]
    graph, pooled, reference = captured(model, 32, names, "avgpool")
    assert [str(graph.point(n).layout) for n in names] == ["NCHW", "NCHW", "NCHW", "flat"]
    for name in names:
        value = reference[name]
        assert torch.equal(pooled[name], value.mean((2, 3)) if value.ndim == 4 else value)


def test_hook_mode_knows_conv_maps_and_refuses_to_guess_the_rest():
    model = timm.create_model("resnet18")
    graph, pooled, reference = captured(model, 32, ["layer1.0.conv1", "fc"], "avgpool", "hooks")
    assert torch.equal(pooled["layer1.0.conv1"], reference["layer1.0.conv1"].mean((2, 3)))
    assert torch.equal(pooled["fc"], reference["fc"])
    assert graph.point("layer1.0").layout == Layout()
    with pytest.raises(InputError, match=r"layer 'layer1\.0' .*use --reduce flatten"):
        captured(model, 32, ["layer1.0"], "avgpool", "hooks")
