"""End-to-end token-level analyses on timm ViTs: ``cka``/``invariance --reduce tokens``,
``invariance --reduce cls|mean`` and ``class-fit --tokens``."""

import json

import numpy as np
import pytest

from repcompare.cli import main

VIT, DEIT = "timm:vit_tiny_patch16_224", "timm:deit_tiny_distilled_patch16_224"
DATA = ["--image-size", "32", "--data", "builtin:32:32", "--workers", "0", "--batch-size", "16"]


def records(path) -> list[dict]:
    return json.loads(path.read_text())["records"]


@pytest.mark.slow
def test_cka_tokens_of_a_vit_against_itself_and_a_distilled_deit(tmp_path):
    same = tmp_path / "same"
    layers = ["--layers-a", "blocks.0", "--layers-b", "blocks.0,blocks.1"]
    args = ["cka", VIT, VIT, "--out", str(same), *layers, "--reduce", "tokens", *DATA]
    assert main([*args, "--token-cap", "40"]) == 0
    result = json.loads((same / "cka.json").read_text())
    assert result["cka"][0][0] == pytest.approx(1.0, abs=1e-6)  # the same tokens on both sides
    assert result["settings"]["token_cap"] == 40 and result["settings"]["n_images"] == 32
    assert result["settings"]["n_examples"] == 2 * 40  # two batches of 16 images x 4 patches
    other = tmp_path / "deit"  # class + distillation tokens: the same 4 patch tokens remain
    layers = ["--layers-a", "blocks.0,blocks.1.attn", "--layers-b", "blocks.0,blocks.1.attn"]
    args = ["cka", VIT, DEIT, "--out", str(other), *layers, "--reduce", "tokens", *DATA]
    assert main(args) == 0
    values = np.array(json.loads((other / "cka.json").read_text())["cka"], dtype=float)
    assert values.shape == (2, 2) and np.all(np.abs(values) <= 1)
    assert json.loads((other / "cka.json").read_text())["settings"]["n_examples"] == 2 * 64


def test_token_rows_cannot_be_stored_or_mixed_with_images(tmp_path, capsys):
    extract = ["extract", VIT, "--out", str(tmp_path / "a.h5"), "--reduce", "tokens", *DATA]
    assert main(extract) == 2
    assert "rows of token samples, not images" in capsys.readouterr().err
    mixed = ["cka", VIT, VIT, "--out", str(tmp_path / "c"), "--layers-a", "blocks.0"]
    assert main([*mixed, "--reduce-a", "tokens", "--reduce-b", "mean", *DATA]) == 2
    assert "use --reduce tokens for every model" in capsys.readouterr().err


@pytest.mark.slow
def test_invariance_of_class_token_patch_mean_and_tokens(tmp_path):
    """Identical views (--augment none) are invariant (1) under every token reduction; the
    class token and the patch tokens of SimCLR views are not."""
    layers = ["--layers", "blocks.0,blocks.11"]
    for reduction in ("cls", "mean", "tokens"):
        out = tmp_path / reduction
        args = ["invariance", VIT, "--out", str(out), *layers, "--reduce", reduction, *DATA]
        args[args.index("builtin:32:32")] = "builtin:16:32"  # one batch
        assert main([*args, "--augment", "none", "--augment", "simclr"]) == 0
        rows = records(out / "invariance.json")
        identical = [r["invariance"] for r in rows if r["augmentation"] == "none"]
        augmented = [r["invariance"] for r in rows if r["augmentation"] == "simclr"]
        assert identical == pytest.approx([1.0, 1.0], abs=1e-6), reduction
        assert all(-1 <= v < 0.999 for v in augmented), reduction


@pytest.mark.slow
def test_class_fit_tokens_equal_the_cls_and_mean_reductions(tmp_path, capsys):
    """The cls and mean token features are the ``--reduce cls`` and ``--reduce mean``
    representations: their kNN and probe accuracies on the same split are equal."""
    layers = ["--layers", "patch_embed.norm,blocks.0,blocks.5,head"]
    data = [*DATA[:3], "builtin:60:32", "--workers", "0", "--batch-size", "20"]
    out = tmp_path / "tokens"
    assert main(["class-fit", VIT, "--out", str(out), *layers, "--tokens", *data]) == 0
    err = capsys.readouterr().err
    assert "no class token" in err and "patch_embed.norm" in err
    assert "no token positions" in err and "head" in err
    tokens = records(out / "class_fit.json")
    assert np.isnan(float(tokens[0]["probe_cls"] or "nan"))  # patch_embed: patches only
    assert all(tokens[3][f"probe_{f}"] is None for f in ("cls", "mean", "patch"))  # head
    assert (out / "class_fit_tokens.png").stat().st_size > 1000
    assert "probe cls" in (out / "class_fit.md").read_text()
    layers = ["--layers", "blocks.0,blocks.5"]
    for feature in ("cls", "mean"):
        reduced = tmp_path / feature
        args = ["class-fit", VIT, "--out", str(reduced), *layers, "--reduce", feature, *data]
        assert main(args) == 0
        rows = records(reduced / "class_fit.json")
        for row, token_row in zip(rows, tokens[1:3], strict=True):
            assert row["probe"] == pytest.approx(token_row[f"probe_{feature}"], abs=1e-6)
            assert row["knn"] == pytest.approx(token_row[f"knn_{feature}"], abs=1e-6)
