"""All files of an ``invariance`` run: invariance.csv/json/md and the invariance plot."""

from __future__ import annotations

from pathlib import Path

from repcompare.report.curves import plot_curves, relative_depth
from repcompare.report.tables import markdown_table, write_records

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


def invariance_records(result) -> list[dict]:
    """One record per (model, augmentation, layer), in depth order."""
    records = []
    for curve in result.curves:
        depths = relative_depth(len(curve.layers))
        for i, layer in enumerate(curve.layers):
            records.append(
                {
                    "model": curve.model,
                    "augmentation": curve.variant,
                    "layer": layer,
                    "depth": float(depths[i]),
                    "invariance": float(curve.values[i]),
                    "ci_low": None if curve.ci_low is None else float(curve.ci_low[i]),
                    "ci_high": None if curve.ci_high is None else float(curve.ci_high[i]),
                }
            )
    return records


def write_invariance_outputs(result, out: Path) -> list[Path]:
    """invariance.csv/json/md and invariance.png/svg in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    s = result.settings
    records = invariance_records(result)
    title = (
        f"Invariance to {', '.join(s.augmentations)}: CKA between {s.views} views\n"
        f"minibatch estimator, {s.n_examples} images"
    )
    pictures = plot_curves(
        result.curves,
        "CKA between views",
        title,
        out / "invariance",
        (0, 1.02),
    )
    tables = write_records(
        records, out / "invariance", result, input_fingerprints=result.fingerprints
    )
    text = [
        "# Augmentation invariance per layer",
        "",
        f"CKA between {s.views} augmented views of the same {s.n_examples} images "
        f"(minibatch estimator, batch size {s.batch_size}), mean over view pairs; 1 = the "
        "layer represents every view alike.",
        "",
        "![invariance](invariance.png)",
        "",
        *markdown_table(records, columns(s.bootstrap > 0)),
        "",
        "Input fingerprints (identical for every model of a run): "
        + ", ".join(f"{k} `{v[:16]}`" for k, v in result.fingerprints.items()),
        "",
    ]
    (out / "invariance.md").write_text("\n".join(text))
    return [*tables, out / "invariance.md", *pictures]
