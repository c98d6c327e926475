"""The ``sublayers`` preset: per transformer block norm1, attn, ls1, the stream after
attention, norm2, mlp, ls2 and the block output, in depth order, each equal to an
independent forward hook on the module (or the input of the module that reads it)."""

import pytest
import timm
import torch
import torchvision

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import discover
from repcompare.capture.select import select_layers
from repcompare.errors import InputError
from tests.capture.test_capture import hooked

ANY = None  # a name the test does not fix (a node inside the block); its value is checked


def timm_vit(scale: str | None):
    """Expected names and references of a timm ViT-style block ``b``; ``scale`` is the
    layer-scale naming: None, ``"ls"`` (``ls1``, ``ls2``) or ``"mul"`` (BEiT's gammas)."""

    def block(b: str):
        ls1, ls2 = {"ls": ("ls1", "ls2"), "mul": ("mul", "mul_1")}.get(scale, (None, None))
        names = [f"{b}.norm1", f"{b}.attn", f"{b}.{ls1}", f"{b}.add"]
        names += [f"{b}.norm2", f"{b}.mlp", f"{b}.{ls2}", b]
        refs = {f"{b}.add": ("in", f"{b}.norm2")}
        if scale == "mul":
            refs |= {f"{b}.mul": ("in", f"{b}.drop_path1"), f"{b}.mul_1": ("in", f"{b}.drop_path2")}
        return [n for n in names if "None" not in n], refs

    return block


def timm_swin(b: str):
    names = [f"{b}.norm1", ANY, f"{b}.add", f"{b}.norm2", f"{b}.mlp", b]
    return names, {ANY: ("in", f"{b}.drop_path1"), f"{b}.add": ("in", f"{b}.norm2")}


def torchvision_vit(b: str):
    names = [f"{b}.ln_1", f"{b}.self_attention[0]", f"{b}.add", f"{b}.ln_2", f"{b}.mlp", b]
    refs = {f"{b}.self_attention[0]": ("out", f"{b}.self_attention")}
    return names, refs | {f"{b}.add": ("in", f"{b}.ln_2")}


def torchvision_swin(b: str):
    names = [f"{b}.norm1", f"{b}.attn", f"{b}.add", f"{b}.norm2", f"{b}.mlp", b]
    return names, {f"{b}.add": ("in", f"{b}.norm2")}


def vit_blocks(m):
    return [f"blocks.{i}" for i in range(len(m.blocks))]


CASES = {
    "timm:vit_tiny_patch16_224": (
        lambda: timm.create_model("vit_tiny_patch16_224", img_size=32),
        32,
        vit_blocks,
        timm_vit(None),
    ),
    "timm:deit_tiny_distilled_patch16_224": (
        lambda: timm.create_model("deit_tiny_distilled_patch16_224", img_size=32, depth=4),
        32,
        vit_blocks,
        timm_vit(None),
    ),
    "timm:vit_wee_patch16_reg1_gap_256": (
        lambda: timm.create_model("vit_wee_patch16_reg1_gap_256", img_size=32),
        32,
        vit_blocks,
        timm_vit("ls"),
    ),
    "timm:beit_base_patch16_224": (
        lambda: timm.create_model("beit_base_patch16_224", img_size=32, depth=3),
        32,
        vit_blocks,
        timm_vit("mul"),
    ),
    "timm:swin_tiny_patch4_window7_224": (
        lambda: timm.create_model("swin_tiny_patch4_window7_224", img_size=56),
        56,
        lambda m: [
            f"layers.{s}.blocks.{i}" for s, x in enumerate(m.layers) for i in range(len(x.blocks))
        ],
        timm_swin,
    ),
    "torchvision:vit_b_16": (
        lambda: torchvision.models.vit_b_16(image_size=32),
        32,
        lambda m: [f"encoder.layers.{n}" for n, _ in m.encoder.layers.named_children()],
        torchvision_vit,
    ),
    "torchvision:swin_t": (
        lambda: torchvision.models.swin_t(),
        64,
        lambda m: [f"features.{s}.{i}" for s in (1, 3, 5, 7) for i in range(len(m.features[s]))],
        torchvision_swin,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_sublayers_in_depth_order_equal_hooks(case):
    build, size, blocks, per_block = CASES[case]
    model = build().eval()
    graph = discover(model, (3, size, size))
    chosen = select_layers(graph, ["sublayers"])
    expected, refs = [], {}
    for block in blocks(model):
        names, block_refs = per_block(block)
        expected += names
        refs |= block_refs
    assert len(chosen) == len(expected)
    unnamed = [c for c, e in zip(chosen, expected, strict=True) if e is ANY]
    assert [e for e in expected if e is not ANY] == [c for c in chosen if c not in unnamed]
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with capture_layers(model, graph, chosen) as capture:
        got = capture(images)
    outs, ins = {}, {}
    for name, want in zip(chosen, expected, strict=True):
        how, module = refs.get(want, ("out", want))
        if want is ANY:
            how, module = per_block(name.rsplit(".", 1)[0])[1][ANY]
        (ins if how == "in" else outs)[name] = model.get_submodule(module)
    reference = hooked(model, outs, images) | hooked(model, ins, images, pre=True)
    for name, value in zip(chosen, got, strict=True):
        assert torch.equal(value, reference[name].flatten(1)), name


def test_models_without_transformer_blocks_explain_the_empty_preset():
    graph = discover(torchvision.models.resnet18(), (3, 32, 32))
    with pytest.raises(InputError, match="no transformer blocks"):
        select_layers(graph, ["sublayers"])
