"""Procrustes shape metrics against the orthogonal Procrustes problem solved explicitly."""

import math

import numpy as np
import pytest
import torch

from repcompare.similarity import (
    DegenerateRepresentationError,
    angular_shape_metric,
    cka,
    procrustes_distance,
    shape_alignment,
)
from tests.support.layers import related_pair

SHAPES = [(40, 6, 6), (40, 5, 11), (50, 12, 3), (15, 30, 8), (12, 40, 25)]  # incl. p > n


def padded_unit(x: np.ndarray, width: int) -> np.ndarray:
    """Centred, unit Frobenius norm, zero-padded to ``width`` columns."""
    x = x - x.mean(axis=0)
    x = x / np.sqrt(np.sum(x**2))
    return np.hstack([x, np.zeros((len(x), width - x.shape[1]))])


def reference(x, y) -> tuple[float, float]:
    """(Procrustes distance, angle) from the minimising rotation Q = U V^T of Y^T X = U S V^T."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    width = max(x.shape[1], y.shape[1])
    xu, yu = padded_unit(x, width), padded_unit(y, width)
    u, _, vt = np.linalg.svd(yu.T @ xu)
    q = u @ vt
    distance = float(np.sqrt(np.sum((xu - yu @ q) ** 2)))
    angle = float(np.arccos(np.clip(np.sum(xu * (yu @ q)), -1, 1)))
    return distance, angle


@pytest.mark.parametrize(("n", "p", "q"), SHAPES)
def test_matches_the_explicit_procrustes_solution(rng, n, p, q):
    x, y = related_pair(rng, n, p, q)
    x = x + 4.0  # an offset that centring must remove
    distance, angle = reference(x.numpy(), y.numpy())
    assert procrustes_distance(x, y).item() == pytest.approx(distance, abs=1e-10)
    assert angular_shape_metric(x, y).item() == pytest.approx(angle, abs=1e-10)
    assert shape_alignment(x, y).item() == pytest.approx(math.cos(angle), abs=1e-10)


@pytest.mark.parametrize(("n", "p", "q"), SHAPES)
def test_the_explicit_rotation_beats_random_rotations(rng, n, p, q):
    """The reference really is the minimum: no random rotation does better."""
    x, y = related_pair(rng, n, p, q)
    distance, _ = reference(x.numpy(), y.numpy())
    width = max(p, q)
    xu, yu = padded_unit(x.numpy(), width), padded_unit(y.numpy(), width)
    for _ in range(20):
        q_rand, _ = np.linalg.qr(rng.normal(size=(width, width)))
        assert np.sqrt(np.sum((xu - yu @ q_rand) ** 2)) >= distance - 1e-12


def test_rotated_copy_is_at_distance_zero_and_cka_one(rng):
    x = torch.from_numpy(rng.normal(size=(60, 10)))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    rotated = 3.5 * x @ torch.from_numpy(q) - 2.0
    assert procrustes_distance(x, rotated).item() == pytest.approx(0.0, abs=1e-10)
    assert angular_shape_metric(x, rotated).item() == pytest.approx(0.0, abs=1e-10)
    assert shape_alignment(x, rotated).item() == pytest.approx(1.0, abs=1e-12)
    assert cka(x, rotated).item() == pytest.approx(1.0, abs=1e-12)


def test_zero_padding_makes_a_wider_embedding_equal(rng):
    x = rng.normal(size=(30, 4))
    q, _ = np.linalg.qr(rng.normal(size=(9, 9)))
    wider = np.hstack([x, np.zeros((30, 5))]) @ q  # X embedded in 9 dimensions, then rotated
    got = procrustes_distance(torch.from_numpy(x), torch.from_numpy(wider)).item()
    assert got == pytest.approx(0.0, abs=1e-10)


def test_an_invertible_non_orthogonal_map_moves_procrustes(rng):
    x = torch.from_numpy(rng.normal(size=(80, 10)))
    stretch = np.diag(np.geomspace(0.1, 10.0, 10)) @ rng.normal(size=(10, 10))
    got = procrustes_distance(x, x @ torch.from_numpy(stretch)).item()
    assert got > 0.3
    assert got == pytest.approx(reference(x.numpy(), x.numpy() @ stretch)[0], abs=1e-10)


def test_metric_properties(rng):
    x, y = related_pair(rng, 40, 7, 9)
    z = torch.from_numpy(rng.normal(size=(40, 5)))
    for metric in (procrustes_distance, angular_shape_metric):
        assert metric(x, y).item() == pytest.approx(metric(y, x).item(), abs=1e-12)
        assert metric(x, z).item() <= metric(x, y).item() + metric(y, z).item() + 1e-12
    assert 0 < procrustes_distance(x, z).item() <= math.sqrt(2)
    assert 0 < angular_shape_metric(x, z).item() <= math.pi / 2


def test_procrustes_and_angle_are_two_readings_of_one_alignment(rng):
    x, y = related_pair(rng, 30, 6, 6)
    a = shape_alignment(x, y).item()
    assert procrustes_distance(x, y).item() == pytest.approx(math.sqrt(2 - 2 * a), abs=1e-12)
    assert angular_shape_metric(x, y).item() == pytest.approx(math.acos(a), abs=1e-12)


def test_float32_input_is_computed_in_float64(rng):
    x, y = related_pair(rng, 30, 6, 8)
    got = procrustes_distance(x.float(), y.float())
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(reference(x.float().double(), y.float().double())[0])


def test_constant_representation_is_refused(rng):
    x = torch.from_numpy(rng.normal(size=(10, 3)))
    with pytest.raises(DegenerateRepresentationError, match="representation Y is constant"):
        procrustes_distance(x, torch.full((10, 4), 2.0))
