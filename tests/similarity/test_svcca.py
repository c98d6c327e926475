"""SVCCA against an SVD truncation and textbook CCA written out in NumPy."""

import numpy as np
import pytest
import torch

from repcompare.similarity import svcca, svd_reduce


def reference_reduce(x: np.ndarray, keep: float) -> np.ndarray:
    """Top singular directions of centred X holding ``keep`` of sum s^2, as U_k diag(s_k)."""
    xc = x - x.mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    k = 1
    while k < len(s) and np.sum(s[:k] ** 2) / np.sum(s**2) < keep:
        k += 1
    return u[:, :k] * s[:k]


def reference_cca(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Canonical correlations: eigenvalues of Sxx^+ Sxy Syy^+ Syx are rho^2."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxy = xc.T @ yc
    m = np.linalg.pinv(xc.T @ xc) @ sxy @ np.linalg.pinv(yc.T @ yc) @ sxy.T
    r = min(np.linalg.matrix_rank(xc), np.linalg.matrix_rank(yc))
    rho2 = np.sort(np.linalg.eigvals(m).real)[::-1][:r]
    return np.sqrt(np.clip(rho2, 0, 1))


def reference_svcca(x, y, keep: float = 0.99) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(reference_cca(reference_reduce(x, keep), reference_reduce(y, keep)).mean())


def low_rank_pair(rng, n: int, p: int, q: int):
    """Representations whose variance decays, so a 99% truncation drops directions."""
    x = rng.normal(size=(n, p)) * np.geomspace(1, 1e-3, p)
    y = x[:, : min(p, q)] @ rng.normal(size=(min(p, q), q)) + 0.5 * rng.normal(size=(n, q))
    return torch.from_numpy(x), torch.from_numpy(y * np.geomspace(1, 0.05, q))


@pytest.mark.parametrize(("n", "p", "q"), [(80, 10, 10), (90, 6, 14), (60, 20, 5), (20, 30, 8)])
@pytest.mark.parametrize("keep", [0.99, 0.9, 1.0])
def test_matches_the_reference(rng, n, p, q, keep):
    x, y = low_rank_pair(rng, n, p, q)
    got = svcca(x, y, keep=keep).item()
    assert got == pytest.approx(reference_svcca(x.numpy(), y.numpy(), keep), abs=1e-8)


def test_the_truncation_keeps_the_requested_variance(rng):
    x, _ = low_rank_pair(rng, 100, 12, 4)
    reduced = svd_reduce(x, 0.9).numpy()
    expected = reference_reduce(x.numpy(), 0.9)
    assert reduced.shape == expected.shape
    assert 1 < reduced.shape[1] < 12
    np.testing.assert_allclose(np.abs(reduced), np.abs(expected), atol=1e-10)


def test_an_invertible_linear_map_with_everything_kept_scores_one(rng):
    x = torch.from_numpy(rng.normal(size=(60, 8)))
    mix = torch.from_numpy(np.diag(np.geomspace(0.05, 20, 8)) @ rng.normal(size=(8, 8)))
    assert svcca(x, x @ mix, keep=1.0).item() == pytest.approx(1.0, abs=1e-10)


def test_rotation_and_scale_do_not_change_svcca(rng):
    x, y = low_rank_pair(rng, 80, 9, 7)
    q, _ = np.linalg.qr(rng.normal(size=(9, 9)))
    base = svcca(x, y).item()
    assert base < 0.95
    assert svcca(4.0 * x @ torch.from_numpy(q) + 1.0, y).item() == pytest.approx(base, abs=1e-10)


def test_keep_must_be_a_fraction():
    with pytest.raises(ValueError, match=r"fraction of variance kept must be in \(0, 1\]"):
        svcca(torch.randn(10, 3), torch.randn(10, 3), keep=1.5)
