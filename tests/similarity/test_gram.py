import numpy as np
import pytest
import torch

from repcompare.similarity.gram import (
    centre_columns,
    gram,
    linear_gram,
    median_pairwise_distance,
    rbf_gram,
    squared_distances,
)
from tests.similarity import numpy_reference as ref


def test_linear_gram_is_the_double_centred_gram(rng):
    x = rng.normal(size=(12, 5)) + 3.0
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    expected = h @ ref.gram_linear(x) @ h
    np.testing.assert_allclose(linear_gram(torch.from_numpy(x)).numpy(), expected, atol=1e-12)


def test_centre_columns_gives_zero_column_means(rng):
    x = torch.from_numpy(rng.normal(size=(20, 3)) + 100.0)
    assert torch.allclose(centre_columns(x).mean(0), torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("fraction", [0.8, 0.3, 2.0])
def test_rbf_gram_matches_reference(rng, fraction):
    x = rng.normal(size=(17, 6))
    got = rbf_gram(torch.from_numpy(x), fraction).numpy()
    np.testing.assert_allclose(got, ref.gram_rbf(x, fraction), atol=1e-12)


@pytest.mark.parametrize("n", [5, 6, 9])
def test_median_distance_matches_numpy_for_odd_and_even_pair_counts(rng, n):
    x = torch.from_numpy(rng.normal(size=(n, 4)))
    d = torch.cdist(x, x).numpy()[np.triu_indices(n, k=1)]
    got = median_pairwise_distance(squared_distances(x))
    assert got.item() == pytest.approx(float(np.median(d)), abs=1e-12)


def test_rbf_of_identical_points_is_all_ones():
    assert torch.equal(rbf_gram(torch.ones(5, 3)), torch.ones(5, 5))


def test_float16_input_is_computed_in_float32(rng):
    x = torch.from_numpy(rng.normal(size=(8, 4))).half()
    assert linear_gram(x).dtype == torch.float32


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown kernel 'cosine'"):
        gram(torch.ones(4, 2), "cosine")
