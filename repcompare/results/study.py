"""The result of ``repcompare study``: the models as the report states them, the settings,
and every analysis's result (CKA within and across, invariance, class fit)."""

from __future__ import annotations

from dataclasses import dataclass, field

from repcompare.results.cka import CKAResult
from repcompare.results.class_fit import ClassFitResult
from repcompare.results.fields import set_fields
from repcompare.results.invariance import InvarianceResult
from repcompare.results.rendering import Reported


@dataclass(frozen=True)
class StudyModel:
    """One model of a study as its report states it: spec, weights, preprocessing and how
    its checkpoint loaded."""

    label: str
    spec: str
    checkpoint_sha256: str
    pretrained: bool
    init_seed: int | None
    layers: list[str]
    reduction: str
    transform: str
    load_report: list[str]
    notes: list[str]

    def to_dict(self) -> dict:
        return set_fields(self)


@dataclass(frozen=True)
class StudySettings:
    """The data plan and options the whole study ran with."""

    data: str
    n_images: int
    order: str
    seed: int
    batch_size: int
    estimator: str
    kernel: str
    bootstrap: int
    augmentations: list[str]
    views: int
    baseline: str
    device: str
    versions: dict[str, str]

    def to_dict(self) -> dict:
        return set_fields(self)


@dataclass(repr=False)
class StudyResult(Reported):
    """Everything a study found: CKA within A, within B and A vs B; the invariance of both
    to each augmentation; their class fit (None without labels); the fingerprint of the
    images of the plain pass; which passes were ``reused`` from an earlier run. With
    baselines: the ``untrained`` networks (also in the invariance and the class fit), the
    CKA of each model with its untrained network (``against_untrained``, by the model's
    label) and which baseline is whose (``baseline_of``)."""

    models: list[StudyModel]
    within_a: CKAResult
    within_b: CKAResult
    across: CKAResult
    invariance: InvarianceResult
    class_fit: ClassFitResult | None
    fingerprint: str
    settings: StudySettings
    reused: list[str]
    seconds: float
    untrained: list[StudyModel] = field(default_factory=list)
    against_untrained: dict[str, CKAResult] = field(default_factory=dict)
    baseline_of: dict[str, str] = field(default_factory=dict)

    def to_document(self) -> dict:
        """The study's JSON document (``study.json``): its report's, with every finding."""
        return self.report().document
