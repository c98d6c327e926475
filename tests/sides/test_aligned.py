"""The aligned stream holds one batch of activations at a time, not two."""

import weakref

import pytest
import torch
import torchvision

import repcompare
from repcompare.sides import aligned

DATA = {"data": "builtin:32:32", "image_size": 32, "crop_pct": 1.0, "workers": 0, "batch_size": 8}
LAYERS = "layer1.1,layer3.1"


def seeded_resnet18(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(num_classes=4)


@pytest.mark.parametrize(
    "run",
    [
        lambda a, b: repcompare.cka(a, b, layers_a=LAYERS, layers_b=LAYERS, **DATA),
        lambda a, b: repcompare.invariance(a, b, layers=LAYERS, augment="flip", **DATA),
        lambda a, b: repcompare.class_fit(a, b, layers=LAYERS, **DATA),
        lambda a, b: repcompare.atlas(a, b, layers=LAYERS, **DATA),
    ],
    ids=["cka", "invariance", "class-fit", "atlas"],
)
def test_a_batch_is_released_before_the_next_forward_pass(run, monkeypatch):
    seen: list[weakref.ref] = []
    forwards = [0]

    class Recorded(aligned.AlignedBatch):
        def __init__(self, labels, feats):
            super().__init__(labels, feats)
            seen.extend(weakref.ref(x) for side in feats for view in side for x in view)

    def no_earlier_batch_alive(_module, _inputs):
        forwards[0] += 1
        alive = [ref for ref in seen if ref() is not None]
        assert not alive, f"{len(alive)} activations of an earlier batch are still referenced"

    monkeypatch.setattr(aligned, "AlignedBatch", Recorded)
    models = [seeded_resnet18(0), seeded_resnet18(1)]
    for model in models:
        model.conv1.register_forward_pre_hook(no_earlier_batch_alive)
    run(*models)
    assert len(seen) >= 4 * 2 * 2 and forwards[0] >= 4 * 2  # batches x models x layers
