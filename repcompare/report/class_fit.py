"""The report of a ``class-fit`` run: a record per (model, layer) with every measure, one plot
per measure (with ``--tokens``, also a kNN and a probe plot of the class, mean and
centre-patch tokens)."""

from __future__ import annotations

from functools import partial

from repcompare.report.curves import draw_curves
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
PLOTS = {
    "class_cka": ("class-structure CKA (with one-hot labels)", UNIT),
    "intra": ("intra-class squared distance to the class mean", None),
    "inter": ("mean squared distance between class means", None),
    "inter_min": ("smallest squared distance between class means", None),
    "ratio": ("crowding ratio intra / inter (lower: better separated)", None),
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
    """A plot per measure (one line per model; class CKA with its interval), and with
    ``--tokens`` a kNN and a probe plot of the token features (a dash per feature)."""
    s = result.settings
    figures = []
    for measure, (ylabel, ylim) in PLOTS.items():
        curves = []
        for fit in result.fits:
            ci = fit.class_ci if measure == "class_cka" and fit.class_ci else (None, None)
            curves.append(LayerCurve(fit.model, "", fit.layers, fit.measures[measure], *ci))
        title = f"{ylabel}\n{s.n_examples} images, {s.num_classes} classes"
        figures.append(
            FigureSpec(
                f"class_fit_{measure}",
                f"{ylabel} per layer, one line per model",
                partial(draw_curves, curves, ylabel, title, ylim),
            )
        )
    for measure in ("knn", "probe") if s.tokens else ():
        curves = [
            LayerCurve(fit.model, feature, fit.layers, fit.measures[f"{measure}_{feature}"])
            for fit in result.fits
            for feature in TOKEN_FEATURES
        ]
        ylabel = f"{PLOTS[measure][0]} from one token feature"
        figures.append(
            FigureSpec(
                f"class_fit_tokens_{measure}",
                f"{ylabel} per layer ({TOKEN_FEATURE_NAMES}), one line per model and feature",
                partial(draw_curves, curves, ylabel, f"{ylabel}\n{TOKEN_FEATURE_NAMES}", UNIT),
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
