import numpy as np
import pytest

from repcompare.data.procedural import ProceduralShapes
from repcompare.errors import InputError


def pixels(source, index) -> np.ndarray:
    return np.asarray(source.load(index)[0])


def test_deterministic_per_seed_and_index():
    a, b = ProceduralShapes(50, 32, seed=0), ProceduralShapes(50, 32, seed=0)
    assert np.array_equal(pixels(a, 17), pixels(b, 17))
    assert not np.array_equal(pixels(a, 17), pixels(ProceduralShapes(50, 32, seed=1), 17))
    assert not np.array_equal(pixels(a, 17), pixels(a, 27))  # same class, other image


@pytest.mark.parametrize("size", [17, 32, 224])
def test_any_size_and_balanced_labels(size):
    source = ProceduralShapes(40, size)
    image, label = source.load(13)
    assert image.size == (size, size) and image.mode == "RGB" and label == 3
    assert np.bincount([source.load(i)[1] for i in range(40)]).tolist() == [4] * 10


def test_classes_are_separable_by_nearest_class_mean():
    source = ProceduralShapes(500, 32)
    data = np.stack([np.asarray(source.load(i)[0].resize((8, 8))).ravel() for i in range(500)])
    labels = np.arange(500) % 10
    train, test = np.arange(500) < 300, np.arange(500) >= 300
    means = np.stack([data[train & (labels == c)].mean(0) for c in range(10)])
    distances = ((data[test][:, None, :] - means[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) == labels[test]).mean()
    assert accuracy > 0.6


def test_bad_size_is_an_input_error():
    with pytest.raises(InputError, match="builtin:N:SIZE"):
        ProceduralShapes(0, 32)
