"""Property tests over shapes, scales and batch sizes."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from repcompare.similarity import ExactLinearCKA, MinibatchCKA, cka
from tests.support import numpy_reference as ref
from tests.support.layers import batches, layers, run

shapes = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31),
        "n": st.integers(8, 70),
        "batch": st.integers(4, 40),
        "width_a": st.integers(1, 24),
        "width_b": st.integers(1, 24),
        "scale": st.floats(1e-3, 1e3),
    }
)


def whole_batches_of_four(n: int, batch: int) -> int:
    """Trim n so that the final partial batch, if any, still has >= 4 examples."""
    rest = n % batch
    return n - rest if 0 < rest < 4 else n


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_minibatch_matches_reference_for_any_shape_scale_and_batching(p):
    rng = np.random.default_rng(p["seed"])
    n = whole_batches_of_four(p["n"], p["batch"])
    x, y = layers(rng, n, [p["width_a"], p["width_b"]])
    x = x * p["scale"]
    result = run(MinibatchCKA(["x"], ["y"]), [x], [y], p["batch"])
    bx = [b.numpy() for b in batches(x, p["batch"])]
    by = [b.numpy() for b in batches(y, p["batch"])]
    expected = ref.minibatch_cka(bx, by)
    assert abs(result.values[0, 0] - expected) <= 1e-6
    assert abs(result.values[0, 0]) <= 1 + 1e-12


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_exact_streaming_is_independent_of_batching(p):
    rng = np.random.default_rng(p["seed"])
    x, y = layers(rng, p["n"], [p["width_a"], p["width_b"]])
    x = x * p["scale"] + p["scale"]
    batched = run(ExactLinearCKA(["x"], ["y"]), [x], [y], p["batch"])
    whole = ref.feature_space_linear_cka(x.numpy(), y.numpy())
    assert abs(batched.values[0, 0] - whole) <= 1e-9
    assert 0 <= batched.values[0, 0] <= 1 + 1e-12


@settings(max_examples=30, deadline=None)
@given(shapes, st.sampled_from(["linear", "rbf"]), st.booleans())
def test_full_data_cka_is_one_on_itself_and_bounded(p, kernel, debiased):
    rng = np.random.default_rng(p["seed"])
    x, y = layers(rng, max(p["n"], 8), [p["width_a"], p["width_b"]])
    x = x * p["scale"]
    assert abs(cka(x, x, kernel=kernel, debiased=debiased).item() - 1) <= 1e-9
    assert abs(cka(x, y, kernel=kernel, debiased=debiased).item()) <= 1 + 1e-9
