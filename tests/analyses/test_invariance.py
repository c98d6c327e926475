"""invariance on an input-level identity layer against a float64 reference, and known answers."""

import itertools

import numpy as np
import pytest
import torch

from repcompare.analyses.invariance import InvarianceOptions, measure_invariance, view_pair_mean
from repcompare.data.augment import augmentation, augmented_view
from repcompare.data.sources import open_source
from repcompare.errors import InputError
from repcompare.options import DataOptions
from repcompare.sides.plan import InputPlan
from tests.support import numpy_reference as ref
from tests.support.models import Pixels, side_of

DATA, N, SIZE, BATCH, SEED = "builtin:60:16", 60, 16, 20, 5
CPU = torch.device("cpu")


def plan(seed: int = SEED) -> InputPlan:
    return InputPlan(DataOptions(data=DATA, order="stored", seed=seed, workers=0), batch_size=BATCH)


def pixels(label: str = "pixels"):
    return side_of(Pixels(), label, ["input", "conv"], SIZE)


def reference_flip_invariance(views: int) -> float:
    """Mean over view pairs of float64 minibatch CKA between the flipped views' raw pixels."""
    source = open_source(DATA)
    pipeline = augmentation("flip", SIZE)
    per_view = [[] for _ in range(views)]
    mirrored = 0
    for index in range(N):
        image = np.asarray(source.load(index)[0], dtype=np.float64) / 255
        for v in range(views):
            view = np.asarray(augmented_view(source.load(index)[0], pipeline, SEED, index, v)) / 255
            assert np.array_equal(view, image) or np.array_equal(view, image[:, ::-1])
            mirrored += not np.array_equal(view, image)
            per_view[v].append(view.transpose(2, 0, 1).reshape(-1))
    assert 0 < mirrored < N * views  # both outcomes occur, so the views differ
    split = lambda x: [np.array(x[i : i + BATCH]) for i in range(0, N, BATCH)]  # noqa: E731
    pairs = itertools.combinations(range(views), 2)
    return float(
        np.mean([ref.minibatch_cka(split(per_view[i]), split(per_view[j])) for i, j in pairs])
    )


def test_identity_layer_under_flip_matches_the_float64_reference():
    options = InvarianceOptions(("flip",), views=3)
    result = measure_invariance([pixels()], options, plan(), CPU)
    (curve,) = result.curves
    expected = reference_flip_invariance(3)
    assert curve.values[0] == pytest.approx(expected, abs=1e-5)
    assert 0.2 < expected < 0.99  # flipping changes raw pixels: far from the trivial 1


def test_every_layer_is_fully_invariant_to_no_augmentation():
    result = measure_invariance([pixels()], InvarianceOptions(("none",)), plan(), CPU)
    np.testing.assert_allclose(result.curves[0].values, 1.0, atol=1e-6)


def test_models_run_apart_see_identical_views_with_the_same_seed():
    options = InvarianceOptions(("simclr",))
    alone_a = measure_invariance([pixels("a")], options, plan(), CPU)
    alone_b = measure_invariance([side_of(Pixels(), "b", ["conv"], 24)], options, plan(), CPU)
    together = measure_invariance([pixels("a"), pixels("b")], options, plan(), CPU)
    other_seed = measure_invariance([pixels("a")], options, plan(seed=6), CPU)
    assert alone_a.fingerprints == alone_b.fingerprints == together.fingerprints
    assert other_seed.fingerprints["simclr"] != alone_a.fingerprints["simclr"]
    np.testing.assert_allclose(together.curves[0].values, alone_a.curves[0].values, atol=1e-12)


def test_view_pair_mean_takes_the_same_layer_across_views():
    layers, views = 2, 3
    values = np.arange(36, dtype=float).reshape(6, 6)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = [
        np.mean([values[i * 2 + layer, j * 2 + layer] for i, j in pairs]) for layer in (0, 1)
    ]
    np.testing.assert_allclose(view_pair_mean(values, layers, views), expected)


def test_bad_options_are_refused_before_any_work():
    with pytest.raises(InputError, match="unknown augmentation 'rotate'"):
        InvarianceOptions(("rotate",))
    with pytest.raises(InputError, match="--views 1 leaves no pair"):
        InvarianceOptions(views=1)
    assert InvarianceOptions(("flip", "crop", "flip")).augment == ("flip", "crop")
