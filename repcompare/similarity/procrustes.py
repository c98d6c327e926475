"""Orthogonal Procrustes distance and angular shape metric (Williams et al. 2021).

"Generalized Shape Metrics on Neural Representations" (NeurIPS 2021). With
X (n x p) and Y (n x q) column-centred and scaled to unit Frobenius norm, and
the narrower one implicitly zero-padded to the wider width,

    alignment  a = ||X^T Y||_*                  (nuclear norm, in [0, 1])
    Procrustes d = min_{Q orthogonal} ||X - Y Q||_F = sqrt(2 - 2 a)   in [0, sqrt(2)]
    angular    theta = arccos(a)                                     in [0, pi/2]

Zero padding never needs forming: X^T Y is p x q and its singular values are
those of the padded product. Both distances are metrics (symmetric, triangle
inequality, 0 iff X and Y are equal up to a rotation). Only the centred
cross-moment X^T Y and the two centred sums of squares are needed, so the
measure streams (:mod:`procrustes_stream`); on the whole data the one-shot
functions compute the residual of the minimising rotation instead, which
stays exact near 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from repcompare.similarity.checks import centred_float64, prepare_pair
from repcompare.similarity.result import clip_rounding


def rotate_to_rows(xc: torch.Tensor) -> torch.Tensor:
    """An ``(n, min(n, p))`` matrix ``Xc V`` with ``V`` orthonormal columns spanning Xc's rows.

    When ``p > n``, ``Xc^T = Q R`` (QR, Q p x n) gives ``Xc Q = R^T``: the same
    representation up to an orthogonal map of the features, which leaves every
    orthogonally invariant measure unchanged and keeps ``X^T Y`` at most n x n.
    """
    n, p = xc.shape
    if p <= n:
        return xc
    _, r = torch.linalg.qr(xc.T)
    return r.T


def alignment_from_moments(
    cross: torch.Tensor, sq_norm_x: torch.Tensor, sq_norm_y: torch.Tensor
) -> torch.Tensor:
    """``a = ||Xc^T Yc||_* / (||Xc||_F ||Yc||_F)`` from the centred moments, clipped to [0, 1].

    ``cross`` is ``Xc^T Yc``; ``sq_norm_*`` are ``||Xc||_F^2``. An excess over 1
    beyond rounding (Cauchy-Schwarz bounds ``a`` by 1) is a bug and raises.
    """
    value = torch.linalg.svdvals(cross).sum() / torch.sqrt(sq_norm_x * sq_norm_y)
    clip_rounding(np.asarray(value.item()))
    return value.clamp(0.0, 1.0)


def procrustes_from_alignment(alignment: torch.Tensor) -> torch.Tensor:
    """``d = sqrt(2 - 2 a)``, rounding below 0 clamped."""
    return torch.sqrt((2 - 2 * alignment).clamp_min(0.0))


def angular_from_alignment(alignment: torch.Tensor) -> torch.Tensor:
    """``theta = arccos(a)`` in [0, pi/2] for ``a`` in [0, 1]."""
    return torch.arccos(alignment.clamp(0.0, 1.0)).clamp(0.0, math.pi / 2)


def unit_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """X and Y column-centred, rotated to at most n columns, at unit Frobenius norm (float64)."""
    x, y = prepare_pair(x, y, 2)
    xc = rotate_to_rows(centred_float64(x, "X"))
    yc = rotate_to_rows(centred_float64(y, "Y"))
    return xc / xc.norm(), yc / yc.norm()


def shape_alignment(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||X^T Y||_*`` of the centred, unit-Frobenius-norm ``(n, ...)`` X and Y (float64, 0-dim).

    A similarity in [0, 1]: 1 iff X and Y are equal up to rotation and scale.
    """
    xu, yu = unit_pair(x, y)
    return alignment_from_moments(xu.T @ yu, xu.square().sum(), yu.square().sum())


def procrustes_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Orthogonal Procrustes distance ``sqrt(2 - 2 ||X^T Y||_*)`` in [0, sqrt(2)] (a distance).

    Computed as the residual ``||X - Y U V^T||_F`` of the minimising map
    (``Y^T X = U S V^T``, X the wider side), which is exact near 0 where
    ``sqrt(2 - 2 a)`` would keep ``sqrt(eps) ~ 1.5e-8`` of rounding.
    """
    xu, yu = unit_pair(x, y)
    if yu.shape[1] > xu.shape[1]:  # the metric is symmetric; U must be square
        xu, yu = yu, xu
    u, _, vt = torch.linalg.svd(yu.T @ xu, full_matrices=False)
    return (xu - yu @ (u @ vt)).norm().clamp(0.0, math.sqrt(2))


def angular_shape_metric(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Angular shape metric ``arccos(||X^T Y||_*)`` in [0, pi/2] radians (a distance).

    Computed as ``2 arcsin(d / 2)`` from the Procrustes distance d (the same
    angle, since ``d^2 = 2 - 2 cos theta``), exact near 0.
    """
    d = procrustes_distance(x, y)
    return (2 * torch.arcsin(d / 2)).clamp(0.0, math.pi / 2)
