"""Layer x layer CKA heatmaps, drawn as matplotlib Figures (``report.files`` saves them)."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure

CELL_INCHES = 0.16
MIN_INCHES = 5.0
UNDEFINED_NOTE = "grey: undefined (layer constant over the data)"


def _font_size(n: int) -> float:
    return float(np.clip(360 / max(n, 1), 4, 10))


def draw_heatmap(
    values: np.ndarray,
    rows: list[str],
    columns: list[str],
    row_title: str,
    column_title: str,
    title: str,
) -> Figure:
    """``values`` (rows: side A top to bottom, columns: side B) on a fixed 0..1 scale.

    Undefined (NaN) cells are grey, and a note under the picture says so. The
    Figure is not registered with pyplot.
    """
    width = max(MIN_INCHES, CELL_INCHES * len(columns) + 2.5)
    height = max(MIN_INCHES, CELL_INCHES * len(rows) + 2.0)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="#bbbbbb")
    image = ax.imshow(
        np.ma.masked_invalid(values),
        vmin=0,
        vmax=1,
        cmap=cmap,
        interpolation="nearest",
        aspect="auto",
    )
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=_font_size(len(columns)))
    ax.set_yticks(range(len(rows)), rows, fontsize=_font_size(len(rows)))
    ax.set_xlabel(column_title)
    ax.set_ylabel(row_title)
    ax.set_title(title, fontsize=11)
    fig.colorbar(image, ax=ax, label="CKA", fraction=0.04, pad=0.02)
    if np.isnan(values).any():
        fig.text(0.01, 0.005, UNDEFINED_NOTE, fontsize=8, color="#555555")
    return fig
