"""The result of ``repcompare atlas``: every layer pair of every model by each measure, the
model x model summaries, its rows (``atlas.csv``) and its JSON document (``atlas.json``).

The text outputs hold every layer pair up to ``TEXT_PAIRS`` pairs (about 316 layers in
all); past that they grow no more with the square of the layers: the rows are the model
pairs (their mean at matched depth) and the document names the ``atlas.h5`` dataset of
each matrix instead of listing it (the full matrices are always in ``atlas.h5``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from repcompare.results.fields import json_matrix, json_number, set_fields
from repcompare.results.provenance import Provenance
from repcompare.results.rendering import Reported
from repcompare.similarity.measures import measure_spec
from repcompare.similarity.model_map import (
    best_match_curve,
    classical_mds,
    cluster_order,
    matched_depth_curve,
    model_dissimilarity,
)

TEXT_PAIRS = 100_000


@dataclass(frozen=True)
class AtlasSettings:
    """How each measure was computed (``methods``), over how many images."""

    measures: list[str]
    methods: dict[str, str]
    n_examples: int
    n_sample: int | None
    batch_size: int
    seed: int
    device: str
    caveats: dict[str, str] = field(default_factory=dict)  # measure: why it is biased here

    def to_dict(self) -> dict:
        return set_fields(self)


@dataclass(repr=False)
class AtlasResult(Reported):
    """``matrices[measure][i, j]`` compares layer i with layer j over all models' layers in
    order (model by model, each in depth order; ``bounds`` gives each model's rows); NaN
    where a layer is constant. ``reference`` names the model of the reference curves."""

    models: list[str]
    layers: list[list[str]]
    matrices: dict[str, np.ndarray]
    settings: AtlasSettings
    provenance: dict[str, Provenance]
    reference: str | None
    seconds: float

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """Each model's first and past-last row."""
        stops = np.cumsum([len(n) for n in self.layers])
        return [(int(stop) - len(n), int(stop)) for stop, n in zip(stops, self.layers, strict=True)]

    @property
    def names(self) -> list[str]:
        """Every row as ``model: layer``."""
        return [
            f"{m}: {layer}"
            for m, names in zip(self.models, self.layers, strict=True)
            for layer in names
        ]

    def block(self, measure: str, a: str, b: str) -> np.ndarray:
        """The layers of model ``a`` (rows) against those of model ``b`` (columns)."""
        (a0, a1), (b0, b1) = (self.bounds[self.models.index(m)] for m in (a, b))
        return self.matrices[measure][a0:a1, b0:b1]

    def model_summary(self, measure: str) -> dict:
        """The model x model summary of one measure: mean matched-depth value of each pair,
        the dissimilarity, its clustering order and 2-D MDS, and each pair's curves."""
        distance = measure_spec(measure).is_distance
        matrix = self.matrices[measure]
        means, dissimilarity = model_dissimilarity(matrix, self.bounds, distance)
        tree, order = cluster_order(np.nan_to_num(dissimilarity, nan=np.nanmax(dissimilarity)))
        pairs = []
        for a, model_a in enumerate(self.models):
            for model_b in self.models[a + 1 :]:
                block = self.block(measure, model_a, model_b)
                depths, values = matched_depth_curve(block)
                pairs.append(
                    {
                        "model_a": model_a,
                        "model_b": model_b,
                        "matched_depth": [json_number(v) for v in values],
                        "matched_depth_at": depths.tolist(),
                        "matched_depth_mean": json_number(float(np.nanmean(values))),
                        "best_match": [json_number(v) for v in best_match_curve(block, distance)],
                    }
                )
        return {
            "means": means,
            "dissimilarity": dissimilarity,
            "tree": tree,
            "order": order,
            "mds": classical_mds(np.nan_to_num(dissimilarity)),
            "pairs": pairs,
        }

    @cached_property
    def model_summaries(self) -> dict[str, dict]:
        """``model_summary`` of every measure."""
        return {m: self.model_summary(m) for m in self.matrices}

    @property
    def pairs_in_text(self) -> bool:
        """Whether ``atlas.csv`` and ``atlas.json`` list every layer pair (see the module
        docstring)."""
        return len(self.names) ** 2 <= TEXT_PAIRS

    def records(self) -> list[dict]:
        """One record per (measure, layer pair), models and layers in order; past
        ``TEXT_PAIRS`` pairs, one per (measure, model pair): its mean at matched depth."""
        if not self.pairs_in_text:
            return [
                {
                    "measure": measure,
                    "model_a": pair["model_a"],
                    "model_b": pair["model_b"],
                    "matched_depth_mean": pair["matched_depth_mean"],
                }
                for measure, summary in self.model_summaries.items()
                for pair in summary["pairs"]
            ]
        rows = [
            (m, layer) for m, names in zip(self.models, self.layers, strict=True) for layer in names
        ]
        records = []
        for measure, matrix in self.matrices.items():
            for i, (model_a, layer_a) in enumerate(rows):
                for j, (model_b, layer_b) in enumerate(rows):
                    records.append(
                        {
                            "measure": measure,
                            "model_a": model_a,
                            "layer_a": layer_a,
                            "model_b": model_b,
                            "layer_b": layer_b,
                            "value": float(matrix[i, j]),
                        }
                    )
        return records

    def to_document(self) -> dict:
        """Models and their layers, every measure's matrix and summary, settings, provenance."""
        measures = {}
        for measure, matrix in self.matrices.items():
            spec, summary = measure_spec(measure), self.model_summaries[measure]
            measures[measure] = {
                "kind": spec.kind,
                "best": spec.best,
                "range": list(spec.range),
                "method": self.settings.methods[measure],
                "reference": spec.reference,
                "matrix": json_matrix(matrix) if self.pairs_in_text else f"atlas.h5:/{measure}",
                "model_means": json_matrix(summary["means"]),
                "model_dissimilarity": json_matrix(summary["dissimilarity"]),
                "cluster_order": [self.models[i] for i in summary["order"]],
                "mds": summary["mds"].tolist(),
                "pairs": summary["pairs"],
            }
        return {
            "models": [
                {"label": m, "layers": layers, "rows": list(bound)}
                for m, layers, bound in zip(self.models, self.layers, self.bounds, strict=True)
            ],
            "measures": measures,
            "reference": self.reference,
            "settings": self.settings.to_dict(),
            "provenance": {label: p.to_dict() for label, p in self.provenance.items()},
            "seconds": self.seconds,
        }
