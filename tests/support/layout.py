"""Reading a drawn Figure's text as a person would: every label inside the canvas, no two
labels on top of each other (tight bounding boxes from the Agg renderer)."""

from __future__ import annotations

from itertools import combinations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

TOLERANCE = 1.0  # pixels


def visible_texts(figure: Figure) -> list[Text]:
    """Every text ``figure`` draws: its titles and legends, and each visible axes' titles,
    axis labels, annotations, legend and the tick labels of ticks inside its view."""
    texts = [*figure.texts, *(t for legend in figure.legends for t in legend.get_texts())]
    for ax in figure.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label]
        texts += ax.texts
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
        for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            low, high = min(low, high), max(low, high)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if low - 1e-9 <= tick.get_loc() <= high + 1e-9:
                    texts += [tick.label1, tick.label2]
    unique = list({id(t): t for t in texts}.values())
    return [t for t in unique if t.get_visible() and t.get_text().strip()]


def text_problems(figure: Figure) -> list[str]:
    """Each text that sticks out of the canvas, and each pair of texts that overlap."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = visible_texts(figure)
    boxes = [t.get_window_extent(renderer) for t in texts]
    page = figure.bbox
    problems = [
        f"{t.get_text()!r} outside the canvas ({b.x0:.0f}, {b.y0:.0f}, {b.x1:.0f}, {b.y1:.0f} "
        f"of {page.width:.0f} x {page.height:.0f})"
        for t, b in zip(texts, boxes, strict=True)
        if b.x0 < -TOLERANCE
        or b.y0 < -TOLERANCE
        or b.x1 > page.width + TOLERANCE
        or b.y1 > page.height + TOLERANCE
    ]
    for (t1, b1), (t2, b2) in combinations(zip(texts, boxes, strict=True), 2):
        width = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
        height = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
        if width > TOLERANCE and height > TOLERANCE:
            problems.append(f"{t1.get_text()!r} overlaps {t2.get_text()!r}")
    return problems
