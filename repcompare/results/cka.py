"""The result of ``repcompare cka``: the matrix of every layer pair, its settings, its rows
(``cka.csv``) and its JSON document (``cka.json``), both ways."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from repcompare.results.fields import (
    ValuePaths,
    json_array,
    json_matrix,
    json_number,
    set_fields,
)
from repcompare.results.provenance import Provenance
from repcompare.results.rendering import Reported
from repcompare.similarity import DEFAULT_RBF_MEDIAN, SimilarityMatrix
from repcompare.similarity.measures import MeasureSpec, measure_spec
from repcompare.similarity.sampled import DEFAULT_SAMPLE

UNDEFINED_NOTE = "undefined: constant layer"


@dataclass(frozen=True)
class CKASettings:
    """How a CKA matrix was computed. ``n_examples`` counts its rows: images, or token rows
    with ``reduce="tokens"`` (at most ``token_cap`` per batch of ``batch_size`` images, from
    ``n_images`` images); the token fields are None otherwise."""

    kernel: str
    rbf_fraction: float
    estimator: str
    bootstrap: int
    seed: int
    batch_size: int
    n_examples: int
    device: str
    rbf_median: str = DEFAULT_RBF_MEDIAN
    measure: str = "cka"
    sample: int = DEFAULT_SAMPLE
    method: str | None = None
    reduce: str | None = None
    token_cap: int | None = None
    n_images: int | None = None
    caveat: str | None = None  # why the values are biased at this N (small_sample)
    caveat_short: str | None = None

    def to_dict(self) -> dict:
        return set_fields(self)


@dataclass(repr=False)
class CKAResult(Reported):
    """CKA between every selected layer of side A (rows, in depth order) and of side B
    (columns): ``matrix.values[i, j]`` for ``matrix.names_a[i]`` and ``matrix.names_b[j]``,
    NaN where a layer is constant (undefined); 95% intervals with ``bootstrap``.

    ``roles_a``/``roles_b`` mark the paper preset's block outputs and residual branches
    (``{layer: "block" | "residual"}``), which get heatmaps of their own.
    """

    side_a: str
    side_b: str
    matrix: SimilarityMatrix
    ci_low: np.ndarray | None
    ci_high: np.ndarray | None
    settings: CKASettings
    provenance_a: Provenance
    provenance_b: Provenance
    seconds: float
    roles_a: dict[str, str] = field(default_factory=dict)
    roles_b: dict[str, str] = field(default_factory=dict)

    def measure_spec(self) -> MeasureSpec:
        """The measure of the matrix (``cka``, or one of ``repcompare.similarity.MEASURES``)."""
        return measure_spec(self.settings.measure)

    @classmethod
    def from_document(cls, document: dict) -> CKAResult:
        """The result back from its JSON document (``to_dict``, ``cka.json``)."""
        side_a, side_b = document["side_a"], document["side_b"]
        settings = CKASettings(**document["settings"])
        matrix = SimilarityMatrix(
            tuple(side_a["layers"]),
            tuple(side_b["layers"]),
            json_array(document[settings.measure]),
            tuple(side_a["degenerate"]),
            tuple(side_b["degenerate"]),
            settings.n_examples,
        )
        return cls(
            side_a["label"],
            side_b["label"],
            matrix,
            json_array(document["ci_low"]),
            json_array(document["ci_high"]),
            settings,
            Provenance(**side_a["provenance"]),
            Provenance(**side_b["provenance"]),
            document["seconds"],
            side_a.get("roles", {}),
            side_b.get("roles", {}),
        )

    def best_matches(self) -> list[dict]:
        """For each layer of A: the most similar layer of B (the minimum of a distance), and the
        same-named layer if any (JSON-ready: None where undefined or where B has no such
        layer)."""
        m, spec = self.matrix, self.measure_spec()
        pick = np.nanargmin if spec.is_distance else np.nanargmax
        rows = []
        for i, layer in enumerate(m.names_a):
            values = m.values[i]
            defined = ~np.isnan(values)
            best = int(pick(values)) if defined.any() else None
            same = m.names_b.index(layer) if layer in m.names_b else None
            rows.append(
                {
                    "layer_a": layer,
                    "best_b": None if best is None else m.names_b[best],
                    f"best_{spec.name}": None if best is None else json_number(values[best]),
                    f"same_layer_{spec.name}": None if same is None else json_number(values[same]),
                }
            )
        return rows

    def value_paths(self, i: int, j: int) -> ValuePaths:
        """Where the value of row ``i``, column ``j`` and its interval stand in the document."""
        if self.ci_low is None:
            return ["cka", i, j], None, None
        return ["cka", i, j], ["ci_low", i, j], ["ci_high", i, j]

    def records(self) -> list[dict]:
        """One record per pair (A's layers in order, then B's): layer_a, layer_b, cka, the 95%
        interval (None without bootstrap), and a note; NaN where the pair is undefined."""
        m, key = self.matrix, self.settings.measure
        records = []
        for i, a in enumerate(m.names_a):
            for j, b in enumerate(m.names_b):
                value = float(m.values[i, j])
                undefined = a in m.degenerate_a or b in m.degenerate_b or math.isnan(value)
                low = high = None
                if self.ci_low is not None:
                    low, high = float(self.ci_low[i, j]), float(self.ci_high[i, j])
                    if undefined:
                        low = high = math.nan
                records.append(
                    {
                        "layer_a": a,
                        "layer_b": b,
                        key: math.nan if undefined else value,
                        "ci_low": low,
                        "ci_high": high,
                        "note": UNDEFINED_NOTE if undefined else "",
                    }
                )
        return records

    def to_document(self) -> dict:
        """Matrix, intervals, layer lists, best matches, settings and both sides' provenance."""
        m = self.matrix
        return {
            "side_a": {
                "label": self.side_a,
                "layers": list(m.names_a),
                "degenerate": list(m.degenerate_a),
                "roles": dict(self.roles_a),
                "provenance": self.provenance_a.to_dict(),
            },
            "side_b": {
                "label": self.side_b,
                "layers": list(m.names_b),
                "degenerate": list(m.degenerate_b),
                "roles": dict(self.roles_b),
                "provenance": self.provenance_b.to_dict(),
            },
            "measure": self.settings.measure,
            "kind": self.measure_spec().kind,
            self.settings.measure: json_matrix(m.values),
            "ci_low": json_matrix(self.ci_low),
            "ci_high": json_matrix(self.ci_high),
            "best_matches": self.best_matches(),
            "settings": self.settings.to_dict(),
            "seconds": self.seconds,
        }
