"""Token-level analyses on hand-built token models with known answers: per-token CKA
(``--reduce tokens``) and the class-token vs patch-token probes (``class-fit --tokens``)."""

import numpy as np
import pytest
import torch

from repcompare.analyses.cka import compare
from repcompare.analyses.class_fit import measure_class_fit, token_features
from repcompare.analyses.invariance import InvarianceOptions, measure_invariance
from repcompare.capture.layout import Layout
from repcompare.errors import InputError, RepcompareWarning
from repcompare.extraction import extract
from repcompare.options import CKAOptions, ClassFitOptions, DataOptions
from repcompare.sides.batches import prepare_inputs, stream_activations
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side
from repcompare.store.reader import open_activations
from tests.support import numpy_reference as ref
from tests.support.models import CLASS_STEP, ClassToken, Patches, patchify, side_of

N, SIZE, BATCH, CAP, SEED = 48, 8, 16, 100, 3
POSITIONS = (SIZE // 2) ** 2
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Random images whose red channel is the sample number and green the pixel's position
    code (row * SIZE + column), so a token row tells which image and patch it came from."""
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 256, size=(N, SIZE, SIZE, 3), dtype=np.uint8)
    pixels[..., 0] = np.arange(N)[:, None, None]
    pixels[..., 1] = np.arange(SIZE * SIZE).reshape(SIZE, SIZE)
    path = tmp_path_factory.mktemp("tokens") / "tokens.npz"
    np.savez(path, images=pixels, labels=np.arange(N) % 4)
    return path, pixels.transpose(0, 3, 1, 2) / 255


def plan(path, **changes) -> InputPlan:
    """The test plan; ``changes`` of the plan's own fields (views, augment) or its inputs."""
    own = {k: changes.pop(k) for k in ("views", "augment") if k in changes}
    inputs = dict(data=str(path), order="stored", seed=SEED, token_cap=CAP, workers=0)
    return InputPlan(DataOptions(**(inputs | changes)), batch_size=BATCH, **own)


def patches(layers: list[str], label: str = "patches") -> Side:
    return side_of(Patches(), label, layers, SIZE, "tokens")


def expected_rows(batch: int) -> np.ndarray:
    """The documented draw: CAP of the batch's BATCH * POSITIONS rows, without replacement,
    from numpy's generator seeded with (seed, batch), sorted."""
    rng = np.random.default_rng([SEED, batch])
    return np.sort(rng.choice(BATCH * POSITIONS, size=CAP, replace=False))


def test_token_cka_is_one_under_rotation_and_scaling_and_matches_a_float64_reference(images):
    path, pixels = images
    side_a = patches(["tokens", "squared", "embed"], "a")
    side_b = patches(["rotated", "tokens"], "b")
    result = compare(side_a, side_b, CKAOptions(), plan(path), CPU)
    values = result.matrix.values
    assert values[0, 0] == pytest.approx(1.0, abs=1e-6)  # rotated x 3: same tokens up to both
    assert values[2, 1] == pytest.approx(1.0, abs=1e-6)  # NCHW positions in token order
    tokens = patchify(pixels)  # (N, P, 12) float64, computed here from the images
    batches = range(N // BATCH)
    rows = [tokens[b * BATCH : (b + 1) * BATCH].reshape(-1, 12)[expected_rows(b)] for b in batches]
    expected = ref.minibatch_cka([r * r for r in rows], rows)
    assert values[1, 1] == pytest.approx(expected, abs=1e-6)
    assert 0.2 < expected < 0.95  # a real nonlinear change, not a trivial 0 or 1
    assert result.matrix.n_examples == CAP * len(batches)
    assert result.settings.token_cap == CAP and result.settings.n_images == N


def test_every_side_and_view_keeps_the_same_image_positions(images):
    path, _ = images
    targets = [patches(["tokens"]).target, patches(["embed", "tokens"]).target]
    run = plan(path, views=2, augment="none")
    streamed = list(stream_activations(targets, run, prepare_inputs(run, targets), CPU))
    assert len(streamed) == N // BATCH
    for batch in streamed:
        rows = expected_rows(batch.number)
        image, position = rows // POSITIONS, rows % POSITIONS
        g = SIZE // 2
        expected = np.stack(
            [batch.sample_index[image], 2 * (position // g) * SIZE + 2 * (position % g)]
        )
        for per_view in batch.activations:
            for per_layer in per_view:
                for x in per_layer:  # channel 0: red of the patch's top-left pixel; 4: green
                    decoded = (x[:, [0, 4]].numpy().T * 255).round()
                    assert np.array_equal(decoded, expected)


def test_invariance_over_tokens_uses_the_same_rows_in_every_view(images):
    path, _ = images
    options = InvarianceOptions(("none",), views=3)
    result = measure_invariance([patches(["tokens", "squared"])], options, plan(path), CPU)
    assert np.allclose(result.curves[0].values, 1.0, atol=1e-6)
    assert result.settings.token_cap == CAP


def test_different_numbers_of_positions_are_one_sentence(images):
    path, _ = images
    with pytest.raises(InputError) as error:
        compare(patches(["tokens"], "a"), patches(["pooled"], "b"), CKAOptions(), plan(path), CPU)
    message = str(error.value)
    assert "P=4: b pooled" in message and "P=16: a tokens" in message
    assert message.count(". ") == 0


def test_files_and_mixed_reductions_are_refused_next_to_tokens(images, tmp_path):
    path, _ = images
    flat = side_of(Patches(), "flat", ["tokens"], SIZE)
    with pytest.raises(InputError, match="rows of token samples, not images"):
        extract(patches(["tokens"]).target, plan(path), tmp_path / "t.h5", CPU)
    extract(flat.target, plan(path), tmp_path / "f.h5", CPU)
    file = Side("f", ["tokens"], file=open_activations(tmp_path / "f.h5"))
    with pytest.raises(InputError, match=r"f\.h5 holds one row per image"):
        compare(file, patches(["tokens"]), CKAOptions(), plan(path), CPU)
    with pytest.raises(InputError, match="flat is reduced with 'flatten'"):
        compare(patches(["tokens"]), flat, CKAOptions(), plan(path), CPU)
    with pytest.raises(InputError, match="--token-cap 2 is too small"):
        compare(patches(["tokens"]), patches(["embed"]), CKAOptions(), plan(path, token_cap=2), CPU)


CLASSES, LABELLED = 10, 400


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Random images whose pixel (0, 0) carries the label (red = CLASS_STEP x label)."""
    rng = np.random.default_rng(5)
    labels = rng.integers(0, CLASSES, size=LABELLED)
    pixels = rng.integers(0, 256, size=(LABELLED, SIZE, SIZE, 3), dtype=np.uint8)
    pixels[:, 0, 0, 0] = CLASS_STEP * labels
    path = tmp_path_factory.mktemp("labelled") / "labelled.npz"
    np.savez(path, images=pixels, labels=labels)
    return path


def test_only_the_class_token_predicts_a_label_only_it_carries(labelled):
    side = side_of(ClassToken(CLASSES, SIZE), "vit", ["patches", "tokens", "first_token"], SIZE)
    run = InputPlan(DataOptions(data=str(labelled), order="stored", workers=0), batch_size=50)
    with pytest.warns(RepcompareWarning) as warned:
        result = measure_class_fit([side], ClassFitOptions(tokens=True), run, CPU)
    m = result.fits[0].measures
    patches_layer, tokens_layer, flat_layer = 0, 1, 2
    assert m["knn_cls"][tokens_layer] == 1.0 and m["probe_cls"][tokens_layer] == 1.0
    for feature in ("mean", "patch"):  # chance is 0.1 on 80 test images
        for layer in (patches_layer, tokens_layer):
            assert m[f"knn_{feature}"][layer] < 0.3 and m[f"probe_{feature}"][layer] < 0.3
    assert np.isnan(m["knn_cls"][patches_layer]) and np.isnan(m["probe_cls"][patches_layer])
    assert all(np.isnan(m[f"probe_{f}"][flat_layer]) for f in ("cls", "mean", "patch"))
    assert m["probe"][flat_layer] == 1.0  # the flat layer is token 0 itself
    messages = [str(w.message) for w in warned]
    assert any("no class token" in t and t.endswith(": patches") for t in messages)
    assert any("no token positions" in t and t.endswith(": first_token") for t in messages)


def test_token_features_are_the_class_token_the_patch_mean_and_the_centre_patch():
    """Token 0, the mean of tokens 1.., and token 1 + 10 (row 2, column 2 of the 4 x 4 grid);
    for a 4 x 6 map, the mean over positions and the value at row 2, column 3."""
    x = torch.randn(5, 17 * 3)
    features = token_features(x, (17, 3), Layout("tokens", 1, True))
    whole = x.reshape(5, 17, 3)
    assert torch.equal(features["cls"], whole[:, 0])
    assert torch.allclose(features["mean"], whole[:, 1:].mean(1))
    assert torch.equal(features["patch"], whole[:, 1 + 2 * 4 + 2])
    maps = torch.randn(5, 3, 4, 6)
    features = token_features(maps.flatten(1), (3, 4, 6), Layout("NCHW"))
    assert features["cls"] is None and torch.equal(features["patch"], maps[:, :, 2, 3])
    assert torch.allclose(features["mean"], maps.mean((2, 3)), atol=1e-6)
