"""The small-sample rules refuse exactly where a measure's values are degenerate, and the
fixed sample gives the reference value where they are not."""

import pytest
import torch

from repcompare.similarity.knn import DEFAULT_KNN_K
from repcompare.similarity.measures import MEASURES
from repcompare.similarity.sampled import FixedSampleMeasure
from repcompare.similarity.small_sample import sample_caveat


def _pair(n: int, p: int, q: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent Gaussian representations of n examples: nothing in common."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, p, generator=g, dtype=torch.float64), torch.randn(
        n, q, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize(("name", "floor"), [("pwcca", 1 - 1e-6), ("svcca", 0.75)])
def test_cca_is_one_for_unrelated_layers_where_it_is_refused(name, floor):
    """PWCCA is exactly 1; SVCCA, which first drops 1% of the variance, nearly so."""
    for n, width in ((4, 512), (8, 16), (17, 16), (40, 39)):
        x, y = _pair(n, width, 5)
        assert float(MEASURES[name].compute(x, y)) >= floor
        assert sample_caveat(name, n, [width, 5]).refuse
    x, y = _pair(1600, 16, 5)
    assert float(MEASURES[name].compute(x, y)) < 0.2
    assert sample_caveat(name, 1600, [16, 5]) is None
    warned = sample_caveat(name, 100, [16, 5])  # 6 images a feature: unstable
    assert not warned.refuse and "100 images against layers up to 16" in warned.sentence


@pytest.mark.parametrize("name", ["procrustes", "angular"])
def test_shape_metrics_are_zero_at_two_images_where_they_are_refused(name):
    x, y = _pair(2, 30, 7)
    assert float(MEASURES[name].compute(x, y)) == pytest.approx(0.0, abs=1e-6)
    assert sample_caveat(name, 2, [30, 7]).refuse
    small, large = _pair(12, 64, 64), _pair(2000, 64, 64)
    biased = float(MEASURES[name].compute(*small))
    assert biased < float(MEASURES[name].compute(*large))  # few images: shrunk towards 0
    caveat = sample_caveat(name, 12, [64, 64])
    assert not caveat.refuse and "12 images" in caveat.sentence and "64 features" in caveat.sentence
    assert sample_caveat(name, 2000, [64, 64]) is None


def test_rsa_and_mutual_knn_are_refused_where_undefined():
    assert sample_caveat("rsa", 3, [5]).refuse and sample_caveat("rsa", 4, [5]) is None
    assert sample_caveat("mutual-knn", DEFAULT_KNN_K, [5]).refuse
    assert sample_caveat("mutual-knn", DEFAULT_KNN_K + 1, [5]) is None


def test_biased_linear_cka_is_warned_and_the_unbiased_estimators_are_not():
    assert "--estimator debiased" in sample_caveat("cka", 100, [512], "exact").sentence
    assert sample_caveat("cka", 100, [512], "minibatch") is None
    assert sample_caveat("cka", 1000, [512], "exact") is None


@pytest.mark.parametrize("name", ["svcca", "pwcca"])
def test_the_fixed_sample_of_a_cca_measure_is_the_measure_on_its_first_rows(name):
    x, y = _pair(300, 12, 6, seed=3)
    measure = FixedSampleMeasure(MEASURES[name], ["x"], ["y"], sample=250)
    for start in range(0, 300, 64):
        measure.update([x[start : start + 64]], [y[start : start + 64]])
    kept = [r[:250].float().double() for r in (x, y)]  # the sample is kept in float32
    expected = float(MEASURES[name].compute(*kept))
    assert measure.result().values[0, 0] == pytest.approx(expected, abs=1e-10)
