"""CCA via orthonormal bases against the textbook whitened cross-covariance in NumPy."""

import numpy as np
import pytest
import torch

from repcompare.similarity import DegenerateRepresentationError, canonical_correlations, cca
from tests.support.layers import related_pair


def inverse_sqrt(s: np.ndarray, rtol: float = 1e-10) -> np.ndarray:
    """S^{-1/2} of a symmetric PSD matrix on its range (eigenvalues below rtol * max dropped)."""
    w, v = np.linalg.eigh(s)
    keep = w > rtol * w.max()
    return v[:, keep] @ np.diag(w[keep] ** -0.5) @ v[:, keep].T


def reference_cca(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Singular values of Sxx^{-1/2} Sxy Syy^{-1/2} (descending, min(rank X, rank Y) of them)
    and the X canonical variates Xc Sxx^{-1/2} u_i."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    wx, wy = inverse_sqrt(xc.T @ xc), inverse_sqrt(yc.T @ yc)
    u, s, _ = np.linalg.svd(wx @ (xc.T @ yc) @ wy)
    r = min(np.linalg.matrix_rank(xc), np.linalg.matrix_rank(yc))
    return s[:r], xc @ wx @ u[:, :r]


SHAPES = [(60, 5, 5), (80, 4, 9), (70, 12, 3), (25, 30, 6), (20, 40, 35)]  # incl. p > n


@pytest.mark.parametrize(("n", "p", "q"), SHAPES)
def test_correlations_match_the_whitened_reference(rng, n, p, q):
    x, y = related_pair(rng, n, p, q, noise=2.0)
    expected, _ = reference_cca(x + 5.0, y)
    got = canonical_correlations(x + 5.0, y).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-8, rtol=0)


def test_correlations_differ_from_one_when_n_is_large(rng):
    """So the test above checks values, not a row of ones."""
    x, y = related_pair(rng, 200, 5, 6, noise=2.0)
    rho = canonical_correlations(x, y).numpy()
    assert rho.max() < 0.99
    assert rho.min() < 0.5


@pytest.mark.parametrize(("n", "p", "q"), [(60, 5, 5), (80, 4, 9)])
def test_variates_are_the_reference_ones_up_to_sign(rng, n, p, q):
    x, y = related_pair(rng, n, p, q, noise=2.0)
    result = cca(x, y)
    _, expected = reference_cca(x, y)
    got = result.variates_x.numpy()
    np.testing.assert_allclose(np.abs(np.sum(got * expected, axis=0)), 1.0, atol=1e-8)
    np.testing.assert_allclose(got.T @ got, np.eye(got.shape[1]), atol=1e-10)
    corr = np.sum(result.variates_x.numpy() * result.variates_y.numpy(), axis=0)
    np.testing.assert_allclose(corr, result.correlations.numpy(), atol=1e-10)


def test_an_invertible_linear_map_gives_all_ones(rng):
    x = torch.from_numpy(rng.normal(size=(50, 8)))
    mix = torch.from_numpy(np.diag(np.geomspace(0.05, 20, 8)) @ rng.normal(size=(8, 8)))
    np.testing.assert_allclose(canonical_correlations(x, x @ mix - 3.0).numpy(), 1.0, atol=1e-10)


def test_collinear_features_are_dropped_not_inverted(rng):
    a = rng.normal(size=(60, 4))
    x = np.hstack([a, a @ rng.normal(size=(4, 3))])  # rank 4 in 7 columns
    y = a @ rng.normal(size=(4, 5)) + rng.normal(size=(60, 5))
    got = canonical_correlations(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    expected, _ = reference_cca(a, y)
    assert got.shape == (4,)
    np.testing.assert_allclose(got, expected, atol=1e-8)


def test_constant_representation_is_refused(rng):
    with pytest.raises(DegenerateRepresentationError, match="representation X is constant"):
        canonical_correlations(torch.ones(10, 3), torch.from_numpy(rng.normal(size=(10, 2))))
