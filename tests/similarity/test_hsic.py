import numpy as np
import pytest
import torch

from repcompare.similarity.hsic import hsic_biased, hsic_unbiased, u_centre
from tests.support import numpy_reference as ref
from tests.support.layers import related_pair


@pytest.mark.parametrize("n", [4, 7, 50])
def test_biased_and_unbiased_hsic_match_the_explicit_formulas(rng, n):
    x, y = related_pair(rng, n, 6, 4)
    k, l = ref.gram_linear(x.numpy()), ref.gram_linear(y.numpy())  # noqa: E741
    kt, lt = torch.from_numpy(k), torch.from_numpy(l)
    assert hsic_biased(kt, lt).item() == pytest.approx(ref.hsic0(k, l), abs=1e-9)
    assert hsic_unbiased(kt, lt).item() == pytest.approx(ref.hsic1(k, l), abs=1e-9)


def test_unbiased_hsic_is_centred_on_zero_for_independent_data(rng):
    values = []
    for _ in range(40):
        x, y = rng.normal(size=(32, 8)), rng.normal(size=(32, 8))
        values.append(hsic_unbiased(torch.from_numpy(x @ x.T), torch.from_numpy(y @ y.T)).item())
    assert min(values) < 0 < max(values)
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))


def test_u_centre_zero_diagonal_and_zero_row_sums(rng):
    x = rng.normal(size=(9, 3))
    u = u_centre(torch.from_numpy(x @ x.T)).numpy()
    assert np.all(np.diag(u) == 0)
    np.testing.assert_allclose(u.sum(axis=1), 0, atol=1e-12)


def test_u_centre_needs_four_examples():
    with pytest.raises(ValueError, match="at least 4 examples"):
        u_centre(torch.eye(3))
