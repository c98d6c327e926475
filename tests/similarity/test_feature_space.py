import numpy as np
import pytest
import torch

from repcompare.similarity import ExactLinearCKA, NonFiniteActivationError, cka
from tests.support import numpy_reference as ref
from tests.support.layers import layers, run


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_every_pair_equals_full_data_linear_cka(rng, offset):
    feats_a = [x + offset for x in layers(rng, 130, [6, 20])]
    feats_b = [x - offset for x in layers(rng, 130, [9, 4, 15])]
    result = run(ExactLinearCKA(["a0", "a1"], ["b0", "b1", "b2"]), feats_a, feats_b, 32)
    assert result.n_examples == 130
    for i, x in enumerate(feats_a):
        for j, y in enumerate(feats_b):
            expected = ref.feature_space_linear_cka(x.numpy(), y.numpy())
            assert abs(result.values[i, j] - expected) <= 1e-9


def test_equals_gram_based_biased_cka_and_is_independent_of_batching(rng):
    feats = layers(rng, 90, [7, 13, 5])
    one_batch = run(ExactLinearCKA(["p", "q", "r"]), feats, None, 90)
    small_batches = run(ExactLinearCKA(["p", "q", "r"]), feats, None, 7)
    np.testing.assert_allclose(small_batches.values, one_batch.values, atol=1e-12)
    assert one_batch.value("p", "r") == pytest.approx(cka(feats[0], feats[2]).item(), abs=1e-10)
    np.testing.assert_allclose(np.diag(one_batch.values), 1.0, atol=1e-12)


def test_float32_input_is_accumulated_in_float64(rng):
    x, y = (t.float() + 5 for t in layers(rng, 200, [30, 30]))
    result = run(ExactLinearCKA(["x"], ["y"]), [x], [y], 50)
    expected = ref.feature_space_linear_cka(x.double().numpy(), y.double().numpy())
    assert abs(result.values[0, 0] - expected) <= 1e-9


def test_constant_layer_is_degenerate(rng):
    feats = layers(rng, 40, [3])
    result = run(
        ExactLinearCKA(["x", "flat"], ["y"]), [feats[0], torch.full((40, 2), 9.0)], [feats[0]], 16
    )
    assert result.degenerate_a == ("flat",)
    assert np.isnan(result.value("flat", "y"))
    assert result.value("x", "y") == pytest.approx(1.0, abs=1e-12)


def test_nan_activation_names_the_layer(rng):
    bad = torch.from_numpy(rng.normal(size=(10, 4)))
    bad[2, 3] = float("nan")
    acc = ExactLinearCKA(["ok"], ["broken"])
    with pytest.raises(NonFiniteActivationError, match="'broken'"):
        acc.update([torch.ones(10, 2).cumsum(0)], [bad])
