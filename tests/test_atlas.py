"""``repcompare atlas``: its blocks equal pairwise ``cka`` runs, its fixed-sample measures
equal the measures on the same rows, and its files hold the same numbers."""

import json

import h5py
import numpy as np
import pytest
import torch

import repcompare
from repcompare.analyses import memory
from repcompare.cli import main
from repcompare.similarity import MEASURES
from tests.support.checkpoints import seeded_torchvision_resnet18

DATA = {"data": "builtin:48:32", "image_size": 32, "crop_pct": 1.0, "workers": 0}
LAYERS = "layer1.0,layer2.1,layer3.1,layer4.1"
EXACT = 1e-10


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two torchvision ResNet-18 checkpoints (seeded random init) and a third model's
    activation file (float32), extracted from the same images."""
    root = tmp_path_factory.mktemp("atlas")
    specs = [seeded_torchvision_resnet18(root / f"net{seed}.pth", seed) for seed in (0, 1, 2)]
    file = root / "net2.h5"
    repcompare.extract(specs[2], out=file, layers=LAYERS, dtype="float32", batch_size=16, **DATA)
    return [specs[0], specs[1], str(file)]


@pytest.fixture(scope="module")
def atlas(models):
    measures = "cka,procrustes,angular,mutual-knn,rsa"  # CCA on 32 images is refused
    return repcompare.atlas(
        *models, layers=LAYERS, measure=measures, sample=32, batch_size=16, reference="1", **DATA
    )


def test_every_block_equals_the_pairwise_cka_run(models, atlas):
    for a in range(3):
        for b in range(3):
            alone = repcompare.cka(
                models[a], models[b], layers_a=LAYERS, layers_b=LAYERS, batch_size=16, **DATA
            )
            block = atlas.block("cka", atlas.models[a], atlas.models[b])
            np.testing.assert_allclose(block, alone.matrix.values, atol=EXACT, rtol=0)


def _sample_rows(file: str, sample: int) -> list[torch.Tensor]:
    with h5py.File(file) as handle:
        names = json.loads(handle.attrs["layers"])
        return [torch.from_numpy(handle[f"activations/view0/{n}"][:sample]) for n in names]


def _check_measures(atlas, file: str, names: tuple[str, ...], rows: int) -> None:
    """Every listed measure of the file's model with itself equals the measure on the
    first ``rows`` rows of the file."""
    features = _sample_rows(file, rows)
    third = atlas.models[2]
    for name in names:
        block = atlas.block(name, third, third)
        spec = MEASURES[name]
        for i in range(len(features)):
            for j in range(len(features)):
                expected = float(spec.compute(features[i], features[j]))
                assert block[i, j] == pytest.approx(expected, abs=1e-7), (name, i, j)


def test_fixed_sample_measures_equal_the_measures_on_the_same_rows(models, atlas):
    _check_measures(atlas, models[2], ("mutual-knn", "rsa"), 32)
    assert atlas.settings.n_sample == 32
    assert "fixed sample" in atlas.settings.methods["rsa"]
    assert "all 48 images" in atlas.settings.methods["cka"]


def test_shape_metrics_stream_over_narrow_layers_and_equal_the_whole_sample(models):
    run = {"layers": "layer3.1,layer4.1", "reduce": "avgpool", "measure": "procrustes,angular"}
    streamed = repcompare.atlas(*models[:2], **run, sample=512, batch_size=16, **DATA)
    assert streamed.settings.methods["angular"] == (
        "streamed cross-covariances over all 48 images; biased: 48 images, width up to 512"
    )
    assert "shrinks towards 0 on 48 images" in streamed.settings.caveats["angular"]
    whole = repcompare.atlas(*models[:2], **run, sample=48, batch_size=16, **DATA)  # 512 wide
    assert whole.settings.methods["angular"].startswith("on a fixed sample: the first 48")
    for name in ("procrustes", "angular"):
        np.testing.assert_allclose(streamed.matrices[name], whole.matrices[name], atol=1e-7)


def test_distances_keep_their_scale_and_best_matches_are_minima(atlas):
    document = atlas.to_dict()
    procrustes = document["measures"]["procrustes"]
    assert procrustes["kind"] == "distance" and procrustes["best"] == "min"
    assert np.nanmax(atlas.matrices["procrustes"]) > 0.1  # not forced into 0..1 similarity
    np.testing.assert_allclose(np.diag(atlas.matrices["procrustes"]), 0, atol=1e-7)
    first = procrustes["pairs"][0]
    block = atlas.block("procrustes", first["model_a"], first["model_b"])
    np.testing.assert_allclose(first["best_match"], block.min(axis=1))
    cka_pair = document["measures"]["cka"]["pairs"][0]
    np.testing.assert_allclose(
        cka_pair["best_match"],
        atlas.block("cka", cka_pair["model_a"], cka_pair["model_b"]).max(axis=1),
    )


def test_the_model_summary_is_the_mean_at_matched_depth(atlas):
    document = atlas.to_dict()["measures"]["cka"]
    a, b = atlas.models[0], atlas.models[1]
    block = atlas.block("cka", a, b)
    assert document["model_means"][0][1] == pytest.approx(np.mean(np.diag(block)))
    assert sorted(document["cluster_order"]) == sorted(atlas.models)
    assert len(document["mds"]) == 3


def test_the_cli_writes_the_pictures_and_the_same_matrices(models, tmp_path):
    out = tmp_path / "atlas"
    args = [*models[:2], "--layers", LAYERS, "--measure", "cka", "--measure", "rsa"]
    args += ["--sample", "24", "--reference", "2", "--batch-size", "16", "--out", str(out)]
    args += ["--data", "builtin:48:32", "--image-size", "32", "--crop-pct", "1.0", "--workers", "0"]
    assert main(["atlas", *args]) == 0
    for name in ("atlas_cka", "atlas_cka_models", "atlas_cka_mds", "atlas_rsa_reference"):
        assert (out / f"{name}.png").stat().st_size > 0
    document = json.loads((out / "atlas.json").read_text())
    with h5py.File(out / "atlas.h5") as handle:
        np.testing.assert_array_equal(
            handle["cka"][()], np.array(document["measures"]["cka"]["matrix"], dtype=float)
        )
        assert list(handle.attrs["models"]) == [m["label"] for m in document["models"]]
    (out / "atlas_notes.png").write_text("mine")  # named like ours, never written by us
    assert main(["atlas", *args[: args.index("rsa") - 1], *args[args.index("rsa") + 1 :]]) == 0
    assert not (out / "atlas_rsa_reference.png").exists()  # ours, stale: removed
    assert (out / "atlas_notes.png").read_text() == "mine"


def test_too_many_layers_for_memory_is_one_sentence(models, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    with pytest.raises(repcompare.InputError, match=r"the atlas of 8 layers .* needs about"):
        repcompare.atlas(*models[:2], layers=LAYERS, **DATA)


def test_bad_measure_and_reference_are_one_sentence(models):
    with pytest.raises(repcompare.InputError, match="--measure"):
        repcompare.atlas(*models[:2], measure="cosine", **DATA)
    with pytest.raises(repcompare.InputError, match="--reference 'vgg'"):
        repcompare.atlas(*models[:2], reference="vgg", layers=LAYERS, **DATA)


def test_an_untrained_baseline_is_one_more_model_per_architecture(models):
    """Both checkpoints are torchvision ResNet-18s: one untrained network (init seed 1 here)
    joins them, equal to that network given by its spec; the file side has none."""
    run = {"layers": LAYERS, "batch_size": 16, "init_seed": 1, **DATA}
    with pytest.warns(match="no untrained baseline"):
        result = repcompare.atlas(*models, baseline="untrained", **run)
    assert result.models[-1] == "untrained resnet18"
    alone = repcompare.atlas(models[0], "torchvision:resnet18", **run)
    block = result.matrices["cka"][: len(alone.names), :][:, -4:]
    np.testing.assert_allclose(block[:4], alone.matrices["cka"][:4, 4:], atol=EXACT)
    assert np.allclose(result.matrices["cka"][4:8, -4:].diagonal(), 1.0)  # net1 is seed 1
