import numpy as np
import pytest
import torch

from repcompare.similarity import BatchShapeError
from repcompare.similarity.probes import knn_accuracy, linear_probe_accuracy, stratified_split


def clusters(rng, n: int, classes: int, width: int, spread: float):
    """Gaussian clusters around random unit-scale centres; labels 0..classes-1."""
    labels = rng.integers(0, classes, size=n)
    centres = rng.normal(size=(classes, width)) * 3
    x = centres[labels] + spread * rng.normal(size=(n, width))
    return torch.from_numpy(x), torch.from_numpy(labels)


def split(x, labels, seed=0):
    train, test = stratified_split(labels.numpy(), 0.25, seed)
    return x[train], labels[train], x[test], labels[test]


def knn_reference(train, train_labels, test, k) -> np.ndarray:
    """Brute-force cosine kNN in float64: majority vote, ties to the larger similarity sum."""
    a = train.numpy() / np.linalg.norm(train.numpy(), axis=1, keepdims=True)
    b = test.numpy() / np.linalg.norm(test.numpy(), axis=1, keepdims=True)
    predictions = []
    for row in b @ a.T:
        nearest = np.argsort(-row)[:k]
        votes = {}
        for i in nearest:
            count, total = votes.get(int(train_labels[i]), (0, 0.0))
            votes[int(train_labels[i])] = (count + 1, total + row[i])
        predictions.append(max(votes, key=lambda c: votes[c]))
    return np.array(predictions)


def test_split_is_stratified_disjoint_complete_and_seeded():
    labels = np.repeat(np.arange(4), [10, 20, 30, 1])
    train, test = stratified_split(labels, 0.2, seed=3)
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(61))
    assert [int((labels[test] == c).sum()) for c in range(4)] == [2, 4, 6, 0]
    again, _ = stratified_split(labels, 0.2, seed=3)
    other, _ = stratified_split(labels, 0.2, seed=4)
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    with pytest.raises(BatchShapeError, match="between 0 and 1"):
        stratified_split(labels, 1.0, seed=0)
    pairs = np.repeat(np.arange(3), 2)
    train, test = stratified_split(pairs, 0.75, seed=0)  # round(1.5) = 2 would empty a class
    assert sorted(pairs[train]) == sorted(pairs[test]) == [0, 1, 2]


def test_knn_and_probe_exceed_95_percent_on_separable_clusters(rng):
    x, labels = clusters(rng, 600, classes=6, width=32, spread=0.5)
    parts = split(x, labels)
    assert knn_accuracy(*parts, k=20) > 0.95
    assert linear_probe_accuracy(*parts) > 0.95


def test_probe_separates_classes_that_only_a_linear_boundary_splits(rng):
    """Labels by the sign of one feature, drowned in wide noise: no cluster structure."""
    x = torch.from_numpy(rng.normal(size=(800, 20)))
    labels = (x[:, 3] > 0).long()
    assert linear_probe_accuracy(*split(x, labels)) > 0.95


def test_random_labels_give_chance_accuracy(rng):
    x, _ = clusters(rng, 800, classes=4, width=16, spread=1.0)
    labels = torch.from_numpy(rng.integers(0, 4, size=800))
    parts = split(x, labels)
    assert abs(knn_accuracy(*parts) - 0.25) < 0.1
    assert abs(linear_probe_accuracy(*parts) - 0.25) < 0.1


def test_knn_matches_a_brute_force_reference(rng):
    x, labels = clusters(rng, 300, classes=5, width=8, spread=3.0)
    train, train_labels, test, test_labels = split(x, labels)
    for k in (1, 7, 20):
        expected = np.mean(knn_reference(train, train_labels, test, k) == test_labels.numpy())
        assert knn_accuracy(train, train_labels, test, test_labels, k=k) == pytest.approx(expected)
    assert 0.3 < expected < 0.95  # overlapping clusters: the vote matters
