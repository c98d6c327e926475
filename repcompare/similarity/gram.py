"""Gram (kernel) matrices of representations whose rows are examples.

All functions are pure and keep the device of their input. Features are
centred per column before a linear Gram matrix is formed: a Gram matrix of
uncentred ReLU features is dominated by the offset and loses the signal to
rounding in float32 (methods.md, numerical traps). Centring does not change
any HSIC estimate used here, since every estimator centres the Gram matrix
anyway; it only keeps the arithmetic well conditioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repcompare.limits import DEFAULT_RBF_FRACTION, DEFAULT_RBF_MEDIAN

RBF_MEDIANS = ("all", "distinct")


def working_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def as_matrix(x: torch.Tensor) -> torch.Tensor:
    """Flatten a batch ``(n, ...)`` to ``(n, d)`` in its working dtype."""
    if x.ndim == 0:
        raise ValueError("a representation needs a leading example dimension")
    return x.reshape(x.shape[0], -1).to(working_dtype(x))


def centre_columns(x: torch.Tensor) -> torch.Tensor:
    """``X - 1 mean(X)``: each feature centred over the examples.

    The mean is taken in the working dtype: its float32 rounding leaves a
    residual offset of about 1e-7 of the original, which the estimators'
    own centring of the Gram matrix removes. (A float64 mean cost three times
    the Gram product itself on wide layers.)
    """
    return x - x.mean(dim=0, keepdim=True)


def linear_gram(x: torch.Tensor) -> torch.Tensor:
    """``K = Xc Xc^T`` with ``Xc`` the column-centred ``(n, d)`` features."""
    xc = centre_columns(as_matrix(x))
    return xc @ xc.T


@dataclass(frozen=True)
class BatchGram:
    """A batch reduced to its linear Gram ``Xc Xc^T`` (``(m, m)``, in the working dtype of
    the features), which every kernel of this module follows from exactly; the estimators
    take it in place of the features (``features_or_gram``)."""

    matrix: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        return self.matrix.shape

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def to(self, device: torch.device, non_blocking: bool = False) -> BatchGram:
        return BatchGram(self.matrix.to(device, non_blocking=non_blocking))


Batch = torch.Tensor | BatchGram


def features_or_gram(x: torch.Tensor) -> Batch:
    """The smaller of a batch's ``(m, d)`` features and its ``BatchGram``: the features when
    ``d < m``. Either gives every kernel below bit for bit (Gram-first streaming)."""
    width = x[0].numel() if x.shape[0] else 0
    return x if width < x.shape[0] else BatchGram(linear_gram(x))


def batch_linear_gram(x: Batch) -> torch.Tensor:
    """The linear Gram of features, or of a ``BatchGram`` (its matrix)."""
    return x.matrix if isinstance(x, BatchGram) else linear_gram(x)


def squared_distances(x: Batch) -> torch.Tensor:
    """``D_ij = ||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij`` from the linear Gram ``G``, clamped
    at 0 and exactly 0 on the diagonal."""
    gram = batch_linear_gram(x)
    sq_norms = torch.diagonal(gram)
    d2 = (sq_norms[:, None] + sq_norms[None, :] - 2 * gram).clamp_min_(0)
    d2.fill_diagonal_(0)
    return d2


def _middle(values: torch.Tensor) -> torch.Tensor:
    """Median of a 1-D tensor: the mean of the two middle values when the count is even."""
    count = values.numel()
    lower = torch.kthvalue(values, (count + 1) // 2).values
    upper = torch.kthvalue(values, count // 2 + 1).values
    return (lower + upper) / 2


def median_pairwise_distance(sq_dist: torch.Tensor) -> torch.Tensor:
    """Median of ``||x_i - x_j||`` over the pairs ``i < j`` (mean of the two middle values)."""
    n = sq_dist.shape[0]
    if n < 2:
        raise ValueError("a median pairwise distance needs at least 2 examples")
    rows, cols = torch.triu_indices(n, n, offset=1, device=sq_dist.device)
    return _middle(sq_dist[rows, cols].sqrt())


def check_rbf_median(median: str) -> str:
    """``median`` if it names an RBF bandwidth convention, else a ValueError naming them."""
    if median not in RBF_MEDIANS:
        raise ValueError(
            f"unknown RBF median convention {median!r}; use 'all' (Kornblith et al.'s "
            "reference: every n x n squared distance, zero diagonal included) or 'distinct' "
            "(distances over the pairs i < j)"
        )
    return median


def rbf_sigma_squared(
    sq_dist: torch.Tensor, fraction: float = DEFAULT_RBF_FRACTION, median: str = DEFAULT_RBF_MEDIAN
) -> torch.Tensor:
    """The RBF bandwidth ``sigma^2`` from the ``n x n`` squared distances.

    ``median="all"`` (Kornblith et al. 2019's reference code, the default):
    ``sigma^2 = fraction^2 * median of all n^2 entries of D``, zero diagonal
    included. ``median="distinct"``: ``sigma = fraction * median_{i<j} ||x_i - x_j||``.
    """
    check_rbf_median(median)
    if fraction <= 0:
        raise ValueError(f"the RBF bandwidth fraction must be positive, got {fraction}")
    if median == "all":
        if sq_dist.shape[0] < 2:
            raise ValueError("an RBF bandwidth needs at least 2 examples")
        return fraction**2 * _middle(sq_dist.reshape(-1))
    return (fraction * median_pairwise_distance(sq_dist)) ** 2


def rbf_gram(
    x: Batch, fraction: float = DEFAULT_RBF_FRACTION, median: str = DEFAULT_RBF_MEDIAN
) -> torch.Tensor:
    """``K_ij = exp(-||x_i - x_j||^2 / (2 sigma^2))``, sigma^2 from :func:`rbf_sigma_squared`.

    By default sigma^2 is ``fraction^2`` times the median of all ``n^2`` squared
    distances, diagonal included (Kornblith et al. 2019's reference code);
    ``median="distinct"`` uses ``fraction`` times the median distance over the
    pairs ``i < j``. When the median is 0 (every example the same point, or,
    under "all", at least half of the n^2 distances 0) the kernel is the
    all-ones matrix, which the CKA guards then report as degenerate.
    """
    d2 = squared_distances(x)
    sigma2 = rbf_sigma_squared(d2, fraction, median)
    # torch.where, not an if: the choice stays on the device (no host sync per batch)
    return torch.where(sigma2 == 0, torch.ones_like(d2), torch.exp(-d2 / (2 * sigma2)))


def gram(
    x: Batch,
    kernel: str = "linear",
    rbf_fraction: float = DEFAULT_RBF_FRACTION,
    rbf_median: str = DEFAULT_RBF_MEDIAN,
):
    """The Gram matrix of ``x`` (features, or a ``BatchGram``) under ``kernel``
    (``"linear"`` or ``"rbf"``).

    ``rbf_median`` is checked for every kernel, so a misspelt convention is never ignored.
    """
    check_rbf_median(rbf_median)
    if kernel == "linear":
        return batch_linear_gram(x)
    if kernel == "rbf":
        return rbf_gram(x, rbf_fraction, rbf_median)
    raise ValueError(f"unknown kernel {kernel!r}; use 'linear' or 'rbf'")
