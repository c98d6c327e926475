"""Every timm architecture family builds and is discoverable: one small model per module.

The model of each ``timm.list_modules()`` module is its smallest by parameter
count (counted once on the meta device, timm 1.0.31; 10 minutes, so it is a
table here), plus the distilled DeiT and PiT, whose tuple classifier names
once crashed every command. A module timm adds later is tested with its first
model. Random init, the model's own input size, through ``repcompare layers``.

The ``blocks`` preset of each is checked against the blocks the model declares
(``DECLARED``: the elements of its block lists, read off the model's modules and
their own skip flags, not off the graph).
"""

import json
import re

import pytest
import timm
import torch

from repcompare.capture.graph import discover
from repcompare.capture.select import select_layers
from repcompare.cli import main
from repcompare.errors import InputError

SMALLEST = {
    "beit": "beit_base_patch16_224",
    "byoanet": "halonet_h1",
    "byobnet": "test_byobnet",
    "cait": "cait_xxs24_224",
    "coat": "coat_tiny",
    "convit": "convit_tiny",
    "convmixer": "convmixer_768_32",
    "convnext": "test_convnext",
    "cpubone": "cpubone_nano",
    "crossvit": "crossvit_tiny_240",
    "csatv2": "csatv2",
    "cspnet": "cs3darknet_focus_s",
    "cspnext": "cspnext_tiny",
    "davit": "davit_tiny",
    "deepseek_vit": "deepseek_vit_412m",
    "deit": "deit_tiny_patch16_224",
    "densenet": "densenet121",
    "dla": "dla46x_c",
    "dpn": "dpn48b",
    "edgenext": "edgenext_xx_small",
    "efficientformer": "efficientformer_l1",
    "efficientformer_v2": "efficientformerv2_s0",
    "efficientnet": "test_efficientnet",
    "efficientvim": "efficientvim_m1",
    "efficientvit_mit": "efficientvit_b0",
    "efficientvit_msra": "efficientvit_m0",
    "eva": "vit_tiny_patch16_dinov3_qkvb",
    "fasternet": "fasternet_t0",
    "fastvit": "fastvit_t8",
    "focalnet": "focalnet_tiny_srf",
    "gcvit": "gcvit_xxtiny",
    "gemma4_vit": "gemma4_vit_167m",
    "ghostnet": "ghostnet_050",
    "hardcorenas": "hardcorenas_b",
    "hgnet": "hgnetv2_b0",
    "hiera": "hiera_tiny_224",
    "hieradet_sam2": "sam2_hiera_tiny",
    "hrnet": "hrnet_w18_small",
    "iformer": "iformer_t",
    "inception_next": "inception_next_atto",
    "inception_resnet_v2": "inception_resnet_v2",
    "inception_v3": "inception_v3",
    "inception_v4": "inception_v4",
    "lcnetv2": "lcnetv2_small",
    "levit": "levit_128s",
    "lowformer": "lowformer_b0",
    "mambaout": "test_mambaout",
    "maxxvit": "test_coatnet",
    "metaformer": "poolformerv2_s12",
    "mlp_mixer": "gmlp_ti16_224",
    "mobilenetv3": "mobilenetv3_small_050",
    "mobilenetv5": "mobilenetv5_base",
    "mobilevit": "mobilevit_xxs",
    "mvitv2": "mvitv2_tiny",
    "naflexvit": "naflexvit_base_patch16_parfac_gap",
    "nasnet": "nasnetalarge",
    "nest": "nest_tiny",
    "nextvit": "nextvit_small",
    "nfnet": "test_nfnet",
    "pit": "pit_ti_224",
    "pnasnet": "pnasnet5large",
    "pvt_v2": "pvt_v2_b0",
    "qwen3_vit": "qwen3_vit_88m",
    "rdnet": "rdnet_tiny",
    "regnet": "regnetx_002",
    "repghost": "repghostnet_050",
    "repvit": "repvit_m1",
    "res2net": "res2next50",
    "resnest": "resnest14d",
    "resnet": "test_resnet",
    "resnetv2": "resnetv2_18",
    "rexnet": "rexnet_100",
    "selecsls": "selecsls42",
    "senet": "legacy_seresnet18",
    "sequencer": "sequencer2d_s",
    "shvit": "shvit_s1",
    "sknet": "skresnet18",
    "starnet": "starnet_s050",
    "swiftformer": "swiftformer_xs",
    "swin_transformer": "swin_tiny_patch4_window7_224",
    "swin_transformer_v2": "swinv2_tiny_window8_256",
    "swin_transformer_v2_cr": "swinv2_cr_tiny_224",
    "tiny_vit": "tiny_vit_5m_224",
    "tnt": "tnt_s_legacy_patch16_224",
    "tresnet": "tresnet_m",
    "twins": "twins_svt_small",
    "vgg": "vgg11",
    "visformer": "visformer_tiny",
    "vision_transformer": "test_vit",
    "vision_transformer_hybrid": "vit_tiny_r_s16_p8_224",
    "vision_transformer_relpos": "test_vit_relpos",
    "vision_transformer_sam": "samvit_base_patch16_224",
    "vitamin": "vitamin_small_224",
    "volo": "volo_d1_224",
    "vovnet": "ese_vovnet19b_slim_dw",
    "xception": "legacy_xception",
    "xception_aligned": "xception41p",
    "xcit": "xcit_nano_12_p8_224",
}
TUPLE_CLASSIFIERS = ["deit_tiny_distilled_patch16_224", "pit_ti_distilled_224"]


def family_models() -> list[str]:
    """One model per timm module (the table's, else the module's first), then the extras."""
    chosen = [SMALLEST.get(m) or timm.list_models(module=m)[0] for m in timm.list_modules()]
    return [*dict.fromkeys(name for name in chosen if timm.is_model(name)), *TUPLE_CLASSIFIERS]


@pytest.mark.slow
@pytest.mark.parametrize("name", family_models())
def test_every_timm_family_runs_the_layers_command(name, capsys):
    try:  # --debug: an unexpected error propagates with its traceback
        code = main(["--debug", "layers", f"timm:{name}", "--json"])
    except InputError as error:  # a clear refusal is allowed; anything else fails
        pytest.skip(f"InputError: {error}")
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model"] == f"timm:{name}" and document["layers"]


def _matches(name: str, pattern: str) -> bool:
    """``*`` matches one name component."""
    return re.fullmatch(re.escape(pattern).replace(r"\*", r"[^.]+"), name) is not None


def elements(model, *containers: str, keep=None) -> list[str]:
    """The children of every module named by one of ``containers`` (``*``: one name
    component) for which ``keep(child)`` holds (all of them without ``keep``)."""
    return [
        f"{name}.{child}" if name else child
        for name, module in model.named_modules()
        if any(_matches(name, c) for c in containers)
        for child, sub in module.named_children()
        if keep is None or keep(sub)
    ]


def of_class(model, *classes: str) -> list[str]:
    return [name for name, module in model.named_modules() if type(module).__name__ in classes]


def flag(attribute: str):
    """Keep the children whose ``attribute`` is true (timm's ``has_skip``, ...)."""
    return lambda module: bool(getattr(module, attribute, False))


def has_shortcut(module) -> bool:
    """A timm block whose ``shortcut`` is a module (None: no residual connection)."""
    return getattr(module, "shortcut", None) is not None


def residual_or(*classes: str):
    """Keep blocks with a shortcut module, and blocks of ``classes`` (residual inside)."""
    return lambda module: has_shortcut(module) or type(module).__name__ in classes


def named(*classes: str):
    return lambda module: type(module).__name__ in classes


def wraps_more_than(*classes: str):
    """A residual wrapper (``.m``) around more than one affine layer of ``classes``."""
    return lambda module: type(getattr(module, "m", None)).__name__ not in classes


NO_RESIDUAL_BLOCKS = []  # natural stages instead
RESNET = ("layer1", "layer2", "layer3", "layer4")
# model -> the blocks it declares (the elements of its block lists), or why it is skipped
DECLARED = {
    "beit_base_patch16_224": lambda m: elements(m, "blocks"),
    "halonet_h1": lambda m: elements(m, "stages.*"),
    "test_byobnet": lambda m: elements(m, "stages.*", keep=has_shortcut),
    "cait_xxs24_224": lambda m: elements(m, "blocks", "blocks_token_only"),
    # not the shared position encodings cpe1..4 and crpe1..4
    "coat_tiny": lambda m: elements(m, "serial_blocks*", "parallel_blocks"),
    "convit_tiny": lambda m: elements(m, "blocks"),
    # each block is Sequential(Residual(depthwise conv), pointwise conv): blocks.i.0 is the
    # residual inside blocks.i
    "convmixer_768_32": lambda m: elements(m, "blocks"),
    "test_convnext": lambda m: elements(m, "stages.*.blocks"),
    "cpubone_nano": "a block is Sequential(Sequential(residual, residual), residual): its "
    "three residual units are elements of containers of their own, so each is a block",
    "crossvit_tiny_240": lambda m: elements(m, "blocks.*.blocks.*", "blocks.*.fusion"),
    "csatv2": lambda m: elements(m, "stages.*", keep=named("Block", "TransformerBlock")),
    "cs3darknet_focus_s": lambda m: elements(m, "stages.*.blocks"),
    "cspnext_tiny": lambda m: elements(m, "stages.*.*.blocks", keep=flag("add_identity")),
    "davit_tiny": lambda m: elements(m, "stages.*.blocks.*"),
    "deepseek_vit_412m": lambda m: elements(m, "encoder.blocks"),
    "deit_tiny_patch16_224": lambda m: elements(m, "blocks"),
    "densenet121": lambda m: NO_RESIDUAL_BLOCKS,
    "dla46x_c": lambda m: of_class(m, "DlaBasic", "DlaBottleneck", "DlaBottle2neck"),
    "dpn48b": lambda m: of_class(m, "DualPathBlock"),
    "edgenext_xx_small": lambda m: elements(m, "stages.*.blocks"),
    "efficientformer_l1": lambda m: elements(
        m, "stages.*.blocks", keep=named("MetaBlock1d", "MetaBlock2d")
    ),
    # plus the attention downsampling of the last stage (attention + strided convolution)
    "efficientformerv2_s0": lambda m: [*elements(m, "stages.*.blocks"), "stages.3.downsample"],
    "test_efficientnet": lambda m: elements(m, "blocks.*", keep=flag("has_skip")),
    "efficientvim_m1": lambda m: elements(m, "stages.*.blocks"),
    "efficientvit_b0": lambda m: elements(
        m, "stem", "stages.*.blocks", keep=residual_or("EfficientVitBlock")
    ),
    # plus the residual feed-forward units of the downsampling (its residual depthwise
    # convolutions are affine)
    "efficientvit_m0": lambda m: (
        elements(m, "stages.*.blocks")
        + elements(m, "stages.*.downsample.res*", keep=wraps_more_than("ConvNorm"))
    ),
    "vit_tiny_patch16_dinov3_qkvb": lambda m: elements(m, "blocks"),
    "fasternet_t0": lambda m: elements(m, "stages.*.blocks"),
    "fastvit_t8": lambda m: elements(m, "stages.*.blocks"),
    "focalnet_tiny_srf": lambda m: elements(m, "layers.*.blocks"),
    # plus the residual MBConv blocks of the stem, the downsamplers and the global-query
    # generators
    "gcvit_xxtiny": lambda m: elements(m, "stages.*.blocks") + of_class(m, "MbConvBlock"),
    "gemma4_vit_167m": "fx cannot trace it and the hooks fallback knows no residual structure",
    "ghostnet_050": lambda m: elements(m, "blocks.*", keep=named("GhostBottleneck")),
    "hardcorenas_b": lambda m: elements(m, "blocks.*", keep=flag("has_skip")),
    "hgnetv2_b0": lambda m: elements(m, "stages.*.blocks", keep=flag("residual")),
    "hiera_tiny_224": lambda m: elements(m, "blocks"),  # the hooks fallback's name pattern
    "sam2_hiera_tiny": lambda m: elements(m, "blocks"),
    # plus each multi-resolution module, whose fusion sums its branches
    "hrnet_w18_small": lambda m: of_class(m, "BasicBlock", "Bottleneck", "HighResolutionModule"),
    # not the conditional position encodings (RepCPE: x + conv(x), fused into one conv)
    "iformer_t": lambda m: elements(m, "stages.*.blocks", keep=lambda b: not named("RepCPE")(b)),
    "inception_next_atto": lambda m: elements(m, "stages.*.blocks"),
    "inception_resnet_v2": lambda m: [*elements(m, "repeat", "repeat_1", "repeat_2"), "block8"],
    "inception_v3": lambda m: NO_RESIDUAL_BLOCKS,
    "inception_v4": lambda m: NO_RESIDUAL_BLOCKS,
    "lcnetv2_small": lambda m: elements(m, "stem", "stages.*", keep=flag("use_shortcut")),
    # plus the residual MLP after each attention downsampling
    "levit_128s": lambda m: elements(m, "stages.*.blocks") + of_class(m, "LevitDownsample"),
    "lowformer_b0": lambda m: elements(m, "stem", "stages.*", keep=residual_or("LowFormerBlock")),
    "test_mambaout": lambda m: elements(m, "stages.*.blocks"),
    "test_coatnet": lambda m: elements(m, "stages.*.blocks"),
    "poolformerv2_s12": lambda m: elements(m, "stages.*.blocks"),
    "gmlp_ti16_224": lambda m: elements(m, "blocks"),
    "mobilenetv3_small_050": lambda m: elements(m, "blocks.*", keep=flag("has_skip")),
    "mobilenetv5_base": lambda m: elements(m, "blocks.*", keep=flag("has_skip")),
    # MobileVitBlock is a timm leaf module (fx sees no add inside it); its transformer runs
    # on the patches of all images at once, so it is not batch-major anyway
    "mobilevit_xxs": lambda m: elements(m, "stages.*", keep=has_shortcut),
    "mvitv2_tiny": lambda m: elements(m, "stages.*.blocks"),
    "naflexvit_base_patch16_parfac_gap": lambda m: elements(m, "blocks"),
    "nasnetalarge": lambda m: [n for n, _ in m.named_children() if "cell" in n],
    "nest_tiny": lambda m: elements(m, "levels.*.transformer_encoder"),
    "nextvit_small": lambda m: elements(m, "stages.*.blocks"),
    "test_nfnet": "NormFreeBlock is a timm leaf module: fx sees no residual add inside it",
    "pit_ti_224": lambda m: elements(m, "transformers.*.blocks"),
    "pnasnet5large": lambda m: [n for n, _ in m.named_children() if "cell" in n],
    "pvt_v2_b0": lambda m: elements(m, "stages.*.blocks"),
    "qwen3_vit_88m": lambda m: elements(m, "encoder.blocks"),
    "rdnet_tiny": lambda m: NO_RESIDUAL_BLOCKS,
    "regnetx_002": lambda m: elements(m, "s1", "s2", "s3", "s4"),
    "repghostnet_050": lambda m: elements(m, "blocks.*", keep=named("RepGhostBottleneck")),
    # plus each downsampling's RepViT block and residual MLP (the downsampling's output)
    "repvit_m1": lambda m: (
        elements(m, "stages.*.blocks")
        + [f"{d}{b}" for d in of_class(m, "RepVitDownsample") for b in ("", ".pre_block")]
    ),
    "res2next50": lambda m: elements(m, *RESNET),
    "resnest14d": lambda m: elements(m, *RESNET),
    "test_resnet": lambda m: elements(m, *RESNET),
    "resnetv2_18": lambda m: elements(m, "stages.*.blocks"),
    "rexnet_100": lambda m: elements(m, "features", keep=flag("use_shortcut")),
    "selecsls42": lambda m: NO_RESIDUAL_BLOCKS,
    "legacy_seresnet18": lambda m: elements(m, *RESNET),
    "sequencer2d_s": lambda m: elements(m, "stages.*.blocks"),
    # plus the residual feed-forward units of the downsampling (not its residual convs)
    "shvit_s1": lambda m: (
        elements(m, "stages.*.blocks")
        + elements(
            m,
            "stages.*.downsample",
            keep=lambda b: named("Residual")(b) and wraps_more_than("Conv2dNorm")(b),
        )
    ),
    "skresnet18": lambda m: elements(m, *RESNET),
    "starnet_s050": lambda m: elements(m, "stages.*", keep=named("Block")),
    "swiftformer_xs": lambda m: elements(m, "stages.*.blocks"),
    "swin_tiny_patch4_window7_224": lambda m: elements(m, "layers.*.blocks"),
    "swinv2_tiny_window8_256": lambda m: elements(m, "layers.*.blocks"),
    "swinv2_cr_tiny_224": lambda m: elements(m, "stages.*.blocks"),
    "tiny_vit_5m_224": "TinyVitBlock is a timm leaf module: fx sees no residual add inside it",
    "tnt_s_legacy_patch16_224": lambda m: elements(m, "blocks"),
    "tresnet_m": lambda m: elements(m, *(f"body.{layer}" for layer in RESNET)),
    # not the position convolutions pos_block.s (x + conv(x))
    "twins_svt_small": lambda m: elements(m, "blocks.*"),
    "vgg11": lambda m: NO_RESIDUAL_BLOCKS,
    "visformer_tiny": lambda m: elements(m, "stage1", "stage2", "stage3"),
    "test_vit": lambda m: elements(m, "blocks"),
    "vit_tiny_r_s16_p8_224": lambda m: elements(m, "blocks"),
    "test_vit_relpos": lambda m: elements(m, "blocks"),
    "samvit_base_patch16_224": lambda m: elements(m, "blocks"),
    "vitamin_small_224": lambda m: elements(m, "patch_embed.backbone.stages.*", "blocks"),
    "volo_d1_224": lambda m: (
        elements(m, "network.*", keep=named("Outlooker", "Transformer"))
        + elements(m, "post_network")
    ),
    "ese_vovnet19b_slim_dw": lambda m: NO_RESIDUAL_BLOCKS,
    "legacy_xception": lambda m: [f"block{i}" for i in range(1, 13)],
    "xception41p": lambda m: elements(m, "blocks", keep=lambda b: not b.no_skip),
    "xcit_nano_12_p8_224": lambda m: elements(m, "blocks", "cls_attn_blocks"),
    "deit_tiny_distilled_patch16_224": lambda m: elements(m, "blocks"),
    "pit_ti_distilled_224": lambda m: elements(m, "transformers.*.blocks"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", family_models())
def test_every_timm_familys_blocks_preset_lists_the_blocks_it_declares(name):
    """One preset block per declared block (the block itself, or for ConvMixer the residual
    inside it); no residual branch inside another (rotary embeddings inside attention)."""
    declared = DECLARED.get(name, f"no declared blocks for the new family model {name}")
    if isinstance(declared, str):
        pytest.skip(declared)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = timm.create_model(name).eval()
    graph = discover(model, tuple(model.pretrained_cfg["input_size"]))
    expected = declared(model)
    if not expected:
        assert graph.blocks == [] and graph.residual == []
        return
    chosen = select_layers(graph, ["blocks"])
    # each chosen block is a declared block, or inside one (the innermost that holds it)
    owners = [
        max((d for d in expected if c == d or c.startswith(d + ".")), key=len, default=None)
        for c in chosen
    ]
    assert None not in owners, [c for c, o in zip(chosen, owners, strict=True) if o is None]
    assert sorted(owners) == sorted(expected)
    if graph.mode == "fx":  # the hooks fallback has no residual structure
        residual = select_layers(graph, ["residual"])
        assert not [r for r in residual if any(r.startswith(o + ".") for o in residual)]
        check_sublayer_roles(model, graph)


PRE_NORM = ["norm1", "attn", "ls1", "stream", "norm2", "mlp", "ls2", "block"]
POST_NORM = ["attn", "norm1 (post-norm)", "ls1", "stream", "mlp", "norm2 (post-norm)", "ls2"]


def check_sublayer_roles(model, graph):
    """Per transformer block the documented roles in order (layer scales optional), each
    norm role a normalisation module; or a refusal that names a block."""
    if graph.sublayers_refused:
        assert not graph.sublayers and "block '" in graph.sublayers_refused
        return
    per_block, current = [], []
    for name in graph.sublayers:
        current.append(graph.roles[name])
        if current[-1] == "block":
            per_block.append(current)
            current = []
    assert not current
    for found in per_block:
        order = [*POST_NORM, "block"] if "norm1 (post-norm)" in found else PRE_NORM
        assert found == [r for r in order if r in found], found
        assert {"attn", "stream", "mlp"} <= set(found), found
        assert sum(r.startswith("norm") for r in found) == 2, found
    for name in graph.sublayers:
        if graph.roles[name].startswith("norm"):
            module = model.get_submodule(name)
            assert "norm" in type(module).__name__.lower(), (name, type(module).__name__)
