"""The measure registry: declared kinds, ranges and invariances checked on data."""

import math

import numpy as np
import pytest
import torch

from repcompare.errors import InputError
from repcompare.similarity import MEASURES, measure_spec


def pair(rng, n: int = 60, p: int = 8, q: int = 7):
    """Related but unequal representations with unequal canonical correlations."""
    x = rng.normal(size=(n, p)) * np.geomspace(3, 0.3, p) + 1.0
    y = np.tanh(x[:, :q] @ rng.normal(size=(q, q))) + 0.8 * rng.normal(size=(n, q))
    return torch.from_numpy(x), torch.from_numpy(y)


def transforms(rng, p: int) -> dict:
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    stretch = np.diag(np.geomspace(0.01, 10, p)) @ q @ np.diag(np.geomspace(1, 3, p))
    return {
        "orthogonal": lambda x: x @ torch.from_numpy(q),
        "isotropic_scaling": lambda x: 6.5 * x,
        "invertible_linear": lambda x: x @ torch.from_numpy(stretch),
        "translation": lambda x: x + torch.from_numpy(rng.normal(size=p) * 5),
    }


def test_kinds_and_best_match():
    distances = {name for name, spec in MEASURES.items() if spec.kind == "distance"}
    assert distances == {"procrustes", "angular"}
    for name, spec in MEASURES.items():
        assert spec.name == name
        assert spec.best == ("min" if name in distances else "max")
        assert spec.is_distance == (name in distances)
    assert MEASURES["procrustes"].range == (0.0, math.sqrt(2))
    assert MEASURES["angular"].range == (0.0, math.pi / 2)
    assert MEASURES["rsa"].range == (-1.0, 1.0)
    assert {n for n, s in MEASURES.items() if s.streamable} == {"cka", "procrustes", "angular"}


@pytest.mark.parametrize("name", list(MEASURES))
def test_values_lie_in_range_and_identity_is_the_best_end(rng, name):
    spec = measure_spec(name)
    x, y = pair(rng)
    low, high = spec.range
    value = spec.compute(x, y).item()
    assert low <= value <= high
    best = low if spec.is_distance else high
    assert spec.compute(x, x).item() == pytest.approx(best, abs=1e-10)
    assert abs(value - best) > 0.01


@pytest.mark.parametrize("name", list(MEASURES))
@pytest.mark.parametrize(
    "invariance", ["orthogonal", "isotropic_scaling", "invertible_linear", "translation"]
)
def test_declared_invariances_hold_and_undeclared_ones_do_not(rng, name, invariance):
    spec = measure_spec(name)
    x, y = pair(rng)
    transformed = transforms(rng, x.shape[1])[invariance](x)
    base, moved = spec.compute(x, y).item(), spec.compute(transformed, y).item()
    if getattr(spec.invariances, invariance):
        assert moved == pytest.approx(base, abs=1e-9)
    else:
        assert abs(moved - base) > 1e-6  # invariant ones move by rounding (< 1e-14) only


def test_unknown_measure_lists_the_registered_ones():
    with pytest.raises(InputError, match=r"unknown --measure 'magic'; use cka, procrustes, ang"):
        measure_spec("magic")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(MEASURES))
def test_cuda_gives_the_cpu_value(rng, name):
    x, y = pair(rng)
    cpu = measure_spec(name).compute(x, y)
    gpu = measure_spec(name).compute(x.cuda(), y.cuda())
    assert gpu.device.type == "cuda"
    assert gpu.item() == pytest.approx(cpu.item(), abs=1e-9)
