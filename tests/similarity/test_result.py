"""Normalising HSIC terms into CKA: rounding beyond +-1 is clipped, anything larger surfaces."""

import numpy as np
import pytest
import torch

from repcompare.errors import RunError
from repcompare.similarity import MinibatchCKA, cka
from repcompare.similarity.result import ROUNDING_EXCESS, clip_rounding, normalise


def _normalised(cross: float) -> np.ndarray:
    one = torch.tensor([1.0], dtype=torch.float64)
    flags = torch.tensor([False])
    matrix = torch.tensor([[cross]], dtype=torch.float64)
    return normalise(matrix, one, one, flags, flags, ("x",), ("y",), 8).values


def test_rounding_excess_is_clipped_to_one_and_nan_kept():
    assert _normalised(1 + 1e-13)[0, 0] == 1.0
    assert _normalised(-(1 + 1e-13))[0, 0] == -1.0
    values = clip_rounding(np.array([np.nan, 1 + ROUNDING_EXCESS / 2, 0.5]))
    assert np.isnan(values[0]) and values[1] == 1.0 and values[2] == 0.5


def test_excess_beyond_rounding_is_an_error_naming_the_pair():
    with pytest.raises(RunError, match=r"for x and y is 1\.000001"):
        _normalised(1 + 1e-6)


def test_identical_and_scaled_inputs_never_exceed_one():
    generator = torch.Generator().manual_seed(0)
    worst = []
    for _ in range(20):
        x = torch.randn(96, 40, generator=generator) * torch.rand(40, generator=generator) * 50
        copies = [x, 3 * x, x.clone()]
        acc = MinibatchCKA(["a", "b", "c"], keep_batch_terms=True)
        for rows in torch.arange(96).split(24):
            acc.update([c[rows] for c in copies])
        worst += [acc.result().values.max(), acc.resample(20).max()]
        worst += [float(cka(x, 2 * x, debiased=d)) for d in (False, True)]
    assert max(worst) <= 1.0
    assert max(worst) > 1 - 1e-12  # the inputs really are identical up to scale
