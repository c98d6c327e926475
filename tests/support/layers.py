"""Synthetic layer activations for the math's tests, and feeding them to an accumulator in
minibatches."""

import numpy as np
import torch

from repcompare.similarity import MinibatchCKA


def related_pair(rng: np.random.Generator, n: int, dx: int, dy: int, noise: float = 1.0):
    """Two float64 representations that share a linear signal plus noise."""
    x = rng.normal(size=(n, dx))
    y = x @ rng.normal(size=(dx, dy)) / np.sqrt(dx) + noise * rng.normal(size=(n, dy))
    return torch.from_numpy(x), torch.from_numpy(y)


def layers(rng, n: int, widths: list[int]) -> list[torch.Tensor]:
    """Layers sharing a common signal in different amounts, so every pair differs."""
    base = rng.normal(size=(n, 16))
    out = []
    for i, width in enumerate(widths):
        mix = base @ rng.normal(size=(16, width))
        out.append(torch.from_numpy(np.tanh(mix) + 0.3 * (i + 1) * rng.normal(size=(n, width))))
    return out


def batches(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    return list(torch.split(x, size))


def run(acc: MinibatchCKA, feats_a, feats_b, size: int):
    split_a = [batches(x, size) for x in feats_a]
    split_b = None if feats_b is None else [batches(y, size) for y in feats_b]
    for i in range(len(split_a[0])):
        acc.update([s[i] for s in split_a], None if split_b is None else [s[i] for s in split_b])
    return acc.result()
