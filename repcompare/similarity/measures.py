"""The one registry of representational similarity measures by name.

Each entry declares how its values read: ``kind`` "similarity" (higher = more
alike, the best match is the maximum) or "distance" (lower = more alike, the
best match is the minimum, shown on a distance colour scale); its ``range``;
whether it streams over batches of examples; and which transforms of one
representation leave it unchanged. ``compute(x, y)`` scores one pair of
``(n, ...)`` representations of the same examples (a 0-dim float64 tensor).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from repcompare.errors import InputError
from repcompare.similarity.cka import cka
from repcompare.similarity.knn import mutual_knn
from repcompare.similarity.procrustes import angular_shape_metric, procrustes_distance
from repcompare.similarity.pwcca import pwcca
from repcompare.similarity.rsa import rsa
from repcompare.similarity.svcca import svcca


@dataclass(frozen=True)
class Invariances:
    """Transforms of one representation that leave the measure unchanged.

    ``orthogonal``: X -> X Q, Q orthogonal; ``isotropic_scaling``: X -> c X,
    c > 0; ``invertible_linear``: X -> X A, A invertible; ``translation``:
    X -> X + 1 b^T (the same vector added to every example).
    """

    orthogonal: bool
    isotropic_scaling: bool
    invertible_linear: bool
    translation: bool


@dataclass(frozen=True)
class MeasureSpec:
    """A measure declared: see the module docstring."""

    name: str
    kind: Literal["similarity", "distance"]
    range: tuple[float, float]
    streamable: bool
    invariances: Invariances
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    reference: str

    @property
    def is_distance(self) -> bool:
        """True when lower values mean more alike."""
        return self.kind == "distance"

    @property
    def best(self) -> Literal["max", "min"]:
        """Which extreme is the best match: "max" for similarities, "min" for distances."""
        return "min" if self.is_distance else "max"


def _linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return cka(x, y)


MEASURES: dict[str, MeasureSpec] = {
    spec.name: spec
    for spec in (
        MeasureSpec(
            "cka",
            "similarity",
            (0.0, 1.0),
            streamable=True,
            invariances=Invariances(True, True, False, True),
            compute=_linear_cka,
            reference="Kornblith et al. 2019 (linear CKA)",
        ),
        MeasureSpec(
            "procrustes",
            "distance",
            (0.0, math.sqrt(2)),
            streamable=True,
            invariances=Invariances(True, True, False, True),
            compute=procrustes_distance,
            reference="Williams et al. 2021 (orthogonal Procrustes distance)",
        ),
        MeasureSpec(
            "angular",
            "distance",
            (0.0, math.pi / 2),
            streamable=True,
            invariances=Invariances(True, True, False, True),
            compute=angular_shape_metric,
            reference="Williams et al. 2021 (angular shape metric, radians)",
        ),
        MeasureSpec(
            "svcca",
            "similarity",
            (0.0, 1.0),
            streamable=False,
            invariances=Invariances(True, True, False, True),
            compute=svcca,
            reference="Raghu et al. 2017",
        ),
        MeasureSpec(
            "pwcca",
            "similarity",
            (0.0, 1.0),
            streamable=False,
            invariances=Invariances(False, True, False, True),
            compute=pwcca,
            reference="Morcos et al. 2018",
        ),
        MeasureSpec(
            "mutual-knn",
            "similarity",
            (0.0, 1.0),
            streamable=False,
            invariances=Invariances(True, True, False, False),
            compute=mutual_knn,
            reference="Huh et al. 2024 (k = 10, cosine)",
        ),
        MeasureSpec(
            "rsa",
            "similarity",
            (-1.0, 1.0),
            streamable=False,
            invariances=Invariances(False, True, False, False),
            compute=rsa,
            reference="Kriegeskorte et al. 2008 (1 - Pearson RDM, Spearman)",
        ),
    )
}


def measure_spec(name: str) -> MeasureSpec:
    """The registry entry of ``name``; an InputError naming the choices if there is none."""
    if name not in MEASURES:
        raise InputError(f"unknown --measure {name!r}; use {', '.join(MEASURES)}")
    return MEASURES[name]
