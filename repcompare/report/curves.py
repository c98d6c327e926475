"""Per-layer line plots, drawn as matplotlib Figures (``report.files`` saves them): one line
per model (and variant), depth on x, in one panel or in small multiples sharing the y axis.

Where a curve's layers mix block outputs and residual branches (the paper preset,
``LayerCurve.roles``), the two kinds are separate series of the same colour: block outputs
solid with circles, residual branches thin with triangles, each over its own depth, so a
line never alternates between two kinds of representation (Grigg et al. plot them apart).
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from repcompare.report.text import TITLE_POINTS, wrapped
from repcompare.results.curves import LayerCurve, relative_depth

MAX_NAMED_TICKS = 40
LINE_STYLES = ("-", "--", ":", "-.")
SERIES = {  # role -> (legend suffix, marker, line width, opacity)
    "block": (" (block outputs)", "o", 1.6, 1.0),
    "residual": (" (residual branches)", "^", 1.0, 0.7),
}
PANEL_WIDTH = 4.2  # inches of one small multiple without named ticks
PANEL_HEIGHT = 3.4
LEGEND_WIDTH = 2.8


def draw_curves(
    curves: list[LayerCurve],
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Draw ``curves`` in one panel, one line each (a colour per model, a dash per variant),
    with shaded intervals where given; ``ylim`` is widened to show any value below it.

    The x axis is relative depth; when every curve has the same layers (one
    architecture), the ticks are the layer names (the block outputs' when the layers mix
    kinds). Undefined (NaN) values leave gaps. The Figure is not registered with pyplot.
    """
    return draw_panels([("", curves)], ylabel, title, ylim)


def draw_panels(
    panels: list[tuple[str, list[LayerCurve]]],
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = None,
    columns: int = 4,
    share_y: bool = True,
) -> Figure:
    """Small multiples: one panel per (panel title, curves), at most ``columns`` a row,
    sharing the y axis (``share_y``: one quantity in every panel) and one legend (a model
    keeps its colour in every panel)."""
    models = list(dict.fromkeys(c.model for _, curves in panels for c in curves))
    ticks = max(len(_tick_names(curves) or []) for _, curves in panels)
    width = max(PANEL_WIDTH, 0.2 * ticks + 1.6)
    ncols = min(columns, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    inches = width * ncols + LEGEND_WIDTH
    fig = Figure(
        figsize=(inches, PANEL_HEIGHT * nrows + 0.6 + 0.6 * (ticks > 0)), layout="constrained"
    )
    axes = fig.subplots(nrows, ncols, sharey=share_y, squeeze=False).ravel()
    for ax, (name, curves) in zip(axes, panels, strict=False):
        _draw_panel(ax, curves, models, ylim)
        if name:
            ax.set_title(name, fontsize=10)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[::ncols]:
        ax.set_ylabel(ylabel)
    fig.suptitle(wrapped(title, inches - LEGEND_WIDTH), fontsize=TITLE_POINTS)
    handles, labels = _unique_legend(axes[: len(panels)])
    fig.legend(handles, labels, fontsize=8, loc="outside right center")
    return fig


def _tick_names(curves: list[LayerCurve]) -> list[str] | None:
    """The layer names for the x ticks when every curve has the same layers (the block
    outputs' when the layers mix kinds), else None."""
    first = curves[0]
    if any(c.layers != first.layers for c in curves):
        return None
    names = first.layers
    if first.roles:
        names = [n for n, r in zip(first.layers, first.roles, strict=True) if r == "block"]
    return names if len(names) <= MAX_NAMED_TICKS else None


def _series(curve: LayerCurve) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]]:
    """(role, depth, values, interval rows) of each series of ``curve``: one, or one per
    kind of layer when its layers mix block outputs and residual branches."""
    kinds = [(None, np.arange(len(curve.layers)))]
    if curve.roles:
        roles = np.array(curve.roles)
        kinds = [(role, np.flatnonzero(roles == role)) for role in SERIES]
    series = []
    for role, rows in kinds:
        interval = None
        if curve.ci_low is not None:
            interval = np.stack([curve.ci_low[rows], curve.ci_high[rows]])
        series.append((role, relative_depth(len(rows)), curve.values[rows], interval))
    return series


def _draw_panel(
    ax: Axes, curves: list[LayerCurve], models: list[str], ylim: tuple[float, float] | None
) -> None:
    """The curves of one panel: a colour per model (``models``: the figure's order), a dash
    per variant of this panel."""
    variants = list(dict.fromkeys(c.variant for c in curves))
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    lowest = []
    for curve in curves:
        colour = colours[models.index(curve.model) % len(colours)]
        label = f"{curve.model} ({curve.variant})" if len(variants) > 1 else curve.model
        for role, depth, values, interval in _series(curve):
            suffix, marker, line, alpha = SERIES.get(role, ("", "o", 1.4, 1.0))
            ax.plot(
                depth,
                values,
                color=colour,
                linestyle=LINE_STYLES[variants.index(curve.variant) % len(LINE_STYLES)],
                marker=marker,
                markersize=3,
                linewidth=line,
                alpha=alpha,
                label=label + suffix,
            )
            if interval is not None:
                ax.fill_between(depth, *interval, color=colour, alpha=0.15 * alpha)
                lowest.append(interval[0])
            lowest.append(values)
    names = _tick_names(curves)
    if names:
        ax.set_xticks(relative_depth(len(names)), names, rotation=90)
        ax.tick_params(axis="x", labelsize=float(np.clip(300 / len(names), 5, 8)))
    else:
        ax.set_xlabel("relative depth (first 0, last 1)")
    if ylim is not None:
        low = float(np.nanmin(np.concatenate(lowest), initial=ylim[0]))
        ax.set_ylim(min(ylim[0], low - 0.02), ylim[1])
    ax.grid(alpha=0.3)


def _unique_legend(axes) -> tuple[list, list[str]]:
    """Every line of ``axes`` once by label, in the order first drawn."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)
