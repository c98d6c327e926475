"""Gram stores (``extract --store grams``): per batch and layer the float32 Gram of the
centred features. As a side of ``cka``, ``atlas`` and ``invariance`` they give the on-the-fly
numbers, mixed with models and activation files; what needs features, or other images or
batches, is refused with a sentence; an interrupted extraction resumes to the same bytes; the
file takes views x layers x batches x G^2 x 4 bytes."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import repcompare
from repcompare.cli import main
from repcompare.data.batches import batch_bounds
from repcompare.errors import InputError
from repcompare.similarity.gram import linear_gram
from repcompare.store.file_format import activation_path, gram_path
from repcompare.store.reader import open_activations
from tests.support.faults import command, error_sentence, rows_done

EXACT = 1e-10
A, B, C = "timm:resnet18", "timm:resnet18#seed=1", "timm:resnet34"
LAYERS = ["layer1.0", "layer2.0", "layer4.1"]  # flattened at 32 px: 4096, 2048, 512 wide
IMAGES, BATCH = 130, 32  # batches of 32, 32, 32 and 34: the last 2 rows merge into the 4th
BOUNDS = [(0, 32), (32, 64), (64, 96), (96, 130)]
G = 34
DATA = {
    "data": f"builtin:{IMAGES}:32",
    "image_size": 32,
    "crop_pct": 1.0,
    "workers": 0,
    "device": "cpu",
    "batch_size": BATCH,
    "reduce": "flatten",
}
CLI_DATA = ["--image-size", "32", "--crop-pct", "1.0", "--workers", "0"]


pytestmark = pytest.mark.usefixtures("one_thread")


def extract(model: str, out: Path, **changes) -> Path:
    repcompare.extract(model, out=out, **({"layers": LAYERS, **DATA} | changes))
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Gram stores of A and B, float32 activations of A, float16 and float32 ones of C."""
    root = tmp_path_factory.mktemp("grams")
    return {
        "gA": extract(A, root / "gA.h5", store="grams"),
        "gB": extract(B, root / "gB.h5", store="grams"),
        "aA32": extract(A, root / "aA32.h5", dtype="float32"),
        "aC16": extract(C, root / "aC16.h5"),
        "aC32": extract(C, root / "aC32.h5", dtype="float32"),
    }


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> dict[str, Path]:
    """Gram stores of A that do not line up with ``files["gA"]``: other batches, another
    seed, other pixels, two augmented views; and activations in batches of 16."""
    root = tmp_path_factory.mktemp("odd")
    return {
        "batch16": extract(A, root / "batch16.h5", store="grams", batch_size=16),
        "acts16": extract(A, root / "acts16.h5", batch_size=16, dtype="float32"),
        "seed1": extract(A, root / "seed1.h5", store="grams", seed=1),
        "pixels": extract(A, root / "pixels.h5", store="grams", data=f"builtin:{IMAGES}:40"),
        "views": extract(A, root / "views.h5", store="grams", views=2, augment=["simclr"]),
    }


def assert_exact(got, want, what: str = "") -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    assert not np.isnan(got).any() and not np.isnan(want).any(), what
    np.testing.assert_allclose(got, want, atol=EXACT, rtol=0, err_msg=what)


def assert_same_cka(got, want) -> None:
    assert_exact(got.matrix.values, want.matrix.values, "cka")
    if want.ci_low is not None:
        assert_exact(got.ci_low, want.ci_low, "ci_low")
        assert_exact(got.ci_high, want.ci_high, "ci_high")
        assert np.any(want.ci_high - want.ci_low > 1e-6)


# --- the stored Grams ---------------------------------------------------------------------


def test_gram_datasets_hold_each_batch_gram_zero_padded_to_the_merged_batch(files):
    assert batch_bounds(IMAGES, BATCH) == BOUNDS
    with h5py.File(files["gA"], "r") as f, h5py.File(files["aA32"], "r") as acts:
        assert sorted(f["grams/view0"]) == sorted(LAYERS)
        assert "activations" not in f
        settings = json.loads(f.attrs["settings"])
        assert settings["store"] == "grams" and settings["dtype"] == "float32"
        assert json.loads(f.attrs["layer_widths"]) == {
            "layer1.0": 4096,
            "layer2.0": 2048,
            "layer4.1": 512,
        }
        np.testing.assert_array_equal(f["sample_index"][()], acts["sample_index"][()])
        for layer in LAYERS:
            dataset = f[gram_path(0, layer)]
            assert dataset.shape == (4, G, G) and dataset.dtype == np.float32
            assert dataset.chunks == (1, G, G)
            stored = dataset[()]
            features = torch.from_numpy(acts[activation_path(0, layer)][()])
            for k, (start, stop) in enumerate(BOUNDS):
                m = stop - start
                expected = linear_gram(features[start:stop]).numpy()
                np.testing.assert_allclose(
                    stored[k, :m, :m], expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max()
                )
                np.testing.assert_array_equal(stored[k, :m, :m], stored[k, :m, :m].T)
                assert (stored[k, m:, :] == 0).all() and (stored[k, :, m:] == 0).all()
                assert np.count_nonzero(stored[k, :m, :m]) == m * m  # real values up to m
            assert np.linalg.eigvalsh(stored[3].astype(np.float64)).min() > -1e-3 * stored[3].max()
    with open_activations(files["gA"]) as store:
        assert store.widths == {"layer1.0": 4096, "layer2.0": 2048, "layer4.1": 512}
        grams = list(store.grams(0, ["layer4.1", "layer1.0"]))
        assert [g[0].shape for g in grams] == [(32, 32)] * 3 + [(34, 34)]
        with h5py.File(files["gA"], "r") as f:
            np.testing.assert_array_equal(grams[3][1], f[gram_path(0, "layer1.0")][3])
            np.testing.assert_array_equal(grams[1][0], f[gram_path(0, "layer4.1")][1, :32, :32])


def test_the_store_takes_views_layers_batches_g_squared_float32s_and_little_else(files, odd):
    """views x layers x num_batches x G^2 x 4 bytes, plus a fixed metadata overhead."""
    for path, views, batches, size in (
        (files["gA"], 1, 4, G),
        (odd["views"], 2, 4, G),
        (odd["batch16"], 1, 8, 18),  # 130 in 16s: seven of 16 and one of 18
    ):
        formula = views * len(LAYERS) * batches * size * size * 4
        with h5py.File(path, "r") as f:
            shape = f[gram_path(views - 1, "layer2.0")].shape
        assert shape == (batches, size, size)
        on_disk = path.stat().st_size
        assert formula <= on_disk <= formula + 128 * 1024, (path.name, formula, on_disk)
    activations = files["aA32"].stat().st_size
    assert files["gA"].stat().st_size < activations / 20  # 6656 float32s a row vs about 34


# --- the same numbers as on the fly -------------------------------------------------------


def test_cka_from_a_gram_store_equals_on_the_fly(files):
    both = {"layers_a": LAYERS, "layers_b": LAYERS}
    rbf = {**both, "kernel": "rbf", "bootstrap": 20, **DATA}
    assert_same_cka(repcompare.cka(files["gA"], C, **rbf), repcompare.cka(A, C, **rbf))
    linear = {**both, "bootstrap": 20, **DATA}
    assert_same_cka(repcompare.cka(C, files["gA"], **linear), repcompare.cka(C, A, **linear))
    # two Gram stores, no model: batches come from the stores
    two = repcompare.cka(files["gA"], files["gB"], **both)
    assert_same_cka(two, repcompare.cka(A, B, **both, **DATA))
    assert np.all(np.diag(two.matrix.values) < 0.999)
    # the same store twice is one side, like the same model twice
    within = repcompare.cka(files["gA"], files["gA"], kernel="rbf", bootstrap=20)
    assert_same_cka(
        within, repcompare.cka(A, A, layers_a=LAYERS, kernel="rbf", bootstrap=20, **DATA)
    )
    np.testing.assert_allclose(np.diag(within.matrix.values), 1.0, atol=1e-9)
    # beside an activation file, no model: the store's batches, whichever comes first
    files_only = repcompare.cka(files["aC32"], files["gA"], **both)
    assert files_only.settings.batch_size == BATCH
    assert_same_cka(files_only, repcompare.cka(C, A, **both, **DATA))
    # a subset of the stored layers
    one = repcompare.cka(files["gA"], C, layers_a=["layer4.1"], layers_b=LAYERS, **DATA)
    assert list(one.matrix.names_a) == ["layer4.1"]
    assert_exact(one.matrix.values, repcompare.cka(A, C, **both, **DATA).matrix.values[2:])


def test_atlas_from_gram_stores_and_a_model_equals_on_the_fly(files):
    got = repcompare.atlas(files["gA"], files["gB"], C, layers=LAYERS, **DATA)
    want = repcompare.atlas(A, B, C, layers=LAYERS, **DATA)
    assert got.matrices["cka"].shape == (9, 9)
    assert_exact(got.matrices["cka"], want.matrices["cka"], "atlas")
    assert got.settings.n_examples == IMAGES


def test_a_gram_store_a_model_and_activation_files_in_one_atlas(files):
    """float32 activations give every pair exactly; float16 ones change only their pairs,
    by their rounding."""
    want = repcompare.atlas(A, B, C, layers=LAYERS, **DATA).matrices["cka"]
    exact = repcompare.atlas(files["gA"], B, files["aC32"], layers=LAYERS, **DATA)
    assert_exact(exact.matrices["cka"], want, "with float32 activations")
    half = repcompare.atlas(files["gA"], B, files["aC16"], layers=LAYERS, **DATA).matrices["cka"]
    assert_exact(half[:6, :6], want[:6, :6], "pairs without the float16 file")
    difference = np.abs(half - want)
    assert difference[6:, :].max() < 1e-4 and difference[:, 6:].max() < 1e-4
    assert difference[6:, :6].max() > 0  # the float16 file is really read


def test_invariance_from_a_gram_store_of_two_views_equals_on_the_fly(odd):
    got = repcompare.invariance(odd["views"], bootstrap=20)
    want = repcompare.invariance(A, layers=LAYERS, augment="simclr", views=2, bootstrap=20, **DATA)
    (curve,), (expected,) = got.curves, want.curves
    assert curve.variant == expected.variant == "simclr"
    assert list(curve.layers) == LAYERS
    assert_exact(curve.values, expected.values, "invariance")
    assert_exact(curve.ci_low, expected.ci_low, "ci_low")
    assert_exact(curve.ci_high, expected.ci_high, "ci_high")
    assert np.all(np.abs(curve.values) < 0.9999) and np.ptp(curve.values) > 0.01
    assert got.fingerprints == want.fingerprints
    # a Gram store of views beside a model: the model sees the recorded views
    mixed = repcompare.invariance(odd["views"], B, layers=LAYERS, bootstrap=20, **DATA)
    alone = repcompare.invariance(B, layers=LAYERS, augment="simclr", views=2, bootstrap=20, **DATA)
    assert_exact(mixed.curves[0].values, expected.values, "the store beside a model")
    assert_exact(mixed.curves[1].values, alone.curves[0].values, "the model beside a store")


# --- refusals -----------------------------------------------------------------------------


def check_refused(call, *words: str) -> str:
    """The sentence of the InputError ``call()`` raises, holding each of ``words``."""
    with pytest.raises(InputError) as caught:
        call()
    sentence = str(caught.value)
    assert "\n" not in sentence.strip(), sentence
    for word in words:
        assert word in sentence, (word, sentence)
    return sentence


def test_other_batches_are_refused_naming_the_batch_sizes(files, odd):
    gA, other = str(files["gA"]), str(odd["batch16"])
    sizes = ("batches of 32", "batches of 16", "--batch-size")
    check_refused(lambda: repcompare.cka(files["gA"], odd["batch16"]), gA, other, *sizes)
    check_refused(lambda: repcompare.cka(odd["batch16"], files["gA"]), gA, other, *sizes)
    check_refused(
        lambda: repcompare.atlas(files["gA"], odd["acts16"], C, layers=LAYERS, **DATA),
        gA,
        str(odd["acts16"]),
        *sizes,
    )


def test_another_batch_size_asked_of_a_store_is_refused(files):
    with pytest.raises(InputError, match=r"batches of 32, which cannot be cut into batches of 16"):
        repcompare.cka(files["gA"], C, layers_b=LAYERS, **{**DATA, "batch_size": 16})


def test_other_images_or_views_are_refused(files, odd):
    gA = str(files["gA"])
    check_refused(lambda: repcompare.cka(files["gA"], odd["seed1"]), gA, "order", "--seed")
    check_refused(
        lambda: repcompare.cka(files["gA"], odd["pixels"]), gA, "different input images", "--data"
    )
    check_refused(lambda: repcompare.cka(files["gA"], odd["views"]), "view", "--views")
    check_refused(
        lambda: repcompare.atlas(files["gA"], files["gB"], odd["views"]), "view", "--views"
    )
    check_refused(lambda: repcompare.invariance(files["gA"]), gA, "no augmented views", "--views")
    # a model beside the store is fed the store's images, each batch checked against it
    other = {**DATA, "data": f"builtin:{IMAGES}:40"}
    check_refused(lambda: repcompare.cka(files["gA"], C, layers_b=LAYERS, **other), gA, "batch 0")


def test_measures_that_need_features_refuse_a_gram_store(files):
    gA = str(files["gA"])
    features = "needs each layer's features"
    check_refused(
        lambda: repcompare.cka(files["gA"], C, estimator="exact", image_size=32),
        gA,
        features,
        "exact",
    )
    check_refused(
        lambda: repcompare.cka(files["gA"], C, estimator="debiased", image_size=32), gA, features
    )
    check_refused(
        lambda: repcompare.cka(C, files["gA"], measure="procrustes", image_size=32),
        gA,
        features,
        "procrustes",
    )
    check_refused(
        lambda: repcompare.atlas(files["gA"], C, measure=["cka", "procrustes"], image_size=32),
        gA,
        features,
        "--measure cka",
    )
    check_refused(lambda: repcompare.class_fit(files["gA"]), gA, features, "--store activations")


def test_a_gram_store_is_float32_and_keeps_its_settings(files, tmp_path):
    out = tmp_path / "g.h5"
    for dtype in ("float16", "bfloat16"):
        check_refused(
            lambda dtype=dtype: extract(A, out, store="grams", dtype=dtype), "float32", dtype
        )
    assert not out.exists()
    check_refused(lambda: extract(A, out, store="gram"), "--store", "activations or grams")
    # an existing Gram store is not overwritten by activations, nor the other way round
    check_refused(lambda: extract(A, files["gA"]), str(files["gA"]), "store", "--force")
    check_refused(lambda: extract(A, files["aA32"], store="grams"), "store", "--force")
    # and a complete one is left as it is
    before = files["gA"].read_bytes()
    assert extract(A, files["gA"], store="grams") == files["gA"]
    assert files["gA"].read_bytes() == before


def cli_refusal(capsys, argv: list[str], *words: str) -> None:
    capsys.readouterr()
    assert main(argv) == 2
    sentence = error_sentence(capsys.readouterr().err)
    for word in words:
        assert word in sentence, (word, sentence)


def test_the_command_line_refuses_with_exit_2_and_one_sentence(files, odd, tmp_path, capsys):
    out = str(tmp_path / "out")
    g = str(files["gA"])
    extract_args = ["extract", A, "--data", DATA["data"], *CLI_DATA, "--layers", "layer1.0"]
    cli_refusal(
        capsys,
        [*extract_args, "--store", "grams", "--dtype", "float16", "--out", str(tmp_path / "g.h5")],
        "float32",
        "--dtype float16",
    )
    assert not (tmp_path / "g.h5").exists()
    cli_refusal(capsys, ["cka", g, str(odd["batch16"]), "--out", out], g, "--batch-size")
    cli_refusal(capsys, ["cka", g, str(odd["views"]), "--out", out], "view")
    features = "needs each layer's features"
    cli_refusal(capsys, ["cka", g, C, *CLI_DATA, "--estimator", "exact", "--out", out], features)
    cli_refusal(capsys, ["cka", g, C, *CLI_DATA, "--measure", "procrustes", "--out", out], features)
    cli_refusal(capsys, ["class-fit", g, "--out", out], features, "--store activations")
    assert not Path(out).exists() or not any(Path(out).iterdir())  # no outputs written


# --- the command line, end to end ---------------------------------------------------------


def test_extract_a_gram_store_then_cka_against_the_same_model_on_the_command_line(tmp_path):
    g, out = tmp_path / "g.h5", tmp_path / "cka"
    data = ["--data", "builtin:64:32", *CLI_DATA, "--batch-size", "16"]
    layers = "layer1.0,layer2.1,layer4.1"
    argv = ["extract", A, "--store", "grams", "--out", str(g), "--layers", layers, *data]
    assert main([*argv, "--reduce", "flatten"]) == 0
    with h5py.File(g, "r") as f:
        assert f[gram_path(0, "layer2.1")].shape == (4, 16, 16) and f.attrs["complete"]
    argv = ["cka", str(g), A, "--layers-b", layers, "--reduce", "flatten", *data]
    assert main([*argv, "--bootstrap", "20", "--out", str(out)]) == 0
    with open(out / "cka.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9
    names = layers.split(",")
    values = np.array([[float(r["cka"]) for r in rows if r["layer_a"] == a] for a in names])
    assert [r["layer_b"] for r in rows[:3]] == names
    # the store of A against A itself: the same network on the same images
    np.testing.assert_allclose(np.diag(values), 1.0, atol=1e-6)
    assert values[0, 2] < 0.9
    expected = repcompare.cka(
        A, A, layers_a=names, **{**DATA, "data": "builtin:64:32", "batch_size": 16}
    )
    np.testing.assert_allclose(values, expected.matrix.values, atol=1e-6)
    document = json.loads((out / "cka.json").read_text())
    assert np.array(document["ci_low"]).shape == (3, 3)


# --- crash safety -------------------------------------------------------------------------


KILL_ARGS = [
    A,
    "--store",
    "grams",
    "--data",
    "builtin:480:48",
    "--image-size",
    "48",
    "--batch-size",
    "8",
    "--workers",
    "0",
    "--layers",
    "blocks",
]


def normalised(path: Path) -> bytes:
    """The file's bytes with its ``created`` time blanked (the one attribute that differs
    between two runs of one command)."""
    with h5py.File(path, "r") as f:
        created = f.attrs["created"]
    created = created.encode() if isinstance(created, str) else bytes(created)
    data = path.read_bytes()
    assert data.count(created) == 1
    return data.replace(created, b"#" * len(created))


@pytest.mark.slow
def test_sigkill_mid_write_then_resume_gives_the_uninterrupted_gram_store(tmp_path):
    (tmp_path / "killed").mkdir()
    (tmp_path / "whole").mkdir()
    killed, whole = tmp_path / "killed" / "g.h5", tmp_path / "whole" / "g.h5"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # as this process computes
    child = subprocess.Popen(
        command("extract", *KILL_ARGS, "--out", str(killed)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    deadline = time.monotonic() + 300
    while rows_done(killed) < 40 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    _, stderr = child.communicate()
    killed_at = rows_done(killed)
    assert child.returncode == -signal.SIGKILL, (child.returncode, stderr)
    assert 40 <= killed_at < 480, f"the run must be killed mid-way, not at {killed_at} rows"
    with pytest.raises(InputError, match="incomplete"):
        open_activations(killed)
    assert main(["extract", *KILL_ARGS, "--out", str(killed)]) == 0
    assert main(["extract", *KILL_ARGS, "--out", str(whole)]) == 0
    with h5py.File(killed, "r") as a, h5py.File(whole, "r") as b:
        assert a.attrs["complete"] and b.attrs["complete"]
        for name in ("settings", "data_fingerprint", "completion_sha256", "layer_widths"):
            assert a.attrs[name] == b.attrs[name], name
        names: list[str] = []
        a.visit(lambda name: names.append(name) if isinstance(a[name], h5py.Dataset) else None)
        assert len(names) == 8 + 4
        for name in names:
            assert a[name][()].tobytes() == b[name][()].tobytes(), name
        assert np.abs(a[gram_path(0, "layer4.1")][()]).max() > 0
    assert normalised(killed) == normalised(whole)
