"""The ``sublayers`` preset: per transformer block norm1, attn, ls1, the stream after
attention, norm2, mlp, ls2 and the block output, in depth order, each equal to an
independent forward hook on the module (or the input of the module that reads it); in a
post-norm block each norm after its branch, labelled as such; refused where a block's
roles cannot be found."""

import pytest
import timm
import torch
import torchvision

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import discover
from repcompare.capture.select import select_layers
from repcompare.errors import InputError
from tests.support.hooks import hooked

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


def timm_swin_post_norm(b: str):
    """Swin V2 (timm's and the ``cr`` variant): ``x + norm1(attn(x))``, then the MLP."""
    names = [ANY, f"{b}.norm1", f"{b}.add", f"{b}.mlp", f"{b}.norm2", b]
    return names, {ANY: ("in", f"{b}.norm1"), f"{b}.add": ("in", f"{b}.mlp")}


def poolformer(b: str):
    names = [f"{b}.norm1", f"{b}.token_mixer", f"{b}.add", f"{b}.norm2", f"{b}.mlp", b]
    return names, {f"{b}.add": ("in", f"{b}.norm2")}


def coatnet(b: str):
    """The first block of a stage normalises, then downsamples (``norm1.norm``, ``.down``)."""
    norm1 = f"{b}.norm1.norm" if b.endswith(".0") else f"{b}.norm1"
    names = [norm1, f"{b}.attn", f"{b}.add", f"{b}.norm2", f"{b}.mlp", b]
    return names, {f"{b}.add": ("in", f"{b}.norm2")}


def stage_blocks(stages: str, first: int = 0):
    return lambda m: [
        f"{stages}.{s}.blocks.{i}"
        for s, stage in enumerate(m.get_submodule(stages))
        if s >= first
        for i in range(len(stage.blocks))
    ]


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
    "timm:swinv2_cr_tiny_ns_224": (
        lambda: timm.create_model("swinv2_cr_tiny_ns_224", img_size=64, window_size=8),
        64,
        stage_blocks("stages"),
        timm_swin_post_norm,
    ),
    "timm:swinv2_tiny_window8_256": (
        lambda: timm.create_model("swinv2_tiny_window8_256", img_size=64),
        64,
        stage_blocks("layers"),
        timm_swin_post_norm,
    ),
    "timm:poolformerv2_s12": (
        lambda: timm.create_model("poolformerv2_s12"),
        64,
        stage_blocks("stages"),
        poolformer,
    ),
    "timm:test_coatnet": (
        lambda: timm.create_model("test_coatnet", img_size=64),
        64,
        stage_blocks("stages", first=2),  # stages 0 and 1 are MBConv blocks
        coatnet,
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


@pytest.mark.parametrize("name", ["swinv2_cr_tiny_ns_224", "swinv2_tiny_window8_256"])
def test_post_norm_blocks_are_labelled_with_each_norm_after_its_branch(name):
    model = timm.create_model(name, img_size=64, **({"window_size": 8} if "cr" in name else {}))
    graph = discover(model.eval(), (3, 64, 64))
    block = graph.blocks[1]  # a shifted-window block
    roles = [graph.roles[n] for n in select_layers(graph, ["sublayers"]) if n.startswith(block)]
    assert roles == [
        "attn",
        "norm1 (post-norm)",
        "stream",
        "mlp",
        "norm2 (post-norm)",
        "block",
    ]
    graph_vit = discover(timm.create_model("vit_tiny_patch16_224", img_size=32), (3, 32, 32))
    chosen = [n for n in select_layers(graph_vit, ["sublayers"]) if n.startswith("blocks.0.")]
    assert [graph_vit.roles[n] for n in chosen] == ["norm1", "attn", "stream", "norm2", "mlp"]


REFUSED = {
    # the attention reads the stream itself (LeViT's qkv is a linear layer and a batch norm)
    "levit_128s": (224, "block 'stages.0.blocks.0' has no norm before or after its attention"),
    # attention blocks without norms (the MLP's batch norm follows its first layer)
    "efficientformerv2_s0": (224, "block 'stages.2.blocks.4' has no norm before or after"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_blocks_without_the_roles_refuse_the_preset_in_one_sentence(name):
    size, message = REFUSED[name]
    graph = discover(timm.create_model(name).eval(), (3, size, size))
    assert graph.blocks  # the blocks and residual presets still work
    with pytest.raises(InputError, match=message) as error:
        select_layers(graph, ["sublayers"])
    assert str(error.value).count(". ") == 0 and "by name" in str(error.value)


def test_models_without_transformer_blocks_explain_the_empty_preset():
    graph = discover(torchvision.models.resnet18(), (3, 32, 32))
    with pytest.raises(InputError, match="no transformer blocks"):
        select_layers(graph, ["sublayers"])
