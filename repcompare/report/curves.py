"""Per-layer line plots, drawn as matplotlib Figures (``report.files`` saves them): one line
per model (and augmentation), depth on x."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from repcompare.results.curves import LayerCurve, relative_depth

MAX_NAMED_TICKS = 40
LINE_STYLES = ("-", "--", ":", "-.")


def draw_curves(
    curves: list[LayerCurve],
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Draw ``curves``, one line each (a colour per model, a dash per variant), with shaded
    intervals where given; ``ylim`` is widened to show any value below it.

    The x axis is relative depth; when every curve has the same layers (one
    architecture), the ticks are the layer names. Undefined (NaN) values leave
    gaps. The Figure is not registered with pyplot.
    """
    same_layers = all(c.layers == curves[0].layers for c in curves)
    named = same_layers and len(curves[0].layers) <= MAX_NAMED_TICKS
    width = (max(6.0, 0.22 * len(curves[0].layers) + 3) if named else 7.0) + 2.5
    fig = Figure(figsize=(width, 4.5), layout="constrained")
    ax = fig.subplots()
    models = list(dict.fromkeys(c.model for c in curves))
    variants = list(dict.fromkeys(c.variant for c in curves))
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for curve in curves:
        depth = relative_depth(len(curve.layers))
        colour = colours[models.index(curve.model) % len(colours)]
        ax.plot(
            depth,
            curve.values,
            color=colour,
            linestyle=LINE_STYLES[variants.index(curve.variant) % len(LINE_STYLES)],
            marker="o",
            markersize=3,
            label=f"{curve.model} ({curve.variant})" if len(variants) > 1 else curve.model,
        )
        if curve.ci_low is not None:
            ax.fill_between(depth, curve.ci_low, curve.ci_high, color=colour, alpha=0.2)
    if named:
        ax.set_xticks(relative_depth(len(curves[0].layers)), curves[0].layers, rotation=90)
        ax.tick_params(axis="x", labelsize=float(np.clip(300 / len(curves[0].layers), 5, 9)))
        ax.set_xlabel("layer")
    else:
        ax.set_xlabel("relative depth (first layer 0, last layer 1)")
    if ylim is not None:
        shown = [c.values for c in curves] + [c.ci_low for c in curves if c.ci_low is not None]
        lowest = float(np.nanmin(np.concatenate(shown), initial=ylim[0]))
        ax.set_ylim(min(ylim[0], lowest - 0.02), ylim[1])
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig
