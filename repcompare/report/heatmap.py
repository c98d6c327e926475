"""Layer x layer CKA heatmaps, drawn as matplotlib Figures (``report.files`` saves them)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from weakref import WeakKeyDictionary

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from repcompare.report.model import format_value
from repcompare.report.text import TITLE_POINTS, wrapped

CELL_INCHES = 0.16
MIN_INCHES = 5.0
MAX_INCHES = 18.0  # at 150 dpi at most 2700 px a side, whatever the number of layers
GROUPED_ABOVE = 30  # more layers than this on a side: one tick label per block
UNDEFINED_NOTE = "grey: undefined (layer constant over the data)"


@dataclass(frozen=True)
class HeatmapCells:
    """What a drawn heatmap shows, cell by cell: its axes, the row and column names and the
    values (for the hover text of report.html)."""

    ax: object
    rows: list[str]
    columns: list[str]
    values: np.ndarray


# every heatmap drawn, while its Figure lives: where its cells are and what they hold
DRAWN: WeakKeyDictionary = WeakKeyDictionary()


@dataclass(frozen=True)
class Cell:
    """One cell of a saved heatmap: its rectangle in the PNG's pixels and its text."""

    x: float
    y: float
    width: float
    height: float
    text: str


def cell_areas(figure: Figure, dpi: float) -> list[Cell] | None:
    """Each cell of the heatmap ``figure`` (saved at ``dpi``, laid out) as a rectangle in
    the PNG's pixels, top left first, with ``row x column: value``; None for a figure that
    is no heatmap."""
    drawn = DRAWN.get(figure)
    if drawn is None:
        return None
    width, height = figure.get_figwidth() * dpi, figure.get_figheight() * dpi
    box = drawn.ax.get_position()
    cell_w = box.width * width / len(drawn.columns)
    cell_h = box.height * height / len(drawn.rows)
    top, left = (1 - box.y1) * height, box.x0 * width
    return [
        Cell(
            left + j * cell_w,
            top + i * cell_h,
            cell_w,
            cell_h,
            f"{row} \u00d7 {column}: {format_value(drawn.values[i, j])}",
        )
        for i, row in enumerate(drawn.rows)
        for j, column in enumerate(drawn.columns)
    ]


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


def block_of(layer: str) -> str:
    """The block a layer belongs to: its first two name parts (``layer2.1.bn2`` ->
    ``layer2.1``, ``blocks.3.attn`` -> ``blocks.3``, ``stages.1.blocks.2`` -> ``stages.1``)."""
    return ".".join(layer.split(".")[:2])


def tick_groups(names: list[str]) -> list[tuple[str, int, int]]:
    """(label, first index, last index) of each tick label: every layer, or with more than
    ``GROUPED_ABOVE`` layers each run of layers of one block."""
    if len(names) <= GROUPED_ABOVE:
        return [(name, i, i) for i, name in enumerate(names)]
    groups, start = [], 0
    for block, run in groupby(names, key=block_of):
        count = len(list(run))
        groups.append((block, start, start + count - 1))
        start += count
    return groups


def _ticks(set_ticks, names: list[str], axis_line, **style) -> None:
    """Name the rows or columns: one label per layer, or per block with a thin line between
    blocks (``axis_line``: axhline or axvline)."""
    groups = tick_groups(names)
    centres = [(first + last) / 2 for _, first, last in groups]
    set_ticks(centres, [label for label, _, _ in groups], fontsize=_font_size(len(groups)), **style)
    if len(groups) < len(names):
        for _, first, _ in groups[1:]:
            axis_line(first - 0.5, color="white", linewidth=0.4, alpha=0.7)


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

    Undefined (NaN) cells are grey, and a note under the picture says so. A side of more
    than ``GROUPED_ABOVE`` layers gets one tick label per block and thin lines between
    blocks (every layer's value is in the CSV); the canvas is
    at most ``MAX_INCHES`` a side. The Figure is not registered with pyplot.
    """
    scale = scale or CKA_SCALE
    width = float(np.clip(CELL_INCHES * len(tick_groups(columns)) + 2.5, MIN_INCHES, MAX_INCHES))
    height = float(np.clip(CELL_INCHES * len(tick_groups(rows)) + 2.0, MIN_INCHES, MAX_INCHES))
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
    _ticks(ax.set_xticks, columns, ax.axvline, rotation=90)
    _ticks(ax.set_yticks, rows, ax.axhline)
    undefined = np.isnan(values).any()
    ax.set_xlabel(f"{column_title}\n{UNDEFINED_NOTE}" if undefined else column_title)
    ax.set_ylabel(row_title)
    ax.set_title(wrapped(title, width - 1.5), fontsize=TITLE_POINTS)
    for boundary in boundaries:
        ax.axhline(boundary - 0.5, color="white", linewidth=1.2)
        ax.axvline(boundary - 0.5, color="white", linewidth=1.2)
    fig.colorbar(image, ax=ax, label=scale.label, fraction=0.04, pad=0.02)
    DRAWN[fig] = HeatmapCells(ax, list(rows), list(columns), values)
    return fig
