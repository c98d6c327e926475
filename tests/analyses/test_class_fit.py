"""class-fit on representations with known answers: the one-hot labels, and label-free noise."""

import numpy as np
import pytest
import torch

from repcompare.analyses.class_fit import measure_class_fit
from repcompare.errors import InputError
from repcompare.options import ClassFitOptions, DataOptions
from repcompare.sides.plan import InputPlan
from tests.support import numpy_reference as ref
from tests.support.models import CLASS_STEP, Coded, side_of

CLASSES, N, SIZE, BATCH = 10, 400, 8, 50


@pytest.fixture(scope="module")
def coded_data(tmp_path_factory):
    """Random images whose pixel (0, 0) carries the label (red) and a random id (green)."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, CLASSES, size=N)
    images = rng.integers(0, 256, size=(N, SIZE, SIZE, 3), dtype=np.uint8)
    images[:, 0, 0, 0] = CLASS_STEP * labels
    ids = rng.integers(0, 256, size=N)
    images[:, 0, 0, 1] = ids
    path = tmp_path_factory.mktemp("coded") / "coded.npz"
    np.savez(path, images=images, labels=labels)
    return path, labels, ids


def run(path, **options):
    side = side_of(Coded(CLASSES), "coded", ["onehot", "noise"], SIZE)
    plan = InputPlan(DataOptions(data=str(path), order="stored", workers=0), batch_size=BATCH)
    return measure_class_fit([side], ClassFitOptions(**options), plan, torch.device("cpu"))


def test_one_hot_layer_fits_perfectly_and_noise_not_at_all(coded_data):
    path, labels, ids = coded_data
    result = run(path)
    (fit,) = result.fits
    onehot, noise = 0, 1
    m = fit.measures
    assert m["class_cka"][onehot] == pytest.approx(1.0, abs=1e-9)
    assert m["knn"][onehot] == 1.0 and m["probe"][onehot] == 1.0
    assert m["intra"][onehot] == pytest.approx(0.0, abs=1e-12)
    assert m["inter_min"][onehot] == pytest.approx(2.0)  # distinct unit one-hot means
    assert abs(m["class_cka"][noise]) < 0.05
    assert m["knn"][noise] < 0.3 and m["probe"][noise] < 0.3  # chance is 0.1
    assert m["ratio"][noise] > 10 * m["ratio"][onehot] + 1
    table = torch.randn(256, 64, generator=torch.Generator().manual_seed(0)).double().numpy()
    onehot_rows = np.eye(CLASSES)[labels]
    split = lambda x: [x[i : i + BATCH] for i in range(0, N, BATCH)]  # noqa: E731
    expected = ref.minibatch_cka(split(table[ids]), split(onehot_rows))
    assert m["class_cka"][noise] == pytest.approx(expected, abs=1e-5)
    biased = ref.cka(ref.gram_linear(table[ids]), ref.gram_linear(onehot_rows))
    assert biased > 0.05  # the biased estimator would see class structure in noise
    assert result.settings.n_test == 80 and result.settings.num_classes == CLASSES


def test_bootstrap_interval_contains_the_estimate(coded_data):
    (fit,) = run(coded_data[0], bootstrap=50).fits
    low, high = fit.class_ci
    assert np.all(low <= fit.measures["class_cka"] + 1e-12)
    assert np.all(fit.measures["class_cka"] <= high + 1e-12)
    assert high[1] - low[1] > 1e-4  # noise: a real interval, not a point


def test_unlabelled_images_are_refused(tmp_path):
    path = tmp_path / "unlabelled.npz"
    np.savez(path, images=np.zeros((20, SIZE, SIZE, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="class-fit needs labelled images"):
        run(path)
