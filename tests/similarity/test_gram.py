import numpy as np
import pytest
import torch

from repcompare.similarity import cka
from repcompare.similarity.gram import (
    centre_columns,
    gram,
    linear_gram,
    median_pairwise_distance,
    rbf_gram,
    rbf_sigma_squared,
    squared_distances,
)
from tests.support import numpy_reference as ref


def test_linear_gram_is_the_double_centred_gram(rng):
    x = rng.normal(size=(12, 5)) + 3.0
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    expected = h @ ref.gram_linear(x) @ h
    np.testing.assert_allclose(linear_gram(torch.from_numpy(x)).numpy(), expected, atol=1e-12)


def test_centre_columns_gives_zero_column_means(rng):
    x = torch.from_numpy(rng.normal(size=(20, 3)) + 100.0)
    assert torch.allclose(centre_columns(x).mean(0), torch.zeros(3, dtype=torch.float64))


def kornblith_rbf(x: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """Kornblith et al.'s reference ``rbf(x, threshold)``, written out from its description."""
    gx = x @ x.T
    kx = np.diag(gx)[:, None] - gx  # diag(GX) - GX, row i minus column j
    kx = kx + kx.T  # ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j
    sigma2 = threshold**2 * np.median(kx)  # every n x n entry, zero diagonal included
    return np.exp(-kx / (2 * sigma2))


def kornblith_linear_cka(gram_x: np.ndarray, gram_y: np.ndarray) -> float:
    """Their ``cka(gram_x, gram_y)``: centre both Gram matrices, then a normalised inner product."""
    n = len(gram_x)
    h = np.eye(n) - np.ones((n, n)) / n
    gx, gy = h @ gram_x @ h, h @ gram_y @ h
    return float(np.sum(gx * gy) / (np.linalg.norm(gx) * np.linalg.norm(gy)))


def distinct_pairs_rbf(x: np.ndarray, fraction: float) -> np.ndarray:
    """The previous default: sigma = fraction * median over i < j of ||x_i - x_j||."""
    n = len(x)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    sigma = fraction * np.median([d[i, j] for i in range(n) for j in range(i + 1, n)])
    return np.exp(-(d**2) / (2 * sigma**2))


@pytest.mark.parametrize("fraction", [0.8, 0.3, 2.0])
@pytest.mark.parametrize("n", [16, 17])  # n^2 even and odd: the median of two middle values
def test_default_rbf_is_kornblith_reference(rng, fraction, n):
    x = rng.normal(size=(n, 6)) + 2.0
    got = rbf_gram(torch.from_numpy(x), fraction).numpy()
    np.testing.assert_allclose(got, kornblith_rbf(x, fraction), atol=1e-10, rtol=0)
    np.testing.assert_allclose(got, ref.gram_rbf(x, fraction), atol=1e-12)


@pytest.mark.parametrize("fraction", [0.8, 0.5])
def test_default_rbf_cka_is_kornblith_reference(rng, fraction):
    x = rng.normal(size=(30, 8))
    y = np.tanh(x @ rng.normal(size=(8, 5))) + 0.5 * rng.normal(size=(30, 5))
    got = cka(torch.from_numpy(x), torch.from_numpy(y), kernel="rbf", rbf_fraction=fraction)
    expected = kornblith_linear_cka(kornblith_rbf(x, fraction), kornblith_rbf(y, fraction))
    assert got.item() == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("fraction", [0.8, 0.3, 2.0])
@pytest.mark.parametrize("n", [16, 17])
def test_distinct_rbf_keeps_the_old_values(rng, fraction, n):
    x = rng.normal(size=(n, 6))
    got = rbf_gram(torch.from_numpy(x), fraction, median="distinct").numpy()
    np.testing.assert_allclose(got, distinct_pairs_rbf(x, fraction), atol=1e-12, rtol=0)
    np.testing.assert_allclose(got, ref.gram_rbf(x, fraction, "distinct"), atol=1e-12)


def test_the_two_bandwidth_conventions_differ(rng):
    x = torch.from_numpy(rng.normal(size=(12, 4)))
    d2 = squared_distances(x)
    ratio = (rbf_sigma_squared(d2) / rbf_sigma_squared(d2, median="distinct")).item()
    assert ratio < 0.99  # the zero diagonal pulls the reference bandwidth down


def test_gram_threads_the_median_convention(rng):
    x = torch.from_numpy(rng.normal(size=(10, 3)))
    assert torch.equal(gram(x, "rbf", 0.5, "distinct"), rbf_gram(x, 0.5, "distinct"))
    assert torch.equal(gram(x, "rbf", 0.5), rbf_gram(x, 0.5, "all"))


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_unknown_median_convention_is_refused(kernel):
    with pytest.raises(ValueError, match="unknown RBF median convention 'mean'; use 'all'"):
        gram(torch.ones(4, 2), kernel, rbf_median="mean")


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
