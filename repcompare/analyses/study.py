"""``repcompare study A B``: every analysis of Grigg et al. 2021 on two models, on the same
images, seeds and views throughout.

Two kinds of passes over the data, both models forward together in each:

* the plain pass: CKA within A, within B and A vs B (with bootstrap intervals) and, when
  the images are labelled, the class fit of both, all fed from the same batches;
* one pass per augmentation: the invariance of both models to it.

Every finished pass is kept (``StudyParts``) under a key of everything that determines it,
with the fingerprint of the images it saw, so that rerunning an interrupted study computes
only what is missing; a kept pass is reused only when its key matches and the planned
images still have the recorded fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from repcompare.analyses.cka import CKARun
from repcompare.analyses.class_fit import ClassFitRun
from repcompare.analyses.invariance import InvarianceOptions, measure_invariance
from repcompare.analyses.run import run_pass
from repcompare.data.transforms import eval_transform, resolve_config
from repcompare.distributed import ONE_PROCESS, Job
from repcompare.errors import InputError
from repcompare.options import STUDY_AUGMENTATIONS, CKAOptions, ClassFitOptions
from repcompare.progress import Advance
from repcompare.results.cka import CKAResult
from repcompare.results.class_fit import ClassFitResult
from repcompare.results.invariance import InvarianceResult
from repcompare.results.study import StudyModel, StudyResult, StudySettings
from repcompare.sides.batches import input_fingerprint
from repcompare.sides.build import distinct_sides
from repcompare.sides.plan import InputPlan
from repcompare.sides.side import Side
from repcompare.store.writer import package_versions

PARTS_FOLDER = ".study-parts"

# bars(part) -> a context giving advance(done_now, total), or None (``Feedback.bar``)
ProgressBars = Callable[[str], AbstractContextManager[Advance | None]]


@dataclass(frozen=True)
class StudyOptions:
    """What a study computes beyond the data plan: the CKA options (estimator, kernel), bootstrap
    resamples (A vs B, invariance, class CKA), the augmentations and views, the class-fit
    options (their bootstrap and seed are the study's), and whether to measure class
    structure (None: when the images are labelled)."""

    cka_options: CKAOptions = field(default_factory=CKAOptions)
    bootstrap: int = 100
    augment: tuple[str, ...] = STUDY_AUGMENTATIONS
    views: int = 2
    class_fit_options: ClassFitOptions = field(default_factory=ClassFitOptions)
    class_fit: bool | None = None

    def __post_init__(self) -> None:
        self.cka(0, self.bootstrap)  # each analysis's options check their own values
        self.fit(0)
        for augmentation in self.augment:
            self.invariance(augmentation, 0)

    def cka(self, seed: int, bootstrap: int) -> CKAOptions:
        return replace(self.cka_options, bootstrap=bootstrap, seed=seed)

    def invariance(self, augmentation: str, seed: int) -> InvarianceOptions:
        return InvarianceOptions((augmentation,), self.views, self.bootstrap, seed)

    def fit(self, seed: int) -> ClassFitOptions:
        return replace(self.class_fit_options, bootstrap=self.bootstrap, seed=seed)


class StudyParts:
    """Finished passes of a study, one JSON file each in ``folder``, for resuming."""

    def __init__(self, folder: Path):
        self.folder = folder

    def load(self, name: str, key: str) -> dict | None:
        """The kept pass ``name`` when it was computed under ``key`` and its checksum still
        certifies its content, else None (an edited or damaged pass is computed again)."""
        path = self.folder / f"{name}.json"
        try:
            kept = json.loads(path.read_text())
            content = {k: kept[k] for k in ("key", "fingerprint", "documents")}
            intact = kept["sha256"] == _key(**content)
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return content if intact and content["key"] == key else None

    def save(self, name: str, key: str, fingerprint: str, documents: dict[str, dict]) -> None:
        """Keep pass ``name`` with the SHA-256 of its content (written whole, then renamed
        into place)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.json"
        partial = path.with_suffix(".partial")
        content = json.loads(
            json.dumps(
                {"key": key, "fingerprint": fingerprint, "documents": documents}, default=str
            )
        )
        partial.write_text(json.dumps(content | {"sha256": _key(**content)}))
        os.replace(partial, path)


def _key(**what: Any) -> str:
    """SHA-256 of everything that determines a pass."""
    text = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _model(side: Side, plan: InputPlan) -> StudyModel:
    loaded = side.target.loaded
    report = loaded.load_report
    return StudyModel(
        label=side.label,
        spec=str(loaded.spec),
        checkpoint_sha256=loaded.checkpoint_sha256 or "",
        pretrained=loaded.pretrained,
        init_seed=loaded.init_seed,
        layers=list(side.layers),
        reduction=side.reduction,
        transform=eval_transform(resolve_config(loaded.data_config, plan.overrides)).describe(),
        load_report=report.lines() if report else [],
        notes=list(loaded.notes),
    )


def _plan_key(plan: InputPlan) -> dict:
    data = plan.data if isinstance(plan.data, (str, type(None))) else type(plan.data).__name__
    return asdict(replace(plan, inputs=replace(plan.inputs, data=None, workers=0))) | {"data": data}


def _plain_pass(
    a: Side,
    b: Side,
    baselines: dict[str, Side],
    options: StudyOptions,
    plan: InputPlan,
    device: torch.device,
    advance: Callable[[int, int], None] | None,
    job: Job,
) -> tuple[dict[str, CKAResult | ClassFitResult], str]:
    """CKA within A, within B and A vs B, each model against its untrained baseline, and
    the class fit of both and of the baselines, from one stream."""
    across = options.cka(plan.seed, options.bootstrap)
    runs = {
        "within_a": CKARun(a, a, options.cka(plan.seed, 0), plan, device, symmetric=True),
        "within_b": CKARun(b, b, options.cka(plan.seed, 0), plan, device, symmetric=True),
        "across": CKARun(a, b, across, plan, device),
    }
    for key, side in (("a_vs_untrained", a), ("b_vs_untrained", b)):
        if side.label in baselines:
            runs[key] = CKARun(side, baselines[side.label], across, plan, device)
    if options.class_fit is not False:  # None: where the images have labels
        runs["class_fit"] = ClassFitRun(
            [a, b, *distinct_sides(baselines)],
            options.fit(plan.seed),
            device,
            required=bool(options.class_fit),
        )
    found, stream = run_pass(list(runs.values()), plan, device, job=job, advance=advance)
    results = {name: r for name, r in zip(runs, found, strict=True) if r is not None}
    return results, stream.fingerprint()


def run_study(
    a: Side,
    b: Side,
    options: StudyOptions,
    plan: InputPlan,
    device: torch.device,
    parts: StudyParts | None = None,
    bars: ProgressBars | None = None,
    baselines: dict[str, Side] | None = None,
    job: Job = ONE_PROCESS,
) -> StudyResult:
    """Every analysis of the study over the planned images, reusing the passes ``parts``
    kept from an earlier run with the same key and images. ``baselines``: the untrained
    network of each model, by its label (``repcompare.sides.build.untrained_sides``),
    measured in the same passes. In a torchrun ``job`` each pass divides its batches
    among the processes; rank 0 decides which kept passes are reused and keeps the new
    ones, and every process gets the whole result."""
    baselines = baselines or {}
    extra = distinct_sides(baselines)
    if a.is_file or b.is_file:
        raise InputError(
            "a study runs both models forward on plain and augmented images; give MODEL "
            "specs (or modules), not activation files"
        )
    started = time.perf_counter()
    models = [_model(a, plan), _model(b, plan)]
    untrained = [_model(side, plan) for side in extra]
    common = {
        "models": [m.to_dict() for m in models + untrained],
        "plan": _plan_key(plan),
        "options": asdict(options),
        "device": device.type,  # cuda:1 in one torchrun process is cuda in another run
    }
    reused = []

    def computed(name: str, part_plan: InputPlan, compute, load) -> tuple[dict, str]:
        key = _key(part=name, **common)
        kept = job.gather(parts.load(name, key) if parts and job.main else None)[0]
        # every process checks the images itself: none waits in a collective meanwhile
        if kept and kept["fingerprint"] == input_fingerprint(part_plan):
            reused.append(name)
            return {k: load[k](d) for k, d in kept["documents"].items()}, kept["fingerprint"]
        with bars(name) if bars else nullcontext() as advance:
            results, fingerprint = compute(job.progress(advance))
        if parts and job.main:
            parts.save(name, key, fingerprint, {k: r.to_dict() for k, r in results.items()})
        return results, fingerprint

    loaders = {
        "within_a": CKAResult.from_document,
        "within_b": CKAResult.from_document,
        "across": CKAResult.from_document,
        "a_vs_untrained": CKAResult.from_document,
        "b_vs_untrained": CKAResult.from_document,
        "class_fit": ClassFitResult.from_document,
        "invariance": InvarianceResult.from_document,
    }
    plain, fingerprint = computed(
        "plain",
        plan,
        lambda advance: _plain_pass(a, b, baselines, options, plan, device, advance, job),
        loaders,
    )
    invariance = None
    for augmentation in options.augment:
        view_plan = replace(plan, augment=augmentation, views=options.views)

        def invariant(advance, augmentation=augmentation):
            result = measure_invariance(
                [a, b, *extra],
                options.invariance(augmentation, plan.seed),
                plan,
                device,
                advance,
                job,
            )
            return {"invariance": result}, result.fingerprints[augmentation]

        part, _ = computed(f"invariance_{augmentation}", view_plan, invariant, loaders)
        found = part["invariance"]
        invariance = found if invariance is None else invariance.merged(found)
    across = plain["across"]
    settings = StudySettings(
        data=_data_text(plan),
        n_images=across.matrix.n_examples,
        order=plan.order,
        seed=plan.seed,
        batch_size=across.settings.batch_size,
        estimator=options.cka_options.estimator,
        kernel=options.cka_options.kernel,
        bootstrap=options.bootstrap,
        augmentations=list(options.augment),
        views=options.views,
        baseline="untrained" if extra else "none",
        device=str(device),
        versions=package_versions(),
    )
    return StudyResult(
        models,
        plain["within_a"],
        plain["within_b"],
        across,
        invariance,
        plain.get("class_fit"),
        fingerprint,
        settings,
        reused,
        time.perf_counter() - started,
        untrained,
        {
            m: plain[k]
            for m, k in ((a.label, "a_vs_untrained"), (b.label, "b_vs_untrained"))
            if k in plain
        },
        {label: side.label for label, side in baselines.items()},
    )


def _data_text(plan: InputPlan) -> str:
    """The data set as a report states it."""
    if plan.data is None:
        return "builtin"
    if isinstance(plan.data, (str, Path)):
        return str(plan.data)
    return f"a {type(plan.data).__name__} given in Python"
