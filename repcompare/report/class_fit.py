"""The report of a ``class-fit`` run: a record per (model, layer) with every measure, a grid
of small panels, one per measure (with ``--tokens``, also a kNN and a probe panel of the
class, mean and centre-patch tokens)."""

from __future__ import annotations

from functools import partial

from repcompare.report.curves import draw_panels
from repcompare.report.model import FigureSpec, Report, Table
from repcompare.results.class_fit import TOKEN_FEATURES, TOKEN_MEASURES, ClassFitResult
from repcompare.results.curves import LayerCurve

# the files a run writes into --out: replaced together, stale ones removed
OWNED_FILES = (
    "class_fit.csv",
    "class_fit.json",
    "class_fit.md",
    "class_fit_*.png",
    "class_fit_*.svg",
)

UNIT = (0.0, 1.02)
PLOTS = {  # measure -> (panel title, y range)
    "class_cka": ("class CKA (with one-hot labels)", UNIT),
    "intra": ("within-class distance", None),
    "inter": ("distance between class means", None),
    "inter_min": ("nearest class means", None),
    "ratio": ("crowding ratio (lower: apart)", None),
    "knn": ("kNN accuracy (cosine)", UNIT),
    "probe": ("linear-probe accuracy", UNIT),
}
COLUMNS = {
    "model": "model",
    "layer": "layer",
    "class_cka": "class CKA",
    "ratio": "crowding ratio",
    "knn": "kNN acc.",
    "probe": "probe acc.",
}
TOKEN_COLUMNS = {
    "model": "model",
    "layer": "layer",
    **{m: m.replace("knn", "kNN").replace("_", " ") for m in TOKEN_MEASURES},
}
TOKEN_FEATURE_NAMES = "class token, mean of patch tokens, centre patch token"


def columns(tokens: bool) -> dict[str, str]:
    """The terminal and Markdown table's columns: the token features' accuracies with
    ``--tokens``."""
    return TOKEN_COLUMNS if tokens else COLUMNS


def class_fit_figures(result: ClassFitResult) -> list[FigureSpec]:
    """A grid of small panels, one per measure (one line per model; class CKA with its
    interval), and with ``--tokens`` a kNN and a probe panel of the token features (a dash
    per feature)."""
    s = result.settings
    panels = []
    for measure, (name, _) in PLOTS.items():
        curves = []
        for fit in result.fits:
            ci = fit.class_ci if measure == "class_cka" and fit.class_ci else (None, None)
            curve = LayerCurve(fit.model, "", fit.layers, fit.measures[measure], *ci, fit.roles)
            curves.append(curve)
        panels.append((name, curves))
    title = f"Class structure per layer: {s.n_examples} images, {s.num_classes} classes"
    figures = [
        FigureSpec(
            "class_fit_measures",
            f"Class structure per layer, one panel per measure ({', '.join(PLOTS)}), one "
            "line per model",
            partial(draw_panels, panels, "", title, share_y=False),
        )
    ]
    if s.tokens:
        token_panels = [
            (
                PLOTS[measure][0],
                [
                    LayerCurve(fit.model, feature, fit.layers, fit.measures[f"{measure}_{feature}"])
                    for fit in result.fits
                    for feature in TOKEN_FEATURES
                ],
            )
            for measure in ("knn", "probe")
        ]
        figures.append(
            FigureSpec(
                "class_fit_tokens",
                f"kNN and probe accuracy per layer from one token feature ({TOKEN_FEATURE_NAMES})"
                ", one line per model and feature",
                partial(draw_panels, token_panels, "accuracy", TOKEN_FEATURE_NAMES, UNIT),
            )
        )
    return figures


def class_fit_report(result: ClassFitResult) -> Report:
    """The report of a ``ClassFitResult``."""
    s = result.settings
    records = result.records()
    summary = [
        f"{s.n_examples} images of {s.num_classes} classes. Class CKA: minibatch CKA with "
        f"the one-hot labels (batch size {s.batch_size}). Crowding: on L2-normalised pooled "
        f"features. kNN (cosine, k={s.knn_k}) and linear probe (L2 {s.probe_l2}) trained "
        f"on {s.n_train} and tested on {s.n_test} images (seeded stratified split)."
    ]
    if s.tokens:
        summary.append(
            "Token features (`--tokens`): kNN and probe accuracy from the class token "
            "(`cls`), the mean of the patch tokens (`mean`) and the centre patch token "
            "(`patch`) alone, on the same split; undefined where a layer has no such token."
        )
    table = Table(
        records,
        columns(s.tokens),
        title=(
            f"Class fit: {s.n_examples} images, {s.num_classes} classes "
            f"(kNN and probe: {s.n_train} train / {s.n_test} test)"
        ),
        caption=f"inputs {result.fingerprint[:16]}; every measure in class_fit.csv",
        section_by="model",
    )
    return Report(
        stem="class_fit",
        title="Class structure per layer",
        summary=summary,
        records=records,
        tables=[table],
        figures=class_fit_figures(result),
        document=result.to_document(),
        notes=["Every measure (intra, inter, inter_min too) is in `class_fit.csv`."],
    )
