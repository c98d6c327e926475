import numpy as np
import pytest
import torch

from repcompare.similarity import (
    DegenerateRepresentationError,
    NonFiniteActivationError,
    cka,
    cka_from_grams,
)
from tests.support import numpy_reference as ref
from tests.support.layers import related_pair

SETTINGS = [("linear", False), ("linear", True), ("rbf", False), ("rbf", True)]


def reference_cka(x, y, kernel: str, debiased: bool) -> float:
    g = ref.gram_linear if kernel == "linear" else ref.gram_rbf
    return ref.cka(g(np.asarray(x)), g(np.asarray(y)), debiased)


@pytest.mark.parametrize(("kernel", "debiased"), SETTINGS)
def test_float64_matches_reference_within_1e6(rng, kernel, debiased):
    x, y = related_pair(rng, 60, 20, 12)
    got = cka(x, y, kernel=kernel, debiased=debiased).item()
    assert abs(got - reference_cka(x, y, kernel, debiased)) <= 1e-6


@pytest.mark.parametrize(("kernel", "debiased"), SETTINGS)
def test_float32_matches_float64_reference_within_1e4(rng, kernel, debiased):
    x, y = related_pair(rng, 60, 20, 12)
    got = cka(x.float(), y.float(), kernel=kernel, debiased=debiased).item()
    expected = reference_cka(x.float().double(), y.float().double(), kernel, debiased)
    assert abs(got - expected) <= 1e-4


@pytest.mark.parametrize("debiased", [False, True])
def test_agrees_with_kornblith_reference_code(rng, debiased):
    x, y = related_pair(rng, 40, 10, 30)
    gx, gy = ref.gram_linear(x.numpy()), ref.gram_linear(y.numpy())
    got = cka_from_grams(torch.from_numpy(gx), torch.from_numpy(gy), debiased=debiased).item()
    assert got == pytest.approx(ref.kornblith_cka(gx, gy, debiased), abs=1e-9)


@pytest.mark.parametrize(("kernel", "debiased"), SETTINGS)
def test_self_similarity_is_one_and_cka_is_symmetric(rng, kernel, debiased):
    x, y = related_pair(rng, 50, 8, 16)
    assert cka(x, x, kernel=kernel, debiased=debiased).item() == pytest.approx(1.0, abs=1e-12)
    xy = cka(x, y, kernel=kernel, debiased=debiased).item()
    assert xy == pytest.approx(cka(y, x, kernel=kernel, debiased=debiased).item(), abs=1e-12)


@pytest.mark.parametrize(("kernel", "debiased"), SETTINGS)
def test_invariant_to_orthogonal_maps_and_isotropic_scaling(rng, kernel, debiased):
    x, y = related_pair(rng, 50, 12, 12)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    base = cka(x, y, kernel=kernel, debiased=debiased).item()
    rotated = cka(x @ torch.from_numpy(q), y, kernel=kernel, debiased=debiased).item()
    scaled = cka(x, 7.5 * y, kernel=kernel, debiased=debiased).item()
    assert rotated == pytest.approx(base, abs=1e-9)
    assert scaled == pytest.approx(base, abs=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_not_invariant_to_a_general_invertible_linear_map(rng, debiased):
    x, y = related_pair(rng, 80, 10, 10)
    stretch = torch.from_numpy(np.diag(np.geomspace(0.05, 20.0, 10)) @ rng.normal(size=(10, 10)))
    assert torch.linalg.matrix_rank(stretch) == 10
    base = cka(x, y, debiased=debiased).item()
    assert abs(cka(x @ stretch, y, debiased=debiased).item() - base) > 0.05


def test_independent_wide_features_biased_high_debiased_near_zero():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4096, generator=gen, dtype=torch.float64)
    y = torch.randn(256, 4096, generator=gen, dtype=torch.float64)
    assert cka(x, y).item() > 0.5
    assert abs(cka(x, y, debiased=True).item()) < 0.05


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("width", [4096, 65536])
def test_float32_offset_relu_features_stay_accurate(width, debiased):
    """methods.md's trap: uncentred float32 Grams of ReLU(randn)+5 give CKA > 1 or NaN."""
    gen = torch.Generator().manual_seed(width)
    pre = torch.randn(256, width, generator=gen)
    x = torch.relu(pre) + 5
    y = torch.relu(pre + 2 * torch.randn(256, width, generator=gen)) + 5
    got = cka(x, y, debiased=debiased).item()
    gx, gy = ref.gram_linear(x.double().numpy()), ref.gram_linear(y.double().numpy())
    expected = ref.cka(gx, gy, debiased)
    assert np.isfinite(got)
    assert abs(got - expected) <= 1e-4


def test_constant_representation_is_reported_not_scored(rng):
    x = torch.from_numpy(rng.normal(size=(10, 3)))
    with pytest.raises(DegenerateRepresentationError, match="representation Y is constant"):
        cka(x, torch.full((10, 4), 3.0))


def test_nan_input_names_the_side(rng):
    x = torch.from_numpy(rng.normal(size=(10, 3)))
    y = x.clone()
    y[3, 1] = float("nan")
    with pytest.raises(NonFiniteActivationError, match="layer 'Y' has NaN or Inf"):
        cka(x, y)
