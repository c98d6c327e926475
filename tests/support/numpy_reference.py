"""Independent float64 NumPy references for the similarity tests.

Written from the published formulas (Kornblith et al. 2019; Song et al. 2012;
Nguyen et al. 2021) with explicit centring matrices, and deliberately not
sharing code or tricks (no U-centring, no feature centring) with the package.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def as_f64(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(x.shape[0], -1)


def gram_linear(x) -> np.ndarray:
    x = as_f64(x)
    return x @ x.T


def gram_rbf(x, fraction: float = 0.8, median: str = "all") -> np.ndarray:
    """exp(-d^2 / (2 sigma^2)).

    ``median="all"`` (Kornblith et al.'s reference code): sigma^2 = fraction^2 *
    median of all n^2 squared distances, zero diagonal included.
    ``median="distinct"``: sigma = fraction * median of the distances over pairs i < j.
    """
    x = as_f64(x)
    sq = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    if median == "all":
        sigma2 = fraction**2 * np.median(sq)
    else:
        iu = np.triu_indices(len(x), k=1)
        sigma2 = (fraction * np.median(np.sqrt(sq[iu]))) ** 2
    return np.exp(-sq / (2 * sigma2))


def hsic0(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """tr(K H L H) / (n-1)^2."""
    n = len(k)
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h) / (n - 1) ** 2)


def hsic1(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. (2012) unbiased HSIC, written as in methods.md."""
    n = len(k)
    kt, lt = k.copy(), l.copy()
    np.fill_diagonal(kt, 0)
    np.fill_diagonal(lt, 0)
    one = np.ones(n)
    value = (
        np.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ kt @ lt @ one)
    )
    return float(value / (n * (n - 3)))


def cka(k: np.ndarray, l: np.ndarray, debiased: bool = False) -> float:  # noqa: E741
    hsic = hsic1 if debiased else hsic0
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def kornblith_cka(gram_x: np.ndarray, gram_y: np.ndarray, debiased: bool = False) -> float:
    """Kornblith et al.'s reference code (google-research/representation_similarity)."""

    def center_gram(gram: np.ndarray, unbiased: bool) -> np.ndarray:
        gram = gram.copy()
        if unbiased:
            n = gram.shape[0]
            np.fill_diagonal(gram, 0)
            means = np.sum(gram, 0) / (n - 2)
            means -= np.sum(means) / (2 * (n - 1))
            gram -= means[:, None]
            gram -= means[None, :]
            np.fill_diagonal(gram, 0)
        else:
            means = np.mean(gram, 0)
            means -= np.mean(means) / 2
            gram -= means[:, None]
            gram -= means[None, :]
        return gram

    gx, gy = center_gram(gram_x, debiased), center_gram(gram_y, debiased)
    return float(gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy)))


def feature_space_linear_cka(x, y) -> float:
    """||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred features."""
    x, y = as_f64(x), as_f64(y)
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def minibatch_cka(
    batches_x: Sequence,
    batches_y: Sequence,
    kernel: str = "linear",
    fraction: float = 0.8,
    median: str = "all",
) -> float:
    """Nguyen et al.'s minibatch CKA with HSIC_1, batches weighted by their size."""
    g = gram_linear if kernel == "linear" else (lambda x: gram_rbf(x, fraction, median))
    xy = xx = yy = 0.0
    for bx, by in zip(batches_x, batches_y, strict=True):
        k, l = g(bx), g(by)  # noqa: E741
        w = len(k)
        xy += w * hsic1(k, l)
        xx += w * hsic1(k, k)
        yy += w * hsic1(l, l)
    return xy / np.sqrt(xx * yy)
