"""Layer x layer CKA heatmaps, drawn as matplotlib Figures (``report.files`` saves them)."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure

CELL_INCHES = 0.16
MIN_INCHES = 5.0
UNDEFINED_NOTE = "grey: undefined (layer constant over the data)"


@dataclass(frozen=True)
class ColourScale:
    """The fixed range of a picture's colours, its colour map and its label. A distance uses
    the reversed map, so that bright still means alike."""

    low: float
    high: float
    colormap: str
    label: str


CKA_SCALE = ColourScale(0.0, 1.0, "magma", "CKA")


def measure_scale(name: str, kind: str, value_range: tuple[float, float]) -> ColourScale:
    """The colour scale of a measure: its own range, bright where alike."""
    if kind == "distance":
        return ColourScale(*value_range, "magma_r", f"{name} (distance: lower is more alike)")
    return ColourScale(*value_range, "magma", name)


def _font_size(n: int) -> float:
    return float(np.clip(360 / max(n, 1), 4, 10))


def draw_heatmap(
    values: np.ndarray,
    rows: list[str],
    columns: list[str],
    row_title: str,
    column_title: str,
    title: str,
    *,
    scale: ColourScale | None = None,
    boundaries: list[int] = (),
) -> Figure:
    """``values`` (rows: side A top to bottom, columns: side B) on a fixed scale: CKA's 0..1
    unless ``scale`` says otherwise; ``boundaries`` are row/column indices before which a
    line is drawn (where one model's layers end).

    Undefined (NaN) cells are grey, and a note under the picture says so. The
    Figure is not registered with pyplot.
    """
    scale = scale or CKA_SCALE
    width = max(MIN_INCHES, CELL_INCHES * len(columns) + 2.5)
    height = max(MIN_INCHES, CELL_INCHES * len(rows) + 2.0)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps[scale.colormap].with_extremes(bad="#bbbbbb")
    image = ax.imshow(
        np.ma.masked_invalid(values),
        vmin=scale.low,
        vmax=scale.high,
        cmap=cmap,
        interpolation="nearest",
        aspect="auto",
    )
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=_font_size(len(columns)))
    ax.set_yticks(range(len(rows)), rows, fontsize=_font_size(len(rows)))
    ax.set_xlabel(column_title)
    ax.set_ylabel(row_title)
    ax.set_title(title, fontsize=11)
    for boundary in boundaries:
        ax.axhline(boundary - 0.5, color="white", linewidth=1.2)
        ax.axvline(boundary - 0.5, color="white", linewidth=1.2)
    fig.colorbar(image, ax=ax, label=scale.label, fraction=0.04, pad=0.02)
    if np.isnan(values).any():
        fig.text(0.01, 0.005, UNDEFINED_NOTE, fontsize=8, color="#555555")
    return fig
