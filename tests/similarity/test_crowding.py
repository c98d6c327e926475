import itertools

import numpy as np
import pytest
import torch

from repcompare.similarity import BatchShapeError
from repcompare.similarity.crowding import CrowdingStats


def direct(x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Song et al.'s measures on the full feature matrix, in NumPy."""
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    classes = np.unique(labels)
    means = {c: z[labels == c].mean(0) for c in classes}
    intra = np.mean([np.mean(np.sum((z[labels == c] - means[c]) ** 2, 1)) for c in classes])
    gaps = [np.sum((means[a] - means[b]) ** 2) for a, b in itertools.combinations(classes, 2)]
    return {
        "intra": intra,
        "inter": np.mean(gaps),
        "inter_min": np.min(gaps),
        "ratio": intra / np.mean(gaps),
    }


def test_streaming_equals_the_direct_computation(rng):
    labels = rng.integers(0, 5, size=203)
    centres = rng.normal(size=(5, 12))
    layers = [centres[labels] + s * rng.normal(size=(203, 12)) for s in (0.3, 2.0)]
    stats = CrowdingStats(["tight", "crowded"], num_classes=6)  # class 5 never appears
    for start in range(0, 203, 32):
        stats.update(
            [torch.from_numpy(x[start : start + 32]) for x in layers],
            torch.from_numpy(labels[start : start + 32]),
        )
    got = stats.result()
    for i, x in enumerate(layers):
        expected = direct(x, labels)
        for key, value in expected.items():
            assert abs(got[key][i] - value) <= 1e-6, (key, i)
    assert got["ratio"][0] < got["ratio"][1]  # noisier layer: more crowded


def test_feature_maps_are_flattened_and_bad_labels_refused():
    stats = CrowdingStats(["conv"], num_classes=2)
    with pytest.raises(BatchShapeError, match=r"labels must lie in 0\.\.1"):
        stats.update([torch.randn(4, 2, 3, 3)], torch.tensor([0, 1, 2, 0]))
    stats.update([torch.randn(4, 2, 3, 3)], torch.tensor([0, 0, 0, 0]))
    with pytest.raises(BatchShapeError, match="at least 2 classes"):
        stats.result()
