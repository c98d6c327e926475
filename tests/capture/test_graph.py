"""Presets resolve to the residual structure of each architecture, in depth order."""

import pytest
import timm
import torch
import torchvision

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import discover
from repcompare.capture.select import select_layers
from tests.support.hooks import hooked


def resnet_names(depths: list[int], branch: str) -> tuple[list[str], list[str]]:
    blocks = [f"layer{s + 1}.{i}" for s, n in enumerate(depths) for i in range(n)]
    return blocks, [f"{b}.{branch}" for b in blocks]


def interleave(blocks: list[str], branches_per_block: list[list[str]]) -> list[str]:
    return [n for block, br in zip(blocks, branches_per_block, strict=True) for n in (*br, block)]


def vit_names(model) -> tuple[list[str], list[list[str]]]:
    blocks = [f"blocks.{i}" for i in range(len(model.blocks))]
    return blocks, [[f"{b}.attn", f"{b}.mlp"] for b in blocks]


def convnext_names(model) -> tuple[list[str], list[list[str]]]:
    blocks = [
        f"stages.{s}.blocks.{i}"
        for s, stage in enumerate(model.stages)
        for i in range(len(stage.blocks))
    ]
    return blocks, [[f"{b}.mul"] for b in blocks]


def stage_names(stages: str, branches: list[str], blocks: str = "blocks"):
    """``{stages}.s.{blocks}.i`` for every block of every stage, with ``branches``."""

    def names(model):
        found = [
            f"{stages}.{s}.{blocks}.{i}"
            for s, stage in enumerate(model.get_submodule(stages))
            for i in range(len(stage.get_submodule(blocks)))
        ]
        return found, [[f"{b}.{name}" for name in branches] for b in found]

    return names


def twins_names(model) -> tuple[list[str], list[list[str]]]:
    """Twins' blocks are ``blocks.s.i``; its position convolutions ``pos_block.s`` are not."""
    found = [f"blocks.{s}.{i}" for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    return found, [[f"{b}.attn", f"{b}.mlp"] for b in found]


def coat_names(model) -> tuple[list[str], list[list[str]]]:
    """CoaT's blocks are ``serial_blocksN.i``; its shared position encodings are not."""
    found = [f"serial_blocks{s}.{i}" for s in range(1, 5) for i in range(2)]
    return found, [[f"{b}.factoratt_crpe", f"{b}.mlp"] for b in found]


CASES = {
    "torchvision:resnet18": (
        lambda: torchvision.models.resnet18(),
        64,
        lambda m: resnet_names([2, 2, 2, 2], "bn2"),
    ),
    "torchvision:resnet50": (
        lambda: torchvision.models.resnet50(),
        64,
        lambda m: resnet_names([3, 4, 6, 3], "bn3"),
    ),
    "timm:resnet18": (
        lambda: timm.create_model("resnet18"),
        64,
        lambda m: resnet_names([2, 2, 2, 2], "bn2"),
    ),
    "timm:test_vit": (lambda: timm.create_model("test_vit"), 160, vit_names),
    "timm:test_convnext": (lambda: timm.create_model("test_convnext"), 64, convnext_names),
    # rotary position embeddings add inside attention: not blocks, not branches
    "timm:eva02_tiny_patch14_224": (
        lambda: timm.create_model("eva02_tiny_patch14_224", img_size=56),
        56,
        vit_names,
    ),
    # the global response norm adds inside the MLP
    "timm:convnextv2_atto": (
        lambda: timm.create_model("convnextv2_atto"),
        64,
        stage_names("stages", ["mlp"]),
    ),
    "timm:twins_svt_small": (
        lambda: timm.create_model("twins_svt_small", img_size=64),
        64,
        twins_names,
    ),
    "timm:coat_lite_tiny": (
        lambda: timm.create_model("coat_lite_tiny", img_size=64),
        64,
        coat_names,
    ),
    "timm:focalnet_tiny_srf": (
        lambda: timm.create_model("focalnet_tiny_srf"),
        64,
        stage_names("layers", ["modulation", "mlp"]),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_presets_resolve_in_depth_order(case):
    build, size, expected = CASES[case]
    model = build()
    graph = discover(model, (3, size, size))
    assert graph.mode == "fx"
    blocks, branches = expected(model)
    if isinstance(branches[0], str):
        branches = [[b] for b in branches]
    assert select_layers(graph, ["blocks"]) == blocks
    assert select_layers(graph, ["residual"]) == [n for br in branches for n in br]
    assert select_layers(graph, ["paper"]) == interleave(blocks, branches)
    depths = [graph.point(n).depth for n in select_layers(graph, ["all"])]
    assert depths == sorted(depths) and len(depths) == len(graph.points)


@pytest.mark.parametrize("case", sorted(CASES))
def test_blocks_and_branches_equal_forward_hooks_on_the_declared_modules(case):
    build, size, expected = CASES[case]
    model = build().eval()
    graph = discover(model, (3, size, size))
    blocks, branches = expected(model)
    if isinstance(branches[0], str):
        branches = [[b] for b in branches]
    names = [*blocks[-2:], *[n for br in branches[-2:] for n in br]]
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(6))
    with capture_layers(model, graph, names) as capture:
        got = capture(images)
    plain = {n: model.get_submodule(n) for n in names if not n.endswith(".mul")}
    # a layer-scaled branch (ConvNeXt's ``mul``) is the input of the block's drop_path
    scaled = {
        n: model.get_submodule(n.removesuffix(".mul") + ".drop_path")
        for n in names
        if n.endswith(".mul")
    }
    reference = hooked(model, plain, images) | hooked(model, scaled, images, pre=True)
    for name, value in zip(names, got, strict=True):
        assert torch.equal(value, reference[name].flatten(1)), name


def test_torchvision_vit_branches_are_attention_and_mlp_outputs():
    model = torchvision.models.vit_b_16()
    graph = discover(model, (3, 224, 224))
    first = "encoder.layers.encoder_layer_0"
    assert select_layers(graph, ["paper"])[:3] == [
        f"{first}.self_attention[0]",
        f"{first}.mlp",
        first,
    ]
    assert graph.point(f"{first}.self_attention[0]").shape == (197, 768)


def test_position_embedding_add_is_not_a_residual_block():
    graph = discover(timm.create_model("test_vit"), (3, 160, 160))
    assert "add" in graph.names()  # x + pos_embed at top level
    assert all(b.startswith("blocks.") for b in graph.blocks)


class Untraceable(torch.nn.Module):
    """Data-dependent control flow defeats torch.fx; forward hooks still work."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:
            x = x * 2
        return self.head(x.mean((2, 3)))


def test_hook_fallback_names_the_reason():
    graph = discover(Untraceable(), (3, 8, 8))
    assert graph.mode == "hooks"
    assert "torch.fx tracing failed" in graph.fallback_reason
    assert [p.name for p in graph.points] == ["conv", "head"]
    with pytest.raises(Exception, match="could not be traced"):
        select_layers(graph, ["residual"])
