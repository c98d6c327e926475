"""Streaming Procrustes over batches against the one-shot value and a raw-sum reference."""

import numpy as np
import pytest
import torch

from repcompare.similarity import (
    BatchShapeError,
    DegenerateRepresentationError,
    StreamingProcrustes,
    angular_shape_metric,
    procrustes_distance,
    procrustes_stream_bytes,
    procrustes_streamable,
)
from tests.support.layers import related_pair


def fed(x: torch.Tensor, y: torch.Tensor, sizes: list[int]) -> StreamingProcrustes:
    acc, start = StreamingProcrustes(), 0
    for size in sizes:
        acc.update(x[start : start + size], y[start : start + size])
        start += size
    assert start == len(x)
    return acc


def raw_sum_distance(x: np.ndarray, y: np.ndarray) -> float:
    """sqrt(2 - 2 ||C||_* / sqrt(Sx Sy)) with C = X^T Y - n mx my^T from the raw sums."""
    n = len(x)
    mx, my = x.sum(0) / n, y.sum(0) / n
    c = x.T @ y - n * np.outer(mx, my)
    sx, sy = np.sum(x**2) - n * mx @ mx, np.sum(y**2) - n * my @ my
    alignment = np.linalg.svd(c, compute_uv=False).sum() / np.sqrt(sx * sy)
    return float(np.sqrt(max(2 - 2 * alignment, 0.0)))


@pytest.mark.parametrize(
    ("n", "p", "q", "sizes"),
    [
        (90, 6, 9, [32, 32, 26]),
        (90, 12, 4, [1, 40, 7, 42]),
        (20, 35, 8, [5, 5, 5, 5]),  # p > n
        (60, 5, 5, [60]),
    ],
)
def test_batches_equal_the_one_shot_value(rng, n, p, q, sizes):
    x, y = related_pair(rng, n, p, q)
    x, y = x + 3.0, y - 1.0
    acc = fed(x, y, sizes)
    assert acc.n_examples == n
    assert acc.distance().item() == pytest.approx(procrustes_distance(x, y).item(), abs=1e-10)
    assert acc.angle().item() == pytest.approx(angular_shape_metric(x, y).item(), abs=1e-10)
    assert acc.distance().item() == pytest.approx(raw_sum_distance(x.numpy(), y.numpy()), abs=1e-9)


def test_large_offsets_do_not_cancel(rng):
    """A raw-sum update would lose the signal under an offset of 1e6; the pairwise one does not."""
    x, y = related_pair(rng, 64, 5, 7)
    expected = procrustes_distance(x, y).item()
    acc = fed(x + 1e6, y - 1e6, [16, 16, 16, 16])
    assert acc.distance().item() == pytest.approx(expected, abs=1e-8)


def test_float32_batches_accumulate_in_float64(rng):
    x, y = related_pair(rng, 40, 4, 6)
    acc = fed(x.float(), y.float(), [20, 20])
    expected = procrustes_distance(x.float().double(), y.float().double()).item()
    assert acc.distance().dtype == torch.float64
    assert acc.distance().item() == pytest.approx(expected, abs=1e-10)


def test_memory_bound_decides_streaming():
    assert procrustes_stream_bytes(100, 200) == 8 * (100 * 200 + 300)
    assert procrustes_streamable(100, 200, 8 * (100 * 200 + 300))
    assert not procrustes_streamable(100, 200, 8 * (100 * 200 + 300) - 1)
    assert not procrustes_streamable(200_000, 200_000, 2**34)


def test_refusals(rng):
    acc = StreamingProcrustes()
    with pytest.raises(BatchShapeError, match="no batch was added"):
        acc.distance()
    acc.update(torch.ones(1, 3), torch.ones(1, 2))
    with pytest.raises(BatchShapeError, match="at least 2 examples"):
        acc.distance()
    with pytest.raises(BatchShapeError, match="widths 4 x 2"):
        acc.update(torch.ones(3, 4), torch.ones(3, 2))
    acc.update(torch.ones(3, 3), torch.from_numpy(rng.normal(size=(3, 2))))
    with pytest.raises(DegenerateRepresentationError, match="representation X is constant"):
        acc.distance()
