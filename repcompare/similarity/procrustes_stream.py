"""Procrustes shape metrics over batches of examples, exactly (Williams et al. 2021).

The shape metrics of :mod:`procrustes` need only the centred cross-moment
``C = Xc^T Yc`` (p x q) and the centred sums of squares ``||Xc||_F^2``,
``||Yc||_F^2``. They are accumulated in float64 with the pairwise update of
Chan, Golub & LeVeque, which equals ``X^T Y - n mean_x mean_y^T`` on the raw
sums but never subtracts two large numbers: a batch of m examples with batch
means (u, v), batch-centred cross-moment D and sums of squares (s, t) merges
into the running (n, mu, nu, C, S, T) as

    C <- C + D + (n m / (n + m)) (u - mu)(v - nu)^T
    S <- S + s + (n m / (n + m)) ||u - mu||^2,     mu <- mu + (m / (n + m)) (u - mu)

(likewise T, nu). The result on the whole sample equals the one-shot value.
Memory is ``p q + p + q`` float64 values; :func:`procrustes_streamable` tells
whether that fits, so a caller can fall back to a fixed sample otherwise.
"""

from __future__ import annotations

import torch

from repcompare.similarity.checks import (
    CONSTANT_RTOL,
    BatchShapeError,
    DegenerateRepresentationError,
    degenerate,
    prepare_pair,
)
from repcompare.similarity.procrustes import (
    alignment_from_moments,
    angular_from_alignment,
    procrustes_from_alignment,
)


def procrustes_stream_bytes(width_x: int, width_y: int) -> int:
    """Bytes of float64 statistics a :class:`StreamingProcrustes` keeps: ``8 (p q + p + q)``."""
    return 8 * (width_x * width_y + width_x + width_y)


def procrustes_streamable(width_x: int, width_y: int, max_bytes: int) -> bool:
    """Whether streaming Procrustes of widths p, q fits in ``max_bytes`` (else use a sample)."""
    return procrustes_stream_bytes(width_x, width_y) <= max_bytes


class StreamingProcrustes:
    """Accumulates the Procrustes shape metrics of one pair (X, Y) over batches, in float64.

    ``update(x_batch, y_batch)`` takes ``(m, ...)`` tensors of the same m
    examples; batches may differ in size. Statistics stay on the device of the
    first batch.
    """

    def __init__(self) -> None:
        self.n_examples = 0
        self._mean_x: torch.Tensor | None = None
        self._mean_y: torch.Tensor | None = None
        self._cross: torch.Tensor | None = None
        self._ss_x: torch.Tensor | None = None
        self._ss_y: torch.Tensor | None = None
        self._raw_x: torch.Tensor | None = None
        self._raw_y: torch.Tensor | None = None

    def update(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> None:
        """Add one batch of examples: X as ``(m, ...)`` and Y as ``(m, ...)``."""
        x, y = prepare_pair(x_batch, y_batch, 1)
        if self._cross is not None:
            x, y = x.to(self._cross.device), y.to(self._cross.device)
            if (x.shape[1], y.shape[1]) != tuple(self._cross.shape):
                raise BatchShapeError(
                    f"a batch of widths {x.shape[1]} x {y.shape[1]} after batches of "
                    f"{tuple(self._cross.shape)}; every batch must hold the same layers"
                )
        m, n = x.shape[0], self.n_examples
        u, v = x.mean(dim=0), y.mean(dim=0)
        xc, yc = x - u, y - v
        if self._cross is None:
            self._mean_x, self._mean_y = torch.zeros_like(u), torch.zeros_like(v)
            self._cross = torch.zeros(len(u), len(v), dtype=torch.float64, device=x.device)
            self._ss_x, self._ss_y, self._raw_x, self._raw_y = (
                torch.zeros((), dtype=torch.float64, device=x.device) for _ in range(4)
            )
        du, dv = u - self._mean_x, v - self._mean_y
        weight = n * m / (n + m)
        self._cross += xc.T @ yc + weight * torch.outer(du, dv)
        self._ss_x += xc.square().sum() + weight * du.square().sum()
        self._ss_y += yc.square().sum() + weight * dv.square().sum()
        self._raw_x += x.square().sum()
        self._raw_y += y.square().sum()
        self._mean_x += (m / (n + m)) * du
        self._mean_y += (m / (n + m)) * dv
        self.n_examples = n + m

    def alignment(self) -> torch.Tensor:
        """``||Xc^T Yc||_* / (||Xc||_F ||Yc||_F)`` over every example so far (0-dim float64)."""
        if self._cross is None:
            raise BatchShapeError("no batch was added, so there is no shape metric to report")
        if self.n_examples < 2:
            raise BatchShapeError("a shape metric needs at least 2 examples")
        for side, ss, raw in (("X", self._ss_x, self._raw_x), ("Y", self._ss_y, self._raw_y)):
            if degenerate(ss, raw, rtol=CONSTANT_RTOL):
                raise DegenerateRepresentationError(
                    f"representation {side} is constant over the examples, so its similarity "
                    "is undefined; check that the layer is not dead for these inputs"
                )
        return alignment_from_moments(self._cross, self._ss_x, self._ss_y)

    def distance(self) -> torch.Tensor:
        """The Procrustes distance ``sqrt(2 - 2 a)`` over every example so far."""
        return procrustes_from_alignment(self.alignment())

    def angle(self) -> torch.Tensor:
        """The angular shape metric ``arccos(a)`` over every example so far."""
        return angular_from_alignment(self.alignment())
