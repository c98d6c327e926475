"""Only batch-major outputs are capture points: a tensor whose first axis is not the batch
(keys and values stacked in front of it, as in Twins, PVT-v2, GCViT, TNT and VOLO
attention) is not offered, and every point that is offered holds one row per image: the
rows of a batch of four equal the four images captured one at a time, and the attention
module's output equals a forward hook's."""

import pytest
import timm
import torch

from repcompare.capture.capture import capture_layers
from repcompare.capture.graph import discover
from repcompare.capture.select import select_layers
from repcompare.errors import InputError
from tests.support.hooks import hooked

# model, input size, an attention module, its points whose first axis is not the batch
CASES = {
    "timm:twins_svt_small": (
        lambda: timm.create_model("twins_svt_small", img_size=64),
        64,
        "blocks.0.1.attn",
        ["blocks.0.1.attn.permute_3"],  # kv: (2, N, heads, tokens, dim)
    ),
    "timm:pvt_v2_b0": (
        lambda: timm.create_model("pvt_v2_b0"),
        64,
        "stages.0.blocks.0.attn",
        ["stages.0.blocks.0.attn.permute_3"],
    ),
    "timm:gcvit_xxtiny": (
        lambda: timm.create_model("gcvit_xxtiny", img_size=64),
        64,
        "stages.3.blocks.1.attn",  # (earlier stages' attention runs on windows)
        ["stages.3.blocks.1.attn.permute"],  # global query attention's k and v
    ),
    "timm:tnt_s_legacy_patch16_224": (
        lambda: timm.create_model("tnt_s_legacy_patch16_224", img_size=64),
        64,
        "blocks.0.attn_out",  # (attn_in runs on the pixels of B x N patches: not offered)
        ["blocks.0.attn_out.permute"],
    ),
    "timm:volo_d1_224": (
        lambda: timm.create_model("volo_d1_224", img_size=64),
        64,
        "post_network.0.attn",
        ["post_network.0.attn.permute"],  # class attention's kv
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_points_whose_first_axis_is_not_the_batch_are_not_offered(case):
    build, size, attention, not_batch_major = CASES[case]
    model = build().eval()
    graph = discover(model, (3, size, size))
    for name in not_batch_major:
        assert name not in graph
        with pytest.raises(InputError, match="has no layer"):
            select_layers(graph, [name])
    inside = select_layers(graph, [attention, f"{attention}.*"])
    images = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(5))
    with capture_layers(model, graph, inside) as capture:
        batched = capture(images)
        alone = [capture(images[i : i + 1]) for i in range(len(images))]
    for k, name in enumerate(inside):
        rows = torch.cat([one[k] for one in alone])
        assert torch.allclose(batched[k], rows, atol=1e-4, rtol=1e-4), name
    reference = hooked(model, {attention: model.get_submodule(attention)}, images)
    assert torch.equal(batched[inside.index(attention)], reference[attention].flatten(1))


class KeysAndValues(torch.nn.Module):
    """``kv`` returns keys and values stacked in front of the batch: (2, N, 4)."""

    def forward(self, x):
        return torch.stack([x, -x])


class Untraceable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.kv = KeysAndValues()

    def forward(self, x):
        x = self.proj(x.flatten(1))
        if x.sum() > 0:  # data-dependent control flow: the hooks fallback
            x = x * 2
        keys, values = self.kv(x)
        return keys * values


def test_the_hooks_fallback_offers_only_batch_major_outputs():
    graph = discover(Untraceable(), (1, 2, 2))
    assert graph.mode == "hooks"
    assert [p.name for p in graph.points] == ["proj"]
    assert "kv" not in graph
