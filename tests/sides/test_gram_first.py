"""Gram-first streaming: a side that only minibatch CKA reads is reduced to each batch's Gram
right after capture. It gives the very numbers of the features path, and it keeps at most one
view of one model's activations alive at a time (the features path keeps every model's
activations of a batch together)."""

import weakref
from contextlib import contextmanager

import numpy as np
import pytest
import torch

import repcompare
from repcompare.analyses import run as run_module
from repcompare.capture import capture as capture_module
from repcompare.distributed import ONE_PROCESS
from repcompare.limits import DEFAULT_RBF_FRACTION
from repcompare.sides import batches as batches_module
from repcompare.similarity import MinibatchCKA
from repcompare.similarity.gram import BatchGram, features_or_gram, gram, linear_gram

EXACT = 1e-10
BATCHES = 4
DATA = {
    "data": "builtin:32:32",
    "image_size": 32,
    "crop_pct": 1.0,
    "workers": 0,
    "device": "cpu",
    "batch_size": 8,
    "reduce": "flatten",
}
# flattened at 32 px every layer (4096, 2048 and 1024 wide) is wider than a batch of 8, so
# Gram-first turns each of them into a BatchGram
LAYERS = ["layer1.0", "layer2.0", "layer3.0"]
SEEDS = ["timm:resnet18", "timm:resnet18#seed=1", "timm:resnet18#seed=2"]


pytestmark = pytest.mark.usefixtures("one_thread")


class Kinds:
    """What MinibatchCKA.update was given: BatchGrams and feature tensors, per call."""

    def __init__(self):
        self.calls: list[list[str]] = []

    def count(self, kind: str) -> int:
        return sum(call.count(kind) for call in self.calls)


@pytest.fixture
def kinds(monkeypatch) -> Kinds:
    seen = Kinds()
    real = MinibatchCKA.update

    def update(self, feats_a, feats_b=None):
        seen.calls.append([type(x).__name__ for x in [*feats_a, *(feats_b or [])]])
        return real(self, feats_a, feats_b)

    monkeypatch.setattr(MinibatchCKA, "update", update)
    return seen


class Alive:
    """Weak references to every activation a capture returned and to each layer's output
    before its reduction (the tensor a forward hook stores), tagged with the model; at each
    capture call, how many of another model and of any earlier call are still alive."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.refs: list[tuple[int, weakref.ref]] = []
        self.raw: list[weakref.ref] = []  # layer outputs of the capture under way
        self.calls = 0
        self.other_models: list[int] = []
        self.earlier_calls: list[int] = []

    def check(self, model: int) -> None:
        self.refs = [(m, ref) for m, ref in self.refs if ref() is not None]
        self.other_models.append(sum(m != model for m, _ in self.refs))
        self.earlier_calls.append(len(self.refs))

    def record(self, model: int, outputs: list[torch.Tensor]) -> None:
        self.refs += [(model, weakref.ref(x)) for x in outputs]
        self.refs += [(model, ref) for ref in self.raw]
        self.raw = []
        self.calls += 1


@pytest.fixture
def alive(monkeypatch) -> Alive:
    """Every capture of ``stream_activations`` recorded by ``Alive``."""
    found = Alive()
    real_capture, real_reduce = batches_module.capture_layers, capture_module.reduce

    def reduce(x, *args, **kwargs):
        found.raw.append(weakref.ref(x))
        return real_reduce(x, *args, **kwargs)

    @contextmanager
    def recording(model, *args, **kwargs):
        with real_capture(model, *args, **kwargs) as capture:

            def recorded(images, batch=0):
                found.check(id(model))
                outputs = capture(images, batch)
                found.record(id(model), outputs)
                return outputs

            yield recorded

    monkeypatch.setattr(capture_module, "reduce", reduce)
    monkeypatch.setattr(batches_module, "capture_layers", recording)
    return found


def features_path(monkeypatch) -> None:
    """Turn Gram-first off: every side is streamed as its features."""
    real = run_module.aligned_batches

    def features_only(sides, plan, device, views=1, job=ONE_PROCESS, grams=None):
        return real(sides, plan, device, views, job, None)

    monkeypatch.setattr(run_module, "aligned_batches", features_only)


def both_paths(monkeypatch, kinds: Kinds, compute, alive: Alive | None = None, captures=0):
    """``compute()`` Gram-first, then on the features path; each checked for what
    MinibatchCKA.update was given (and, with ``alive``, for the activations alive at each
    of the ``captures`` captures: batches x models x views)."""
    gram_first = compute()
    assert kinds.count("BatchGram") > 0 and kinds.count("Tensor") == 0, kinds.calls
    if alive is not None:
        assert alive.calls == captures
        assert alive.other_models == [0] * alive.calls, "two models' activations alive at once"
        assert alive.earlier_calls == [0] * alive.calls, "two captures' activations alive at once"
        alive.reset()
    kinds.calls.clear()
    with monkeypatch.context() as patch:
        features_path(patch)
        features = compute()
    assert kinds.count("BatchGram") == 0 and kinds.count("Tensor") > 0, kinds.calls
    if alive is not None:
        assert alive.calls == captures
        # the check above can fail: streamed as features, each model after the first in a
        # batch is captured next to the earlier models' activations of that batch
        assert sum(count > 0 for count in alive.other_models) >= BATCHES
        assert max(alive.other_models) >= len(LAYERS)
    return gram_first, features


def assert_exact(got, want, what: str) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    assert not np.isnan(got).any() and not np.isnan(want).any(), what
    np.testing.assert_allclose(got, want, atol=EXACT, rtol=0, err_msg=what)


def assert_interval(result) -> None:
    values = result.matrix.values
    assert np.all(result.ci_low <= values + 1e-12) and np.all(values <= result.ci_high + 1e-12)
    assert np.any(result.ci_high - result.ci_low > 1e-6)  # a real interval


def test_cka_within_one_model_linear_gram_first_equals_the_features_path(monkeypatch, kinds):
    def compute():
        return repcompare.cka(
            "timm:resnet18", "timm:resnet18", layers_a=LAYERS, bootstrap=20, **DATA
        )

    gram_first, features = both_paths(monkeypatch, kinds, compute)
    assert gram_first.settings.kernel == "linear"
    for key in ("values", "ci_low", "ci_high"):
        got = gram_first.matrix.values if key == "values" else getattr(gram_first, key)
        want = features.matrix.values if key == "values" else getattr(features, key)
        assert_exact(got, want, key)
    values = gram_first.matrix.values
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-9)
    np.testing.assert_allclose(values, values.T, atol=1e-12)
    assert np.ptp(values) > 0.05  # the layers really differ
    assert_interval(gram_first)


def test_cka_of_two_models_rbf_gram_first_equals_the_features_path(monkeypatch, kinds, alive):
    """Captured by forward hooks (``--tracer hooks``), which keep nothing once returned."""

    def compute():
        return repcompare.cka(
            *SEEDS[:2],
            layers_a=LAYERS,
            layers_b=LAYERS,
            kernel="rbf",
            bootstrap=20,
            tracer="hooks",
            **DATA,
        )

    gram_first, features = both_paths(monkeypatch, kinds, compute, alive, BATCHES * 2)
    assert gram_first.settings.kernel == "rbf"
    assert_exact(gram_first.matrix.values, features.matrix.values, "cka")
    assert_exact(gram_first.ci_low, features.ci_low, "ci_low")
    assert_exact(gram_first.ci_high, features.ci_high, "ci_high")
    assert np.all(np.diag(gram_first.matrix.values) < 0.999)  # two different networks
    assert_interval(gram_first)


def test_atlas_of_three_models_gram_first_equals_the_features_path(monkeypatch, kinds, alive):
    def compute():
        return repcompare.atlas(*SEEDS, layers=LAYERS, **DATA)

    gram_first, features = both_paths(monkeypatch, kinds, compute, alive, BATCHES * 3)
    matrix = gram_first.matrices["cka"]
    assert matrix.shape == (9, 9)
    assert_exact(matrix, features.matrices["cka"], "atlas")
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    models = gram_first.models
    assert len(models) == 3
    assert np.all(np.diag(gram_first.block("cka", models[0], models[1])) < 0.999)


def test_invariance_of_two_models_gram_first_equals_the_features_path(monkeypatch, kinds, alive):
    """Two views of each image: each view of each model is reduced before the next runs."""

    def compute():
        return repcompare.invariance(
            *SEEDS[:2], layers=LAYERS, augment="simclr", views=2, bootstrap=10, **DATA
        )

    gram_first, features = both_paths(monkeypatch, kinds, compute, alive, BATCHES * 2 * 2)
    assert len(gram_first.curves) == 2
    for got, want in zip(gram_first.curves, features.curves, strict=True):
        assert_exact(got.values, want.values, "invariance")
        assert_exact(got.ci_low, want.ci_low, "ci_low")
        assert_exact(got.ci_high, want.ci_high, "ci_high")
        assert np.all(np.abs(got.values) < 0.9999) and got.values.max() > 0.05


def test_layers_narrower_than_the_batch_stay_features_with_the_same_numbers(monkeypatch):
    """Pooled, layer1.0 (64 wide) is narrower than the batch of 80 and stays features while
    layer3.0 (256) becomes a Gram; the mix equals the features path."""
    calls: list[list[str]] = []
    real = MinibatchCKA.update

    def update(self, feats_a, feats_b=None):
        calls.append([type(x).__name__ for x in feats_a])
        return real(self, feats_a, feats_b)

    monkeypatch.setattr(MinibatchCKA, "update", update)
    options = {**DATA, "data": "builtin:80:32", "batch_size": 80, "reduce": "avgpool"}
    layers = "layer1.0,layer3.0"

    def compute():
        return repcompare.cka(
            "timm:resnet18", "timm:resnet18", layers_a=layers, kernel="rbf", **options
        )

    gram_first = compute()
    assert calls == [["Tensor", "BatchGram"]]
    calls.clear()
    with monkeypatch.context() as patch:
        features_path(patch)
        features = compute()
    assert calls == [["Tensor", "Tensor"]]
    assert_exact(gram_first.matrix.values, features.matrix.values, "cka")
    assert 0.05 < gram_first.matrix.values[0, 1] < 0.99


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("width", [7, 40, 300])
def test_features_or_gram_gives_every_kernel_bit_for_bit(kernel, width):
    """float64 features narrower than, as wide as and wider than the batch of 40: the kernel
    of ``features_or_gram`` is the kernel of the features, bit for bit."""
    rng = np.random.default_rng(width)
    x = torch.from_numpy(np.tanh(rng.normal(size=(40, width))) + 3.0)  # an offset to centre
    reduced = features_or_gram(x)
    if width < 40:
        assert reduced is x
    else:
        assert isinstance(reduced, BatchGram) and reduced.shape == (40, 40)
        assert reduced.matrix.dtype == torch.float64
        assert torch.equal(reduced.matrix, linear_gram(x))
    got, want = gram(reduced, kernel), gram(x, kernel)
    assert got.dtype == want.dtype == torch.float64
    assert torch.equal(got, want)
    # and it is the kernel itself, from an independent numpy computation
    values = x.numpy()
    if kernel == "linear":
        centred = values - values.mean(0)
        expected = centred @ centred.T
    else:
        d2 = ((values[:, None, :] - values[None, :, :]) ** 2).sum(-1)
        sigma2 = DEFAULT_RBF_FRACTION**2 * np.median(d2)  # all n^2 entries, diagonal included
        expected = np.exp(-d2 / (2 * sigma2))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_a_float32_batch_gram_gives_the_features_kernels_bit_for_bit():
    """The capture's dtype: float32 ReLU features and their float32 BatchGram."""
    x = torch.randn(32, 500, generator=torch.Generator().manual_seed(3)).relu()
    reduced = features_or_gram(x)
    assert isinstance(reduced, BatchGram) and reduced.matrix.dtype == torch.float32
    for kernel in ("linear", "rbf"):
        assert torch.equal(gram(reduced, kernel), gram(x, kernel)), kernel
