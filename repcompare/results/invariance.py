"""The result of ``repcompare invariance``: one curve per (model, augmentation), its
settings, its rows (``invariance.csv``) and its JSON document (``invariance.json``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from repcompare.results.curves import LayerCurve, curve_from_records, relative_depth, role_field
from repcompare.results.fields import ValuePaths, record_paths, records_document, set_fields
from repcompare.results.provenance import Provenance
from repcompare.results.rendering import Reported


@dataclass(frozen=True)
class InvarianceSettings:
    """How the invariance curves were computed: one pass over ``n_examples`` images per
    augmentation, ``views`` views each (drawn from ``view_seed``); with ``reduce="tokens"``
    the CKA runs over at most ``token_cap`` token rows per batch (None otherwise)."""

    augmentations: list[str]
    views: int
    view_seed: int
    bootstrap: int
    batch_size: int
    n_examples: int
    device: str
    reduce: str | None = None
    token_cap: int | None = None

    def to_dict(self) -> dict:
        return set_fields(self)


@dataclass(repr=False)
class InvarianceResult(Reported):
    """One curve per (model, augmentation): the invariance of each layer in depth order.

    ``fingerprints`` maps each augmentation to the SHA-256 of the augmented views every
    model saw; ``provenance`` maps each model's label to where its activations came from.
    """

    curves: list[LayerCurve]
    fingerprints: dict[str, str]
    settings: InvarianceSettings
    provenance: dict[str, Provenance]
    seconds: float

    @classmethod
    def from_document(cls, document: dict) -> InvarianceResult:
        """The result back from its JSON document (``to_dict``, ``invariance.json``)."""
        rows: dict[tuple[str, str], list[dict]] = {}
        for record in document["records"]:
            rows.setdefault((record["model"], record["augmentation"]), []).append(record)
        return cls(
            [
                curve_from_records(model, variant, records, "invariance")
                for (model, variant), records in rows.items()
            ],
            document["input_fingerprints"],
            InvarianceSettings(**document["settings"]),
            {label: Provenance(**p) for label, p in document["provenance"].items()},
            document["seconds"],
        )

    def merged(self, other: InvarianceResult) -> InvarianceResult:
        """This result with ``other``'s augmentations added (same models, views, images)."""
        settings = replace(
            self.settings, augmentations=[*self.settings.augmentations, *other.fingerprints]
        )
        return InvarianceResult(
            self.curves + other.curves,
            self.fingerprints | other.fingerprints,
            settings,
            self.provenance,
            self.seconds + other.seconds,
        )

    def records(self) -> list[dict]:
        """One record per (model, augmentation, layer), in depth order."""
        records = []
        for curve in self.curves:
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
                        **role_field(curve.roles, i),
                    }
                )
        return records

    def value_paths(self, model: str, augmentation: str, layer: str) -> ValuePaths | None:
        """Where ``model``'s invariance to ``augmentation`` at ``layer`` and its interval
        stand in the document (None: not measured)."""
        return record_paths(
            self.records(),
            "invariance",
            ("ci_low", "ci_high"),
            model=model,
            augmentation=augmentation,
            layer=layer,
        )

    def to_document(self) -> dict:
        """The records (NaN as null), each augmentation's input fingerprint, the settings,
        each model's provenance and the seconds taken."""
        return records_document(self.records(), self, input_fingerprints=self.fingerprints)
