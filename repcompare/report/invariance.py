"""The report of an ``invariance`` run: a record per (model, augmentation, layer), the
invariance plot, and the input fingerprints."""

from __future__ import annotations

from functools import partial

from repcompare.report.curves import draw_panels
from repcompare.report.model import FigureSpec, Report, Table
from repcompare.results.invariance import InvarianceResult

# the files a run writes into --out: replaced together, stale ones removed
OWNED_FILES = (
    "invariance.csv",
    "invariance.json",
    "invariance.md",
    "invariance.png",
    "invariance.svg",
)

COLUMNS = {
    "model": "model",
    "augmentation": "augmentation",
    "layer": "layer",
    "depth": "depth",
    "invariance": "invariance",
}


def columns(intervals: bool) -> dict[str, str]:
    """The table columns, with the 95% interval when there is one."""
    return COLUMNS | ({"ci_low": "95% low", "ci_high": "95% high"} if intervals else {})


def invariance_report(result: InvarianceResult) -> Report:
    """The report of an ``InvarianceResult``."""
    s = result.settings
    records = result.records()
    augmentations = ", ".join(s.augmentations)
    plot_title = (
        f"Invariance: CKA between {s.views} augmented views (minibatch estimator, "
        f"{s.n_examples} images)"
    )
    panels = [(a, [c for c in result.curves if c.variant == a]) for a in s.augmentations]
    figure = FigureSpec(
        "invariance",
        f"Invariance to {augmentations} per layer: CKA between {s.views} augmented views, "
        "one panel per augmentation, one line per model",
        partial(draw_panels, panels, "CKA between views", plot_title, (0, 1.02)),
    )
    table = Table(
        records,
        columns(s.bootstrap > 0),
        title=f"Invariance: CKA between {s.views} augmented views, {s.n_examples} images",
        caption="; ".join(f"{k} inputs {v[:16]}" for k, v in result.fingerprints.items()),
        section_by="model",
    )
    fingerprints = ", ".join(f"{k} `{v[:16]}`" for k, v in result.fingerprints.items())
    return Report(
        stem="invariance",
        title="Augmentation invariance per layer",
        summary=[
            f"CKA between {s.views} augmented views of the same {s.n_examples} images "
            f"(minibatch estimator, batch size {s.batch_size}), mean over view pairs; 1 = the "
            "layer represents every view alike."
        ],
        records=records,
        tables=[table],
        figures=[figure],
        document=result.to_document(),
        notes=[f"Input fingerprints (identical for every model of a run): {fingerprints}"],
    )
