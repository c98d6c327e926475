"""The report of an ``atlas`` run: every layer pair of every measure (CSV, JSON, HDF5), the
model x model summary (matched-depth mean, best-match curves, clustering, MDS) and the
pictures: per measure the full heatmap with model boundaries, the clustered model x model
heatmap with its dendrogram, the MDS map, and the curves against the reference model."""

from __future__ import annotations

from functools import partial

import h5py
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.cluster.hierarchy import dendrogram

from repcompare.report.curves import draw_curves
from repcompare.report.heatmap import ColourScale, draw_heatmap, measure_scale
from repcompare.report.model import FigureSpec, Report, Table
from repcompare.report.text import TITLE_POINTS, wrapped
from repcompare.results.atlas import AtlasResult
from repcompare.results.curves import LayerCurve
from repcompare.similarity.measures import measure_spec
from repcompare.similarity.model_map import (
    best_match_curve,
    same_depth_row,
)

# the files a run writes into --out: replaced together, stale ones removed
OWNED_FILES = ("atlas.csv", "atlas.json", "atlas.md", "atlas.h5", "atlas_*.png", "atlas_*.svg")


def _scale(measure: str) -> ColourScale:
    spec = measure_spec(measure)
    return measure_scale(measure, spec.kind, spec.range)


def summary_table(result: AtlasResult, summaries: dict[str, dict]) -> Table:
    """Each model pair's mean at matched relative depth, one column per measure."""
    records = []
    for a, model_a in enumerate(result.models):
        for b in range(a + 1, len(result.models)):
            record = {"model_a": model_a, "model_b": result.models[b]}
            for measure, summary in summaries.items():
                record[measure] = float(summary["means"][a, b])
            records.append(record)
    columns = {"model_a": "model", "model_b": "model"} | {m: m for m in summaries}
    return Table(records, columns, title="Mean at matched relative depth, per model pair")


def draw_model_map(result: AtlasResult, measure: str, summary: dict) -> Figure:
    """The model x model means in dendrogram order, with the dendrogram above."""
    order = summary["order"]
    labels = [result.models[i] for i in order]
    size = max(5.0, 0.45 * len(labels) + 3)
    fig = Figure(figsize=(size, size + 1.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[1, 3])
    if len(summary["tree"]):
        dendrogram(summary["tree"], ax=top, labels=labels, no_labels=True, color_threshold=0)
    top.set_axis_off()
    top.set_title(
        wrapped(
            f"{measure}: models clustered (average linkage), mean at matched depth\n"
            f"{result.settings.methods[measure]}",
            size - 0.5,
        ),
        fontsize=TITLE_POINTS,
    )
    scale = _scale(measure)
    cmap = matplotlib.colormaps[scale.colormap].with_extremes(bad="#bbbbbb")
    image = bottom.imshow(
        np.ma.masked_invalid(summary["means"][np.ix_(order, order)]),
        vmin=scale.low,
        vmax=scale.high,
        cmap=cmap,
        interpolation="nearest",
        aspect="auto",
    )
    bottom.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    bottom.set_yticks(range(len(labels)), labels, fontsize=8)
    fig.colorbar(image, ax=bottom, label=scale.label, fraction=0.04, pad=0.02)
    return fig


def draw_mds(result: AtlasResult, measure: str, summary: dict) -> Figure:
    """The models placed in 2-D so that their distances approximate the dissimilarity, each
    point labelled by its number (M1, M2, ...: the legend names them), the labels placed
    inside the axes without overlapping."""
    fig = Figure(figsize=(8.0, 5.5), layout="constrained")
    ax = fig.subplots()
    points = summary["mds"]
    ax.scatter(points[:, 0], points[:, 1], color="#4a78b5")
    ax.set_title(
        wrapped(
            f"{measure}: classical MDS of the models (closer: more alike)\n"
            f"{result.settings.methods[measure]}",
            5.0,
        ),
        fontsize=TITLE_POINTS,
    )
    ax.set_xlabel("MDS 1")
    ax.set_ylabel("MDS 2")
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(0.15)
    aliases = [f"M{i}" for i in range(1, len(result.models) + 1)]
    keys = [Line2D([], [], linestyle="", marker=f"${a}$", markersize=14) for a in aliases]
    names = [f"{a}: {model}" for a, model in zip(aliases, result.models, strict=True)]
    fig.legend(keys, names, fontsize=8, loc="outside right center")
    place_labels(fig, ax, points, aliases)
    return fig


OFFSETS = [(4, 4), (4, -4), (-4, 4), (-4, -4), (8, 0), (-8, 0), (0, 10), (0, -10)]


def place_labels(fig: Figure, ax, points: np.ndarray, labels: list[str]) -> None:
    """Label each point at the first of ``OFFSETS`` (points away) where the label stays
    inside the axes and off every label placed before; the first offset if none is free.
    The figure is laid out once first, so the places are the final ones."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    fig.set_layout_engine("none")  # the labels must not move the axes they were placed in
    renderer = canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed = []

    def label_at(x: float, y: float, label: str, dx: int, dy: int):
        text = ax.annotate(
            label,
            (x, y),
            textcoords="offset points",
            xytext=(dx, dy),
            fontsize=8,
            ha="left" if dx >= 0 else "right",
            va="bottom" if dy >= 0 else "top",
        )
        return text, text.get_window_extent(renderer)

    for (x, y), label in zip(points, labels, strict=True):
        for dx, dy in OFFSETS:
            text, box = label_at(x, y, label, dx, dy)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1
            inside = inside and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other) for other in placed):
                break
            text.remove()
        else:
            text, box = label_at(x, y, label, *OFFSETS[0])
        placed.append(box)


def reference_curves(result: AtlasResult, measure: str) -> list[LayerCurve]:
    """For every model but the reference: per layer, the value against the reference's layer
    at the same relative depth, and the best match among all the reference's layers."""
    distance = measure_spec(measure).is_distance
    curves = []
    for model, layers in zip(result.models, result.layers, strict=True):
        if model == result.reference:
            continue
        block = result.block(measure, model, result.reference)
        curves.append(LayerCurve(model, "same depth", layers, same_depth_row(block)))
        curves.append(LayerCurve(model, "best match", layers, best_match_curve(block, distance)))
    return curves


PER_MODEL_ABOVE = 300  # more layers than this in all: one tick label per model


def alias_names(result: AtlasResult) -> list[str]:
    """The heatmap's row names with each model's short alias: ``M1 layer1.0`` (grouped by
    block beyond 30 layers), or with more than ``PER_MODEL_ABOVE`` layers in all just
    ``M1`` (one tick label per model)."""
    total = sum(len(layers) for layers in result.layers)
    return [
        f"M{k}" if total > PER_MODEL_ABOVE else f"M{k} {layer}"
        for k, layers in enumerate(result.layers, start=1)
        for layer in layers
    ]


def atlas_figures(result: AtlasResult, summaries: dict[str, dict]) -> list[FigureSpec]:
    """Per measure: the full heatmap, the model map, the MDS map, and the reference curves."""
    figures = []
    boundaries = [start for start, _ in result.bounds[1:]]
    names = alias_names(result)
    aliases = "; ".join(f"M{k}: {m}" for k, m in enumerate(result.models, start=1))
    s = result.settings
    for measure, matrix in result.matrices.items():
        title = f"{measure}: every layer of every model\n{s.methods[measure]}\n{aliases}"
        figures += [
            FigureSpec(
                f"atlas_{measure}",
                f"{measure} of every layer pair of all models, model boundaries as lines",
                partial(
                    draw_heatmap,
                    matrix,
                    names,
                    names,
                    "layer",
                    "layer",
                    title,
                    scale=_scale(measure),
                    boundaries=boundaries,
                ),
            ),
            FigureSpec(
                f"atlas_{measure}_models",
                f"{measure}: model x model means at matched depth, clustered",
                partial(draw_model_map, result, measure, summaries[measure]),
            ),
            FigureSpec(
                f"atlas_{measure}_mds",
                f"{measure}: the models in two dimensions (classical MDS)",
                partial(draw_mds, result, measure, summaries[measure]),
            ),
        ]
        if result.reference:
            spec = measure_spec(measure)
            figures.append(
                FigureSpec(
                    f"atlas_{measure}_reference",
                    f"{measure} of every model's layers to {result.reference}",
                    partial(
                        draw_curves,
                        reference_curves(result, measure),
                        f"{measure} to {result.reference}"
                        + (" (lower: more alike)" if spec.is_distance else ""),
                        f"{measure} to the reference {result.reference}: same depth (solid), "
                        f"best match (dashed)\n{s.methods[measure]}",
                        None if spec.is_distance else (0.0, 1.0),
                    ),
                )
            )
    return figures


def write_matrices(result: AtlasResult, path) -> None:
    """``atlas.h5``: one float64 dataset per measure (NaN: undefined) with the row names and
    each model's rows as attributes, for matrices too large for JSON readers."""
    with h5py.File(path, "w") as handle:
        handle.attrs["models"] = result.models
        handle.attrs["model_rows"] = np.array(result.bounds)
        handle.attrs["names"] = result.names
        for measure, matrix in result.matrices.items():
            data = handle.create_dataset(measure, data=matrix)
            data.attrs["method"] = result.settings.methods[measure]
            data.attrs["kind"] = measure_spec(measure).kind


def atlas_report(result: AtlasResult) -> Report:
    """The report of an ``AtlasResult``."""
    summaries = result.model_summaries
    s = result.settings
    methods = "; ".join(f"{m}: {how}" for m, how in s.methods.items())
    total = sum(len(layers) for layers in result.layers)
    return Report(
        stem="atlas",
        title=f"Atlas of {len(result.models)} models ({total} layers)",
        summary=[f"{', '.join(result.models)}; batch size {s.batch_size}. {methods}."],
        records=result.records(),
        tables=[summary_table(result, summaries)],
        figures=atlas_figures(result, summaries),
        document=result.to_document(),
        notes=[
            "Every layer pair of every measure is in `atlas.csv`; matrices, model summaries "
            "and provenance in `atlas.json`; the matrices also in `atlas.h5`."
            if result.pairs_in_text
            else f"{total * total:,} layer pairs a measure: the matrices are in `atlas.h5` "
            "only; `atlas.csv` has one row per model pair, `atlas.json` the model summaries "
            "and provenance."
        ],
        attachments={"atlas.h5": partial(write_matrices, result)},
    )
