"""The report of a study: summary sentences, one section per analysis (its own report, a
two-line reading guide and a compact table), and the settings and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from repcompare.report.baselines import FOLDER as BASELINES_FOLDER
from repcompare.report.baselines import against_file, baselines_report
from repcompare.report.findings import (
    Sentence,
    agreement,
    class_findings,
    invariance_findings,
    untrained_agreement,
)
from repcompare.report.model import Report, Table, report_figures
from repcompare.results.cka import CKAResult
from repcompare.results.invariance import InvarianceResult
from repcompare.results.study import StudyResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# the folder of each analysis's files in a study's --out
FOLDERS = {
    "across": "cka_a_vs_b",
    "within_a": "cka_within_a",
    "within_b": "cka_within_b",
    "invariance": "invariance",
    "class_fit": "class_fit",
    "baselines": BASELINES_FOLDER,
}

GUIDES = {
    "across": (
        "Each cell is the CKA of a layer of A (rows) with a layer of B (columns): 1 means the "
        "two layers represent the images alike up to rotation and scale, 0 that they share "
        "nothing linear.",
        "A bright diagonal means the models compute the same things at the same depth; "
        "where it fades they part. The paper preset splits block outputs from residual "
        "branches (Grigg et al. 2021).",
    ),
    "within": (
        "CKA between the layers of one model: bright squares are runs of layers that "
        "represent the images alike, often a stage of the network.",
        "The table gives each layer's CKA with the layer before it (how much one step "
        "changes the representation) and with the last layer.",
    ),
    "invariance": (
        "Each line is one augmentation: the CKA between the representations of two "
        "augmented views of the same images, layer by layer (1: the layer ignores it).",
        "Self-supervised objectives that train on such views tend to make the last layers "
        "more invariant than supervised training does.",
    ),
    "baselines": (
        "The reference for A vs B: each model's CKA with its untrained network (the same "
        "architecture with random weights, seeded) at the same layers, next to A vs B at the "
        "same depth.",
        "Where A vs B is no higher than a model against its own random init, the two agree no "
        "more than training moved each away from random weights; the untrained networks also "
        "appear in the invariance and class-structure sections.",
    ),
    "class_fit": (
        "Class CKA: how much of a layer's similarity structure is the class structure (CKA "
        "with the one-hot labels); kNN and probe: held-out accuracy from the layer.",
        "Crowding ratio: mean within-class over mean between-class distance; lower is "
        "better separated (Song et al. 2024).",
    ),
}


@dataclass
class StudySection:
    """One analysis of the study: its report (files in ``folder``), heading, reading guide
    and compact table."""

    key: str
    heading: str
    guide: tuple[str, str]
    report: Report
    table: Table

    @property
    def folder(self) -> str:
        return FOLDERS[self.key]


@dataclass
class StudyReport:
    """What a study reports: ``summary`` sentences (with the numbers they cite), the
    ``sections``, ``provenance`` as (what, value) rows, and ``document`` (``study.json``)."""

    title: str
    summary: list[Sentence]
    sections: list[StudySection]
    provenance: list[tuple[str, str]]
    document: dict
    notes: list[str] = field(default_factory=list)


def within_table(result: CKAResult) -> Table:
    """Each layer's CKA with the layer before it and with the last layer of the model."""
    m = result.matrix
    records = []
    for i, layer in enumerate(m.names_a):
        records.append(
            {
                "layer": layer,
                "previous": float(m.values[i, i - 1]) if i else "",
                "last": float(m.values[i, -1]),
            }
        )
    columns = {
        "layer": "layer",
        "previous": "CKA with the layer before",
        "last": "CKA with the last",
    }
    return Table(records, columns, title=f"CKA within {result.side_a}")


def invariance_table(result: InvarianceResult) -> Table:
    """One row per (model, layer), one column per augmentation."""
    rows: dict[tuple[str, str], dict] = {}
    for curve in result.curves:
        for layer, value in zip(curve.layers, curve.values, strict=True):
            rows.setdefault((curve.model, layer), {"model": curve.model, "layer": layer})
            rows[(curve.model, layer)][curve.variant] = float(value)
    augmentations = list(result.fingerprints)
    columns = {"model": "model", "layer": "layer"} | {a: a for a in augmentations}
    return Table(list(rows.values()), columns, title="Invariance", section_by="model")


def _section(key: str, heading: str, report: Report, table: Table) -> StudySection:
    guide = GUIDES["within" if key.startswith("within") else key]
    return StudySection(key, heading, guide, report, table)


def _file(key: str, stem: str) -> str:
    return f"{FOLDERS[key]}/{stem}.json"


def _provenance(study: StudyResult) -> list[tuple[str, str]]:
    s = study.settings
    rows = []
    for model in [*study.models, *study.untrained]:
        weights = (
            f"checkpoint SHA-256 {model.checkpoint_sha256}"
            if model.checkpoint_sha256
            else "published weights"
            if model.pretrained
            else f"random init, seed {model.init_seed}"
        )
        rows += [
            (f"model {model.label}", model.spec),
            (f"{model.label}: weights", weights),
            (f"{model.label}: layers", f"{len(model.layers)}, reduced by {model.reduction}"),
            (f"{model.label}: preprocessing", model.transform),
        ]
        rows += [(f"{model.label}: load report", line) for line in model.load_report]
        rows += [(f"{model.label}: note", note) for note in model.notes]
    fingerprints = study.invariance.fingerprints
    rows += [
        ("data", s.data),
        ("images", str(s.n_images)),
        ("sample order and seed", f"{s.order}, seed {s.seed}"),
        ("batch size", str(s.batch_size)),
        ("fingerprint of the images", study.fingerprint),
        *((f"fingerprint of the {a} views", f) for a, f in fingerprints.items()),
        ("views per image", str(s.views)),
        ("CKA", f"{s.estimator} estimator, {s.kernel} kernel"),
        ("bootstrap resamples", str(s.bootstrap)),
        ("device", s.device),
        ("packages", ", ".join(f"{k} {v}" for k, v in s.versions.items())),
        ("run time", f"{study.seconds:.1f} s"),
        ("reused from an earlier run", ", ".join(study.reused) or "nothing"),
    ]
    return rows


def study_report(study: StudyResult) -> StudyReport:
    """The report of a ``StudyResult``."""
    a, b = (m.label for m in study.models)
    across = study.across.report()
    sections = [
        _section("across", f"{a} vs {b}", across, across.tables[0]),
        _section("within_a", f"Within {a}", study.within_a.report(), within_table(study.within_a)),
        _section("within_b", f"Within {b}", study.within_b.report(), within_table(study.within_b)),
        _section(
            "invariance",
            "Invariance",
            study.invariance.report(),
            invariance_table(study.invariance),
        ),
    ]
    layers = {m.label: m.layers for m in study.models}
    roles = {a: study.across.roles_a, b: study.across.roles_b}
    summary = agreement(study.across, _file("across", "cka"))
    if study.against_untrained:
        baselines = baselines_report(study.across, study.against_untrained)
        sections.insert(1, _section("baselines", "Baselines", baselines, baselines.tables[0]))
        files = {
            model: f"{BASELINES_FOLDER}/{against_file(k)}"
            for k, model in enumerate((a, b))
            if model in study.against_untrained
        }
        summary += untrained_agreement(study.against_untrained, files, study.across)
    summary += invariance_findings(
        study.invariance,
        _file("invariance", "invariance"),
        layers,
        roles,
        study.baseline_of,
    )
    notes = []
    if study.class_fit is not None:
        fit_report = study.class_fit.report()
        sections.append(_section("class_fit", "Class structure", fit_report, fit_report.tables[0]))
        summary += class_findings(
            study.class_fit, _file("class_fit", "class_fit"), layers, roles, study.baseline_of
        )
    else:
        notes.append("No class structure was measured: the images have no labels.")
    document = {
        "title": f"Study: {a} vs {b}",
        "summary": [s.to_dict() for s in summary],
        "models": [m.to_dict() for m in study.models],
        "untrained": [m.to_dict() for m in study.untrained],
        "baseline_of": study.baseline_of,
        "settings": study.settings.to_dict(),
        "fingerprint": study.fingerprint,
        "input_fingerprints": study.invariance.fingerprints,
        "sections": {s.key: s.folder for s in sections},
        "reused": study.reused,
        "seconds": study.seconds,
    }
    return StudyReport(f"Study: {a} vs {b}", summary, sections, _provenance(study), document, notes)


def study_figures(report: StudyReport) -> list[Figure]:
    """Every picture of every analysis of a study's report, newly drawn."""
    return [f for s in report.sections for f in report_figures(s.report)]
