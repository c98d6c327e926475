import math

import numpy as np
import pytest
import torch
from torch import nn

from repcompare.capture.models import DataConfig
from repcompare.data.procedural import ProceduralShapes
from repcompare.data.transforms import view_transform
from repcompare.training import nt_xent, projector, train


def nt_xent_reference(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """NT-Xent written out term by term in float64 (Chen et al. 2020, eq. 1)."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        others = sum(math.exp(z[i] @ z[k] / temperature) for k in range(2 * n) if k != i)
        total -= math.log(math.exp(z[i] @ z[partner] / temperature) / others)
    return total / (2 * n)


def test_nt_xent_matches_the_written_out_formula():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    got = nt_xent(torch.from_numpy(z1), torch.from_numpy(z2), temperature=0.3)
    assert got.item() == pytest.approx(nt_xent_reference(z1, z2, 0.3), rel=1e-10)
    aligned = nt_xent(torch.from_numpy(z1), torch.from_numpy(z1), temperature=0.3)
    assert aligned < got  # identical views are easier to pair than unrelated ones


@pytest.mark.parametrize(("objective", "fall"), [("supervised", 1.0), ("simclr", 0.15)])
def test_training_lowers_the_loss(objective, fall):
    """Without learning, the epoch losses would only wander with the views (about 0.1);
    over initialisation seeds 0-3 they fell by 1.6 (supervised) and 0.26-0.37 (SimCLR)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )
    head = nn.Linear(64, 10) if objective == "supervised" else projector(64)
    source = ProceduralShapes(256, 16, seed=1)
    transform = view_transform(DataConfig(input_size=(3, 16, 16)))
    losses = train(net, head, objective, source, transform, 16, 6, batch_size=32)
    assert len(losses) == 6 and losses[-1] < losses[0] - fall
