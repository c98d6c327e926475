"""RSA against correlation RDMs and Spearman's rank correlation written out in NumPy."""

import numpy as np
import pytest
import torch

from repcompare.similarity import (
    DegenerateRepresentationError,
    average_ranks,
    rdm,
    rsa,
    rsa_from_rdms,
    spearman,
)
from tests.support.layers import related_pair


def reference_ranks(v: np.ndarray) -> np.ndarray:
    """Rank of v_i = #(v < v_i) + (#(v == v_i) + 1) / 2: ties share their average rank."""
    return np.array([np.sum(v < a) + (np.sum(v == a) + 1) / 2 for a in v])


def reference_spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(reference_ranks(a), reference_ranks(b))[0, 1])


def reference_rsa(x, y) -> float:
    """Spearman of the i < j entries of 1 - corrcoef over features."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    iu = np.triu_indices(len(x), k=1)
    return reference_spearman((1 - np.corrcoef(x))[iu], (1 - np.corrcoef(y))[iu])


@pytest.mark.parametrize(("n", "p", "q"), [(30, 5, 5), (25, 4, 12), (20, 40, 8)])
def test_matches_the_reference(rng, n, p, q):
    x, y = related_pair(rng, n, p, q, noise=1.5)
    got = rsa(x, y).item()
    assert got == pytest.approx(reference_rsa(x.numpy(), y.numpy()), abs=1e-12)
    assert 0.05 < got < 0.95


def test_rdm_is_one_minus_the_row_correlation(rng):
    x = rng.normal(size=(9, 6))
    np.testing.assert_allclose(rdm(torch.from_numpy(x)).numpy(), 1 - np.corrcoef(x), atol=1e-12)


def test_ranks_average_ties():
    v = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    got = average_ranks(torch.from_numpy(v)).numpy()
    np.testing.assert_array_equal(got, [5.0, 1.5, 5.0, 3.0, 5.0, 1.5])
    np.testing.assert_array_equal(got, reference_ranks(v))


def test_spearman_with_ties_matches_the_reference(rng):
    a, b = rng.integers(0, 5, size=60).astype(float), rng.integers(0, 4, size=60).astype(float)
    b = b + (a > 2)
    got = spearman(torch.from_numpy(a), torch.from_numpy(b)).item()
    assert got == pytest.approx(reference_spearman(a, b), abs=1e-12)


def test_a_monotone_transform_of_the_dissimilarities_changes_nothing(rng):
    x, y = related_pair(rng, 25, 6, 6, noise=1.5)
    rx, ry = rdm(x), rdm(y)
    base = rsa_from_rdms(rx, ry).item()
    assert base == pytest.approx(rsa(x, y).item(), abs=1e-15)
    assert rsa_from_rdms(torch.exp(3 * rx), ry.clamp_min(0) ** 3).item() == pytest.approx(
        base, abs=1e-12
    )
    assert rsa_from_rdms(-rx, ry).item() == pytest.approx(-base, abs=1e-12)


def test_per_example_scale_and_offset_leave_rsa_unchanged(rng):
    x, y = related_pair(rng, 25, 6, 6, noise=1.5)
    scale = torch.from_numpy(rng.uniform(0.5, 4, size=(25, 1)))
    shift = torch.from_numpy(rng.normal(size=(25, 1)))
    assert rsa(scale * x + shift, y).item() == pytest.approx(rsa(x, y).item(), abs=1e-12)
    assert rsa(x, x).item() == pytest.approx(1.0, abs=1e-12)


def test_an_example_constant_over_its_features_is_refused(rng):
    x = torch.from_numpy(rng.normal(size=(10, 4)))
    y = x.clone()
    y[2] = 0.0
    with pytest.raises(DegenerateRepresentationError, match="representation Y has 1 example"):
        rsa(x, y)
