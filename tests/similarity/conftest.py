import numpy as np
import pytest
import torch


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def related_pair(rng: np.random.Generator, n: int, dx: int, dy: int, noise: float = 1.0):
    """Two float64 representations that share a linear signal plus noise."""
    x = rng.normal(size=(n, dx))
    y = x @ rng.normal(size=(dx, dy)) / np.sqrt(dx) + noise * rng.normal(size=(n, dy))
    return torch.from_numpy(x), torch.from_numpy(y)
