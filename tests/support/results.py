"""Small results built by hand, so every rendered value can be checked against them."""

from __future__ import annotations

import numpy as np

from repcompare.results.cka import CKAResult, CKASettings
from repcompare.results.class_fit import (
    MEASURES,
    TOKEN_MEASURES,
    ClassFit,
    ClassFitResult,
    ClassFitSettings,
)
from repcompare.results.curves import LayerCurve
from repcompare.results.invariance import InvarianceResult, InvarianceSettings
from repcompare.results.provenance import Provenance
from repcompare.similarity import SimilarityMatrix

# side A: two paper-preset blocks with their residual branches; the first branch is constant
NAMES_A = ("layer1.0", "layer1.0.bn2", "layer2.0", "layer2.0.bn2")
NAMES_B = ("stem", "layer1.0", "layer1.0.bn2", "layer2.0", "layer2.0.bn2")
ROLES = {
    "layer1.0": "block",
    "layer1.0.bn2": "residual",
    "layer2.0": "block",
    "layer2.0.bn2": "residual",
}
DEAD = "layer1.0.bn2"


def provenance(spec: str) -> Provenance:
    return Provenance(model_spec=spec, checkpoint_sha256="ab" * 32, reduction="flatten")


def cka_result(bootstrap: bool = True, paper: bool = True) -> CKAResult:
    """CKA of 4 layers of A with 5 of B; A's ``layer1.0.bn2`` is constant (a NaN row)."""
    rng = np.random.default_rng(3)
    values = rng.uniform(0.05, 0.95, (len(NAMES_A), len(NAMES_B)))
    values[1] = np.nan
    values[2, 3] = 0.25  # layer2.0 matches stem best, not its namesake
    values[2, 0] = 0.9
    low = high = None
    if bootstrap:
        low, high = values - 0.05, values + 0.04
    matrix = SimilarityMatrix(NAMES_A, NAMES_B, values, (DEAD,), (), 256)
    settings = CKASettings(
        kernel="linear",
        rbf_fraction=0.8,
        estimator="minibatch",
        bootstrap=100 if bootstrap else 0,
        seed=0,
        batch_size=64,
        n_examples=256,
        device="cpu",
    )
    return CKAResult(
        "timm:resnet18",
        "torchvision:resnet18",
        matrix,
        low,
        high,
        settings,
        provenance("timm:resnet18"),
        provenance("torchvision:resnet18"),
        1.5,
        dict(ROLES) if paper else {},
        dict(ROLES) if paper else {},
    )


def invariance_result(bootstrap: bool = True) -> InvarianceResult:
    """Curves of two models of different depth under two augmentations; one value undefined."""
    curves = []
    for a, augmentation in enumerate(("simclr", "flip")):
        for model, layers in (("small", ["l0", "l1", "l2"]), ("big", ["b0", "b1", "b2", "b3"])):
            values = np.linspace(0.2, 0.8, len(layers)) + 0.05 * a
            if model == "big" and augmentation == "simclr":
                values[1] = np.nan
            curve = LayerCurve(model, augmentation, layers, values)
            if bootstrap:
                curve.ci_low, curve.ci_high = values - 0.1, values + 0.1
            curves.append(curve)
    settings = InvarianceSettings(
        augmentations=["simclr", "flip"],
        views=2,
        view_seed=0,
        bootstrap=50 if bootstrap else 0,
        batch_size=32,
        n_examples=128,
        device="cpu",
    )
    return InvarianceResult(
        curves,
        {"simclr": "c" * 64, "flip": "d" * 64},
        settings,
        {"small": provenance("small"), "big": provenance("big")},
        2.25,
    )


def class_fit_result(tokens: bool = True, bootstrap: bool = True) -> ClassFitResult:
    """Two models; the first layer of ``vit`` has no class token (undefined ``cls``)."""
    fits = []
    for m, (model, layers) in enumerate((("vit", ["blocks.0", "blocks.1"]), ("cnn", ["s1"]))):
        names = MEASURES + (TOKEN_MEASURES if tokens else ())
        measures = {
            name: 0.1 + 0.8 * np.arange(1, len(layers) + 1) / (k + 2 + m) / len(layers)
            for k, name in enumerate(names)
        }
        if tokens and model == "vit":
            measures["knn_cls"][0] = np.nan
            measures["probe_cls"][0] = np.nan
        ci = (measures["class_cka"] - 0.02, measures["class_cka"] + 0.03) if bootstrap else None
        fits.append(ClassFit(model, layers, measures, ci))
    settings = ClassFitSettings(
        knn_k=20,
        test_fraction=0.2,
        probe_l2=1e-3,
        bootstrap=20 if bootstrap else 0,
        seed=0,
        tokens=tokens,
        num_classes=10,
        n_train=80,
        n_test=20,
        batch_size=20,
        n_examples=100,
        device="cpu",
    )
    return ClassFitResult(
        fits, "e" * 64, settings, {"vit": provenance("vit"), "cnn": provenance("cnn")}, 3.0
    )
