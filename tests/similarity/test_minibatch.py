import numpy as np
import pytest
import torch

from repcompare.similarity import BatchShapeError, MinibatchCKA, NonFiniteActivationError
from tests.support import numpy_reference as ref
from tests.support.layers import batches, layers, run


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-6), (torch.float32, 1e-4)])
def test_every_pair_equals_the_per_pair_reference(rng, kernel, dtype, tol):
    n, size = 150, 32  # four full batches and a partial one of 22
    feats_a = [x.to(dtype) for x in layers(rng, n, [8, 30, 5])]
    feats_b = [x.to(dtype) for x in layers(rng, n, [12, 3, 40, 7])]
    names_a, names_b = ["a0", "a1", "a2"], ["b0", "b1", "b2", "b3"]
    result = run(MinibatchCKA(names_a, names_b, kernel=kernel), feats_a, feats_b, size)
    assert result.values.shape == (3, 4)
    assert result.n_examples == n
    for i, x in enumerate(feats_a):
        for j, y in enumerate(feats_b):
            bx = [b.double().numpy() for b in batches(x, size)]
            by = [b.double().numpy() for b in batches(y, size)]
            expected = ref.minibatch_cka(bx, by, kernel=kernel)
            assert abs(result.values[i, j] - expected) <= tol, (names_a[i], names_b[j])


def test_rows_and_columns_follow_the_requested_order(rng):
    feats = layers(rng, 64, [4, 9, 6])
    forward = run(MinibatchCKA(["a", "b", "c"], ["a", "b", "c"]), feats, feats, 32)
    order = [2, 0, 1]
    names = [["a", "b", "c"][i] for i in order]
    permuted = run(MinibatchCKA(names, ["a", "b", "c"]), [feats[i] for i in order], feats, 32)
    assert permuted.names_a == ("c", "a", "b")
    np.testing.assert_allclose(permuted.values, forward.values[order], atol=1e-12)
    assert permuted.value("c", "a") == pytest.approx(forward.value("c", "a"), abs=1e-12)


def test_symmetric_mode_equals_comparing_a_side_with_itself(rng):
    feats = layers(rng, 96, [5, 11, 7])
    alone = run(MinibatchCKA(["x", "y", "z"]), feats, None, 32)
    both = run(MinibatchCKA(["x", "y", "z"], ["x", "y", "z"]), feats, feats, 32)
    np.testing.assert_allclose(alone.values, both.values, atol=1e-12)
    np.testing.assert_allclose(np.diag(alone.values), 1.0, atol=1e-12)
    np.testing.assert_allclose(alone.values, alone.values.T, atol=1e-12)
    assert alone.values[0, 1] < 0.99


def test_one_hot_labels_are_one_more_layer(rng):
    labels = rng.integers(0, 5, size=80)
    onehot = torch.from_numpy(np.eye(5)[labels])
    feats = layers(rng, 80, [6])
    feats[0] = feats[0] + 2 * onehot @ torch.from_numpy(rng.normal(size=(5, 6)))
    result = run(MinibatchCKA(["layer"], ["labels"]), feats, [onehot], 20)
    bx = [b.numpy() for b in batches(feats[0], 20)]
    by = [b.numpy() for b in batches(onehot, 20)]
    assert result.value("layer", "labels") == pytest.approx(ref.minibatch_cka(bx, by), abs=1e-9)


def test_batches_smaller_than_four_are_refused(rng):
    acc = MinibatchCKA(["a"], ["b"])
    x = torch.from_numpy(rng.normal(size=(3, 2)))
    with pytest.raises(BatchShapeError, match="a batch of 3 examples is too small"):
        acc.update([x], [x])


def test_sides_with_different_example_counts_are_refused(rng):
    acc = MinibatchCKA(["a"], ["b"])
    with pytest.raises(BatchShapeError, match="same images in the same order"):
        acc.update([torch.randn(8, 2)], [torch.randn(6, 2)])


def test_nan_activation_names_the_layer():
    acc = MinibatchCKA(["stem", "layer1.0"], ["fc"])
    bad = torch.randn(8, 4)
    bad[0, 0] = float("inf")
    with pytest.raises(NonFiniteActivationError, match=r"'layer1\.0'"):
        acc.update([torch.randn(8, 3), bad], [torch.randn(8, 2)])


def test_degenerate_layer_is_reported_and_others_still_scored(rng):
    feats = layers(rng, 64, [5, 5])
    dead = torch.zeros(64, 7)
    result = run(MinibatchCKA(["x", "dead"], ["y"]), [feats[0], dead], [feats[1]], 32)
    assert result.degenerate_a == ("dead",)
    assert result.degenerate_b == ()
    assert np.isnan(result.value("dead", "y"))
    assert np.isfinite(result.value("x", "y"))


@pytest.mark.parametrize("width", [4096, 65536])
def test_float32_offset_relu_trap(width):
    gen = torch.Generator().manual_seed(width)
    pre = torch.randn(256, width, generator=gen)
    x = torch.relu(pre) + 5
    y = torch.relu(pre + 2 * torch.randn(256, width, generator=gen)) + 5
    result = run(MinibatchCKA(["x"], ["y"]), [x], [y], 128)
    bx = [b.numpy() for b in batches(x, 128)]
    by = [b.numpy() for b in batches(y, 128)]
    got = result.values[0, 0]
    assert np.isfinite(got)
    assert abs(got - ref.minibatch_cka(bx, by)) <= 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu(rng):
    feats = layers(rng, 128, [32, 64])
    cpu = run(MinibatchCKA(["a"], ["b"]), feats[:1], feats[1:], 64)
    gpu = run(MinibatchCKA(["a"], ["b"]), [feats[0].cuda()], [feats[1].cuda()], 64)
    np.testing.assert_allclose(gpu.values, cpu.values, atol=1e-6)


def test_float32_overflow_in_the_gram_is_reported_as_non_finite():
    acc = MinibatchCKA(["huge"], ["fine"])
    with pytest.raises(NonFiniteActivationError, match="too large for float32"):
        acc.update([torch.full((8, 4), 1e30) * torch.randn(8, 4)], [torch.randn(8, 2)])


def test_bootstrap_interval_brackets_the_estimate_and_matches_a_resampling_reference(rng):
    feats_a = layers(rng, 256, [6, 10])
    feats_b = layers(rng, 256, [8])
    acc = MinibatchCKA(["a0", "a1"], ["b0"])
    result = run(acc, feats_a, feats_b, 32)
    low, high = acc.bootstrap(resamples=400, seed=7)
    assert np.all(low <= result.values) and np.all(result.values <= high)
    assert np.all(high - low > 0)
    draws = np.random.default_rng(7).multinomial(8, np.full(8, 1 / 8), size=400)
    values = []
    for count in draws:
        chosen = [i for i, c in enumerate(count) for _ in range(c)]
        bx = [batches(feats_a[1], 32)[i].numpy() for i in chosen]
        by = [batches(feats_b[0], 32)[i].numpy() for i in chosen]
        values.append(ref.minibatch_cka(bx, by))
    expected_low, expected_high = np.percentile(values, [2.5, 97.5])
    assert low[1, 0] == pytest.approx(expected_low, abs=1e-9)
    assert high[1, 0] == pytest.approx(expected_high, abs=1e-9)


def test_bootstrap_needs_two_batches(rng):
    acc = MinibatchCKA(["a"], ["b"])
    acc.update(layers(rng, 16, [3]), layers(rng, 16, [3]))
    with pytest.raises(BatchShapeError, match="at least 2 batches"):
        acc.bootstrap(100)


def test_without_batch_terms_the_estimate_is_the_same_and_nothing_is_kept(rng):
    feats_a, feats_b = layers(rng, 96, [5, 7]), layers(rng, 96, [4])
    kept = run(MinibatchCKA(["a1", "a2"], ["b"]), feats_a, feats_b, 32)
    lean = MinibatchCKA(["a1", "a2"], ["b"], keep_batch_terms=False)
    np.testing.assert_array_equal(run(lean, feats_a, feats_b, 32).values, kept.values)
    assert lean._per_batch == []
    with pytest.raises(BatchShapeError, match="keep_batch_terms"):
        lean.bootstrap(10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nan_on_a_gpu_is_reported_by_the_result_at_the_latest():
    """On a GPU the check is read once its copy has landed, so it may come a batch late,
    but never later than the result."""
    acc = MinibatchCKA(["stem", "layer1.0"], ["fc"])
    bad = torch.randn(8, 4, device="cuda")
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteActivationError, match=r"'layer1\.0'"):
        acc.update([torch.randn(8, 3, device="cuda"), bad], [torch.randn(8, 2, device="cuda")])
        acc.result()
