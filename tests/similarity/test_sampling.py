import numpy as np
import pytest

from repcompare.similarity import fixed_sample


def test_the_sample_is_the_seeded_permutation_prefix_sorted():
    expected = np.sort(np.random.default_rng(7).permutation(1000)[:50])
    got = fixed_sample(1000, 50, seed=7)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.int64


def test_same_seed_same_subset_other_seed_other_subset():
    a, b, c = fixed_sample(500, 40, 1), fixed_sample(500, 40, 1), fixed_sample(500, 40, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(set(a.tolist())) == 40
    assert np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() < 500


def test_a_larger_sample_contains_a_smaller_one():
    small, large = fixed_sample(300, 20, 3), fixed_sample(300, 90, 3)
    assert set(small.tolist()) <= set(large.tolist())


def test_a_sample_at_least_as_large_as_the_data_is_everything():
    np.testing.assert_array_equal(fixed_sample(12, 12), np.arange(12))
    np.testing.assert_array_equal(fixed_sample(12, 40), np.arange(12))


def test_negative_sizes_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        fixed_sample(10, -1)
