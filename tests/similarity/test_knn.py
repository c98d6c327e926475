"""Mutual k-NN alignment against neighbour sets found one example at a time in NumPy."""

import numpy as np
import pytest
import torch

from repcompare.similarity import DegenerateRepresentationError, knn_indices, mutual_knn
from tests.support.layers import related_pair


def reference_neighbours(x: np.ndarray, k: int) -> list[set[int]]:
    """For each i, the k other examples of largest cosine similarity to x_i."""
    out = []
    for i in range(len(x)):
        cosine = {
            j: float(x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])))
            for j in range(len(x))
            if j != i
        }
        out.append(set(sorted(cosine, key=lambda j: -cosine[j])[:k]))
    return out


def reference_mutual_knn(x, y, k: int) -> float:
    nx = reference_neighbours(np.asarray(x, dtype=np.float64), k)
    ny = reference_neighbours(np.asarray(y, dtype=np.float64), k)
    return float(np.mean([len(a & b) / k for a, b in zip(nx, ny, strict=True)]))


@pytest.mark.parametrize(("n", "p", "q", "k"), [(40, 5, 5, 3), (50, 4, 12, 10), (30, 45, 8, 5)])
def test_matches_the_reference(rng, n, p, q, k):
    x, y = related_pair(rng, n, p, q, noise=0.7)
    got = mutual_knn(x, y, k).item()
    expected = reference_mutual_knn(x.numpy(), y.numpy(), k)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0 < got < 1


def test_a_hand_counted_example():
    """k = 1 on unit vectors at these angles: shared nearest neighbours for examples 0 and 3."""

    def at(degrees):
        rad = np.radians(degrees)
        return torch.from_numpy(np.stack([np.cos(rad), np.sin(rad)], axis=1))

    x, y = at([0, 10, 90, 100]), at([0, 80, 90, 170])
    assert knn_indices(x, 1).flatten().tolist() == [1, 0, 3, 2]
    assert knn_indices(y, 1).flatten().tolist() == [1, 2, 1, 2]
    assert mutual_knn(x, y, 1).item() == 0.5


def test_identical_neighbourhoods_give_one(rng):
    x = torch.from_numpy(rng.normal(size=(40, 6)))
    q, _ = np.linalg.qr(rng.normal(size=(9, 9)))
    same_cosines = 2.5 * torch.cat([x, torch.zeros(40, 3, dtype=x.dtype)], 1) @ torch.from_numpy(q)
    assert mutual_knn(x, same_cosines, 5).item() == 1.0
    assert mutual_knn(x, x, 39).item() == 1.0


def test_independent_representations_score_near_chance(rng):
    x = torch.from_numpy(rng.normal(size=(200, 8)))
    y = torch.from_numpy(rng.normal(size=(200, 8)))
    assert mutual_knn(x, y, 10).item() < 0.15  # chance is k / (n - 1) = 0.05


def test_k_must_fit_the_sample(rng):
    x = torch.from_numpy(rng.normal(size=(6, 3)))
    with pytest.raises(ValueError, match="k must be between 1 and n - 1 = 5"):
        mutual_knn(x, x, 6)


def test_identical_rows_are_refused(rng):
    with pytest.raises(DegenerateRepresentationError, match="representation Y is constant"):
        mutual_knn(torch.from_numpy(rng.normal(size=(8, 3))), torch.ones(8, 3), 2)
