"""PWCCA against Morcos et al.'s weighting written out in NumPy."""

import numpy as np
import pytest
import torch

from repcompare.similarity import canonical_correlations, pwcca
from tests.support.layers import related_pair


def reference_pwcca(x, y) -> float:
    """Canonical directions from the eigenproblem Sxx^-1 Sxy Syy^-1 Syx a = rho^2 a; variates
    h_i = Xc a_i orthonormalised by QR (as Morcos et al.'s code); alpha_i = sum_j |<h_i, x_j>|."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    sxy = xc.T @ yc
    m = np.linalg.solve(xc.T @ xc, sxy) @ np.linalg.solve(yc.T @ yc, sxy.T)
    rho2, a = np.linalg.eig(m)
    order = np.argsort(-rho2.real)[: min(x.shape[1], y.shape[1])]
    rho, a = np.sqrt(np.clip(rho2.real[order], 0, 1)), a.real[:, order]
    h, _ = np.linalg.qr(xc @ a)
    alpha = np.abs(h.T @ xc).sum(axis=1)
    return float(np.sum(alpha / alpha.sum() * rho))


@pytest.mark.parametrize(("n", "p", "q"), [(80, 6, 6), (90, 4, 10), (100, 12, 5), (60, 9, 9)])
def test_matches_the_reference(rng, n, p, q):
    x, y = related_pair(rng, n, p, q, noise=1.5)
    x = x * torch.from_numpy(np.geomspace(3, 0.3, p)) + 2.0  # unequal weights
    assert pwcca(x, y).item() == pytest.approx(reference_pwcca(x, y), abs=1e-9)


def test_weighting_differs_from_the_plain_mean(rng):
    x, y = related_pair(rng, 120, 6, 6, noise=1.5)
    x = x * torch.from_numpy(np.geomspace(5, 0.1, 6))
    mean = canonical_correlations(x, y).mean().item()
    assert abs(pwcca(x, y).item() - mean) > 0.01


def test_an_invertible_linear_map_scores_one(rng):
    x = torch.from_numpy(rng.normal(size=(60, 8)))
    mix = torch.from_numpy(np.diag(np.geomspace(0.05, 20, 8)) @ rng.normal(size=(8, 8)))
    assert pwcca(x, x @ mix).item() == pytest.approx(1.0, abs=1e-10)
    assert pwcca(x @ mix, x).item() == pytest.approx(1.0, abs=1e-10)


def test_weights_come_from_the_first_argument(rng):
    x, y = related_pair(rng, 100, 4, 8, noise=1.5)
    assert abs(pwcca(x, y).item() - pwcca(y, x).item()) > 1e-4
    assert pwcca(y, x).item() == pytest.approx(reference_pwcca(y, x), abs=1e-9)
