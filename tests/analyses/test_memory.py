"""The memory bounds checked before a pass: Gram-first streaming holds one model's activations
plus every layer's Gram, and a pass that would not fit is one sentence."""

import pytest

import repcompare
from repcompare.analyses import memory
from repcompare.analyses.memory import minibatch_bytes, stream_bytes

DATA = {"data": "builtin:32:32", "image_size": 32, "workers": 0, "batch_size": 16}
LAYERS = "layer1.0,layer4.1"


def test_a_batch_of_every_models_features_against_one_models_and_the_grams():
    widths = [[1000, 100, 20], [3000]]  # two models, batch 64
    assert stream_bytes(widths, 64, 2, gram_first=False) == 4 * 64 * 2 * 4120
    one_model = 4 * 64 * 3000  # the widest model's activations of one view
    grams = 2 * (64 * 64 + 64 * 64 + 64 * 20 + 64 * 64)  # a layer narrower than 64 stays
    assert stream_bytes(widths, 64, 2, gram_first=True) == one_model + 4 * grams


def test_gram_first_memory_does_not_grow_with_the_models_activations():
    one, many = [[50_000] * 10], [[50_000] * 10] * 24
    grown = stream_bytes(many, 128, 1, True) - stream_bytes(one, 128, 1, True)
    assert grown == 23 * 10 * 128 * 128 * 4  # only the other models' Grams
    assert stream_bytes(many, 128, 1, False) == 24 * stream_bytes(one, 128, 1, False)


def test_the_accumulators_batch_update():
    assert minibatch_bytes(3, None, 8) == 8 * (3 * 64 + 3 * 9)
    assert minibatch_bytes(3, 5, 8) == 8 * (8 * 64 + 3 * 15)


@pytest.mark.parametrize("command", ["cka", "atlas"])
def test_a_pass_that_would_not_fit_is_one_sentence_naming_what_it_holds(command, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 100_000)
    models = ["timm:resnet18", "timm:resnet18#seed=1"]
    if command == "cka":
        match = r"minibatch CKA of 2 x 2 layers over batches of 16 needs about .*--batch-size"
        with pytest.raises(repcompare.InputError, match=match):
            repcompare.cka(*models, layers_a=LAYERS, layers_b=LAYERS, **DATA)
    else:
        match = r"one model's activations and every layer's Gram matrix for a batch of 16"
        with pytest.raises(repcompare.InputError, match=match):
            repcompare.atlas(*models, layers=LAYERS, **DATA)
