"""Every registered CKA estimator against the independent float64 NumPy reference."""

import numpy as np
import pytest
import torch

from repcompare.errors import InputError
from repcompare.similarity import (
    CKA_ESTIMATORS,
    BatchShapeError,
    BootstrapCKA,
    CKAEstimator,
    DebiasedCKA,
    estimator_spec,
)
from tests.support import numpy_reference as ref

N, BATCH = 90, 32  # two full batches and a partial one of 26


def gram(x: np.ndarray, kernel: str) -> np.ndarray:
    return ref.gram_linear(x) if kernel == "linear" else ref.gram_rbf(x)


def split(x):
    """Consecutive batches of BATCH rows (the last one partial)."""
    return [x[i : i + BATCH] for i in range(0, len(x), BATCH)]


REFERENCES = {
    "minibatch": lambda x, y, kernel: ref.minibatch_cka(split(x), split(y), kernel),
    "exact": lambda x, y, kernel: ref.feature_space_linear_cka(x, y),
    "debiased": lambda x, y, kernel: ref.cka(gram(x, kernel), gram(y, kernel), debiased=True),
}
CASES = [(name, kernel) for name, spec in CKA_ESTIMATORS.items() for kernel in spec.kernels]


def layers(rng, widths: list[int]) -> list[np.ndarray]:
    """Layers sharing a common signal in different amounts, offset so centring matters."""
    base = rng.normal(size=(N, 8))
    return [
        np.tanh(base @ rng.normal(size=(8, w))) + 0.4 * (i + 1) * rng.normal(size=(N, w)) + 3.0
        for i, w in enumerate(widths)
    ]


def fed(estimator: CKAEstimator, feats_a, feats_b):
    """``estimator.result()`` after feeding it the layers in batches of BATCH examples."""
    batches_a = zip(*(split(torch.from_numpy(x)) for x in feats_a), strict=True)
    if feats_b is None:
        for batch_a in batches_a:
            estimator.update(batch_a)
    else:
        batches_b = zip(*(split(torch.from_numpy(y)) for y in feats_b), strict=True)
        for batch_a, batch_b in zip(batches_a, batches_b, strict=True):
            estimator.update(batch_a, batch_b)
    return estimator.result()


def build(name: str, names_a, names_b, kernel: str = "linear", keep: bool = False):
    return estimator_spec(name).build(names_a, names_b, kernel, 0.8, keep)


def test_every_entry_has_a_reference():
    assert set(REFERENCES) == set(CKA_ESTIMATORS)


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_asymmetric_matches_the_reference(rng, name, kernel):
    feats_a, feats_b = layers(rng, [6, 20, 3]), layers(rng, [11, 4])
    result = fed(build(name, ["a0", "a1", "a2"], ["b0", "b1"], kernel), feats_a, feats_b)
    expected = [[REFERENCES[name](x, y, kernel) for y in feats_b] for x in feats_a]
    assert result.names_a == ("a0", "a1", "a2")
    assert result.names_b == ("b0", "b1")
    assert result.n_examples == N
    np.testing.assert_allclose(result.values, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("name", "kernel"), CASES)
def test_symmetric_matches_the_reference(rng, name, kernel):
    feats = layers(rng, [5, 9, 14])
    result = fed(build(name, ["x", "y", "z"], None, kernel), feats, None)
    expected = [[REFERENCES[name](x, y, kernel) for y in feats] for x in feats]
    assert result.names_b == ("x", "y", "z")
    np.testing.assert_allclose(result.values, expected, rtol=0, atol=1e-10)


RBF_MEDIAN_REFERENCES = {
    "minibatch": lambda x, y, median: ref.minibatch_cka(split(x), split(y), "rbf", 0.8, median),
    "debiased": lambda x, y, median: ref.cka(
        ref.gram_rbf(x, 0.8, median), ref.gram_rbf(y, 0.8, median), debiased=True
    ),
}


@pytest.mark.parametrize("median", ["all", "distinct"])
@pytest.mark.parametrize("name", [n for n, s in CKA_ESTIMATORS.items() if "rbf" in s.kernels])
def test_rbf_median_convention_reaches_the_estimator(rng, name, median):
    feats_a, feats_b = layers(rng, [6, 3]), layers(rng, [11])
    estimator = estimator_spec(name).build(["a0", "a1"], ["b0"], "rbf", 0.8, False, median)
    result = fed(estimator, feats_a, feats_b)
    expected = [[RBF_MEDIAN_REFERENCES[name](x, y, median) for y in feats_b] for x in feats_a]
    np.testing.assert_allclose(result.values, expected, rtol=0, atol=1e-10)
    other = "distinct" if median == "all" else "all"
    wrong = [[RBF_MEDIAN_REFERENCES[name](x, y, other) for y in feats_b] for x in feats_a]
    assert np.abs(np.asarray(wrong) - expected).max() > 1e-6  # the convention matters here


@pytest.mark.parametrize("name", list(CKA_ESTIMATORS))
def test_unknown_rbf_median_is_refused(name):
    with pytest.raises(ValueError, match="unknown RBF median convention 'mean'"):
        estimator_spec(name).build(["a"], ["b"], "linear", 0.8, False, "mean")


def test_the_estimators_differ_on_the_same_data(rng):
    """Each reference is distinct here, so matching it at 1e-10 identifies the estimator."""
    x, y = layers(rng, [6, 9])
    values = [REFERENCES[name](x, y, "linear") for name in CKA_ESTIMATORS]
    assert min(abs(p - q) for i, p in enumerate(values) for q in values[i + 1 :]) > 1e-3


@pytest.mark.parametrize("name", list(CKA_ESTIMATORS))
def test_entries_satisfy_the_protocols_they_declare(name):
    spec = estimator_spec(name)
    for keep in (False, True):
        assert isinstance(build(name, ["a"], ["b"], keep=keep), CKAEstimator)
    assert isinstance(build(name, ["a"], ["b"], keep=True), BootstrapCKA) == spec.bootstrap


def test_unknown_name_lists_the_registered_estimators():
    with pytest.raises(InputError, match=r"unknown --estimator 'magic'; use minibatch, exact, deb"):
        estimator_spec("magic")


def test_memory_declarations():
    exact, debiased = CKA_ESTIMATORS["exact"].memory, CKA_ESTIMATORS["debiased"].memory
    assert CKA_ESTIMATORS["minibatch"].memory is None
    assert exact([3, 5], [2], 100).bytes == 8 * 8 * 2
    assert exact([3, 5], None, 100).bytes == 8 * 8 * 8
    assert debiased([3, 5], [2], 10).bytes == 8 * 3 * 10 * 10 + 4 * 10 * 10
    assert debiased([3, 5], None, 10).bytes == 8 * 2 * 10 * 10 + 4 * 10 * 8
    assert debiased([1], None, 10).what == "debiased CKA on 10 samples"


def test_debiased_refuses_misaligned_or_missing_batches():
    debiased = DebiasedCKA(["a"], ["b"])
    with pytest.raises(BatchShapeError, match="different example counts"):
        debiased.update([torch.ones(5, 2)], [torch.ones(4, 2)])
    with pytest.raises(BatchShapeError, match="give feats_b exactly"):
        debiased.update([torch.ones(5, 2)])
    with pytest.raises(BatchShapeError, match="no batch was added"):
        debiased.result()
