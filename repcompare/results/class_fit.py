"""The result of ``repcompare class-fit``: every class-structure measure per layer of each
model, its settings, its rows (``class_fit.csv``) and its JSON document (``class_fit.json``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from repcompare.results.curves import relative_depth, role_field, roles_from_records
from repcompare.results.fields import (
    ValuePaths,
    json_array,
    record_paths,
    records_document,
    set_fields,
)
from repcompare.results.provenance import Provenance
from repcompare.results.rendering import Reported

MEASURES = ("class_cka", "intra", "inter", "inter_min", "ratio", "knn", "probe")
TOKEN_FEATURES = ("cls", "mean", "patch")
TOKEN_MEASURES = tuple(f"{m}_{f}" for m in ("knn", "probe") for f in TOKEN_FEATURES)


@dataclass
class ClassFit:
    """Every measure of one model, one value per layer (NaN: undefined, a constant layer)."""

    model: str
    layers: list[str]
    measures: dict[str, np.ndarray]
    class_ci: tuple[np.ndarray, np.ndarray] | None = None
    roles: list[str] | None = None  # mixed block outputs and residual branches (mixed_roles)


@dataclass(frozen=True)
class ClassFitSettings:
    """The options of a class-fit run and what they gave: ``num_classes`` classes over
    ``n_examples`` images, ``n_train``/``n_test`` of them in the kNN and probe split."""

    knn_k: int
    test_fraction: float
    probe_l2: float
    bootstrap: int
    seed: int
    tokens: bool
    num_classes: int
    n_train: int
    n_test: int
    batch_size: int
    n_examples: int
    device: str

    def to_dict(self) -> dict:
        return set_fields(self)


@dataclass(repr=False)
class ClassFitResult(Reported):
    """One ``ClassFit`` per model (every measure per layer, in depth order), the SHA-256 of
    the images all models saw, and where each model's activations came from."""

    fits: list[ClassFit]
    fingerprint: str
    settings: ClassFitSettings
    provenance: dict[str, Provenance]
    seconds: float

    @classmethod
    def from_document(cls, document: dict) -> ClassFitResult:
        """The result back from its JSON document (``to_dict``, ``class_fit.json``)."""
        rows: dict[str, list[dict]] = {}
        for record in document["records"]:
            rows.setdefault(record["model"], []).append(record)
        return cls(
            [_fit_from_records(model, records) for model, records in rows.items()],
            document["input_fingerprint"],
            ClassFitSettings(**document["settings"]),
            {label: Provenance(**p) for label, p in document["provenance"].items()},
            document["seconds"],
        )

    def records(self) -> list[dict]:
        """One record per (model, layer), in depth order, with every measure."""
        records = []
        for fit in self.fits:
            depths = relative_depth(len(fit.layers))
            for i, layer in enumerate(fit.layers):
                low, high = fit.class_ci if fit.class_ci else (None, None)
                records.append(
                    {
                        "model": fit.model,
                        "layer": layer,
                        "depth": float(depths[i]),
                        **{m: float(values[i]) for m, values in fit.measures.items()},
                        "class_cka_ci_low": None if low is None else float(low[i]),
                        "class_cka_ci_high": None if high is None else float(high[i]),
                        **role_field(fit.roles, i),
                    }
                )
        return records

    def value_paths(self, model: str, layer: str, measure: str) -> ValuePaths | None:
        """Where ``model``'s ``measure`` at ``layer`` (and the class CKA's interval) stand in
        the document (None: not measured)."""
        interval = ("class_cka_ci_low", "class_cka_ci_high") if measure == "class_cka" else None
        return record_paths(self.records(), measure, interval, model=model, layer=layer)

    def to_document(self) -> dict:
        """The records (NaN as null), the input fingerprint, the settings, each model's
        provenance and the seconds taken."""
        return records_document(self.records(), self, input_fingerprint=self.fingerprint)


def _fit_from_records(model: str, records: list[dict]) -> ClassFit:
    """One model's ``ClassFit`` back from its JSON records (null: NaN)."""
    context = ("model", "layer", "depth", "class_cka_ci_low", "class_cka_ci_high", "role")
    names = [k for k in records[0] if k not in context]
    measures = {k: json_array([r[k] for r in records]) for k in names}
    low = json_array([r["class_cka_ci_low"] for r in records])
    high = json_array([r["class_cka_ci_high"] for r in records])
    interval = None if np.isnan(low).all() else (low, high)
    layers = [r["layer"] for r in records]
    return ClassFit(model, layers, measures, interval, roles_from_records(records))
