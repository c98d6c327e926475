"""The summary of a study in sentences with numbers, read from the analyses' results.

Every number a sentence prints is ``cited``: the file it comes from and the JSON path of
the value (or of the values it is the mean of), which the result itself gives
(``value_paths``), so the report can be checked against its own results. The wording never
claims more than the numbers show: a difference is called one only where the 95%
bootstrap intervals do not overlap ("no clear difference" otherwise), a difference of
means without an interval is stated as such, and a model that is no better than its
untrained network at a measure is said to be so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from repcompare.report.model import format_value, is_undefined
from repcompare.results.cka import CKAResult
from repcompare.results.class_fit import ClassFitResult
from repcompare.results.fields import ValuePaths
from repcompare.results.invariance import InvarianceResult
from repcompare.similarity.model_map import depth_pairs

PARTING_LEVEL = 0.5  # same-depth CKA below this: the models have parted
ABOUT_EQUAL = 0.02  # means closer than this are "about as alike"


@dataclass(frozen=True)
class Cited:
    """A number of the summary: the mean of the JSON values at ``paths`` in ``file`` (one
    path: the value itself)."""

    value: float
    file: str
    paths: list[list]

    def to_dict(self) -> dict:
        return {"value": self.value, "file": self.file, "paths": self.paths}


@dataclass
class Sentence:
    """One sentence of the summary and the numbers it prints, in order."""

    text: str
    cited: list[Cited] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"text": self.text, "cited": [c.to_dict() for c in self.cited]}


def _at(document: dict, path: list):
    value = document
    for step in path:
        value = value[step]
    return value


@dataclass
class _Source:
    """One JSON document and the file it is written to."""

    document: dict
    file: str

    def cite(self, *paths: list) -> Cited | None:
        """The value at ``paths`` (their mean); None when one is undefined."""
        values = [_at(self.document, p) for p in paths]
        if any(is_undefined(v) for v in values):
            return None
        return Cited(float(np.mean(values)), self.file, [list(p) for p in paths])


@dataclass
class _Estimate:
    """A cited value with its cited 95% interval, if there is one."""

    value: Cited
    low: Cited | None = None
    high: Cited | None = None

    @property
    def cited(self) -> list[Cited]:
        return [self.value] + ([self.low, self.high] if self.low and self.high else [])

    def text(self) -> str:
        shown = format_value(self.value.value)
        if self.low and self.high:
            shown += f" [{format_value(self.low.value)}, {format_value(self.high.value)}]"
        return shown


def _estimate(source: _Source, paths: ValuePaths | None) -> _Estimate | None:
    """The cited value at ``paths`` with its cited interval, if it has one; None when it
    was not measured or is undefined."""
    if paths is None:
        return None
    path, low, high = paths
    value = source.cite(path)
    if value is None:
        return None
    if low is None or high is None:
        return _Estimate(value)
    return _Estimate(value, source.cite(low), source.cite(high))


def _order(first: _Estimate, second: _Estimate) -> str | None:
    """``"higher"``/``"lower"`` when ``second``'s interval lies wholly above/below
    ``first``'s, None inside the intervals (or without intervals)."""
    if not (first.low and first.high and second.low and second.high):
        return None
    if second.low.value > first.high.value:
        return "higher"
    if second.high.value < first.low.value:
        return "lower"
    return None


def _layers_of(layers: list[str], roles: dict[str, str], role: str | None) -> list[int]:
    return [i for i, n in enumerate(layers) if role is None or roles.get(n) == role]


def _kind(roles: dict[str, str]) -> tuple[str | None, str]:
    """The role of the layers the summary reads (block outputs when the paper preset marked
    them) and how to call them."""
    return ("block", "block output") if "block" in roles.values() else (None, "layer")


def _same_depth_pairs(result: CKAResult, role: str | None) -> list[tuple[int, int]]:
    """Rows and columns of ``result`` (of ``role``; None: all) at matched relative depth."""
    rows = _layers_of(result.matrix.names_a, result.roles_a, role)
    columns = _layers_of(result.matrix.names_b, result.roles_b, role)
    return depth_pairs(rows, columns)


def agreement(across: CKAResult, file: str) -> list[Sentence]:
    """Where A and B agree and where they part: same-depth CKA at the first and last block
    output, where it first falls below ``PARTING_LEVEL``, and block outputs vs residual
    branches."""
    source = _Source(across.to_dict(), file)
    a, b = across.side_a, across.side_b
    role, kind = _kind(across.roles_a)
    intervals = across.ci_low is not None

    def estimate(i: int, j: int) -> _Estimate | None:
        return _estimate(source, across.value_paths(i, j))

    def value(i: int, j: int) -> Cited | None:
        return source.cite(across.value_paths(i, j)[0])

    def pairs(of_role: str | None) -> list[tuple[int, int]]:
        return [p for p in _same_depth_pairs(across, of_role) if value(*p) is not None]

    matched = pairs(role)
    if not matched:
        return [Sentence(f"{a} and {b} have no {kind} pair with a defined CKA to compare.")]
    names_a, names_b = across.matrix.names_a, across.matrix.names_b
    name = lambda i, j: f"{names_a[i]} / {names_b[j]}"  # noqa: E731
    (i0, j0), (i1, j1) = matched[0], matched[-1]
    first, last = estimate(i0, j0), estimate(i1, j1)
    verdict = {
        "lower": "part with depth",
        "higher": "grow more alike with depth",
        None: "are about as alike at the last as at the first (no clear difference"
        + (": the 95% intervals overlap)" if intervals else ": no intervals were computed)"),
    }[_order(first, last)]
    sentences = [
        Sentence(
            f"{a} and {b} {verdict}: at the same depth, the CKA of their first {kind}s "
            f"({name(i0, j0)}) is {first.text()}, of their last ({name(i1, j1)}) {last.text()}.",
            first.cited + last.cited,
        )
    ]
    below = [(i, j) for i, j in matched if value(i, j).value < PARTING_LEVEL]
    if below:
        i, j = below[0]
        lowest = value(i, j)
        sentences.append(
            Sentence(
                f"Same-depth CKA first falls below {PARTING_LEVEL} at {name(i, j)} "
                f"({format_value(lowest.value)}).",
                [lowest],
            )
        )
    else:
        i, j = min(matched, key=lambda p: value(*p).value)
        lowest = value(i, j)
        sentences.append(
            Sentence(
                f"Same-depth CKA stays at or above {PARTING_LEVEL} at every {kind}; its lowest "
                f"is {format_value(lowest.value)} at {name(i, j)}.",
                [lowest],
            )
        )
    residual = pairs("residual") if role else []
    if residual:
        paths = [across.value_paths(i, j)[0] for i, j in matched]
        blocks = source.cite(*paths)
        branches = source.cite(*(across.value_paths(i, j)[0] for i, j in residual))
        difference = branches.value - blocks.value
        verdict = (
            "about as alike as the block outputs"
            if abs(difference) < ABOUT_EQUAL
            else "less alike than the block outputs"
            if difference < 0
            else "more alike than the block outputs"
        )
        sentences.append(
            Sentence(
                f"Averaged over depth, same-depth CKA is {format_value(blocks.value)} for block "
                f"outputs and {format_value(branches.value)} for residual branches: the residual "
                f"branches of the two models are {verdict} (a difference of means, without an "
                "interval).",
                [blocks, branches],
            )
        )
    return sentences


def untrained_agreement(
    against: dict[str, CKAResult], files: dict[str, str], across: CKAResult
) -> list[Sentence]:
    """Each model against its untrained network at the same layers, at the first and the
    last block output: the reference A vs B's same-depth CKA is read against (a trained
    model's early layers stay close to its random init; where A vs B is no higher than
    that, the two agree no more than each does with random weights)."""
    role, kind = _kind(across.roles_a)
    parts, cited = [], []
    for model, result in against.items():
        source = _Source(result.to_dict(), files[model])
        diagonal = _layers_of(result.matrix.names_a, result.roles_a, role)
        ends = [_estimate(source, result.value_paths(i, i)) for i in (diagonal[0], diagonal[-1])]
        if any(e is None for e in ends):
            continue
        first, last = ends
        parts.append(f"{model} {first.text()} at the first {kind} and {last.text()} at the last")
        cited += first.cited + last.cited
    if not parts:
        return []
    return [
        Sentence(
            "For reference, the CKA of each model with its untrained network (the same "
            f"architecture with random weights) at the same layers: {'; '.join(parts)}.",
            cited,
        )
    ]


def _last_layer(layers: list[str], roles: dict[str, str]) -> str:
    role, _ = _kind(roles)
    return layers[_layers_of(layers, roles, role)[-1]]


def _first_layer(layers: list[str], roles: dict[str, str]) -> str:
    role, _ = _kind(roles)
    return layers[_layers_of(layers, roles, role)[0]]


def _compare_models(
    first: tuple[str, _Estimate], second: tuple[str, _Estimate], more: str, alike: str
) -> tuple[str, list[Cited]]:
    """ "B is more X than A: v [..] vs v [..]" or "A and B are alike (no clear difference)"."""
    (name_a, a), (name_b, b) = first, second
    order = _order(a, b)
    cited = a.cited + b.cited
    if order is None:
        reason = "the 95% intervals overlap" if a.low and b.low else "no intervals were computed"
        return (
            f"{name_a} and {name_b} {alike} (no clear difference: {reason}): "
            f"{a.text()} vs {b.text()}",
            cited,
        )
    (winner, w), (loser, l_) = (second, first) if order == "higher" else (first, second)
    return f"{winner} {more} than {loser}: {w.text()} vs {l_.text()}", w.cited + l_.cited


def _against_untrained(
    model: str, trained: _Estimate, untrained: _Estimate, phrases: tuple[str, str, str]
) -> tuple[str, list[Cited]]:
    """How ``model`` stands against its untrained network, by ``phrases`` (above, below,
    neither: "is more invariant to crop than", ...), with both numbers."""
    above, below, neither = phrases
    order = _order(untrained, trained)
    phrase = above if order == "higher" else below if order == "lower" else neither
    reason = "" if order else "; the 95% intervals overlap" if trained.low else "; no intervals"
    text = (
        f"{model} {phrase} its untrained network ({trained.text()} vs {untrained.text()}{reason})"
    )
    return text, trained.cited + untrained.cited


def _baseline_sentence(
    kind: str,
    against: list[tuple[str, _Estimate, _Estimate]],
    phrases: tuple[str, str, str],
    what: str,
) -> Sentence | None:
    """One sentence: each model against its untrained network at the last ``kind``; when
    one is not above it, the sentence says that its ``what`` there is no sign of training."""
    if not against:
        return None
    parts, cited, behind = [], [], []
    for model, trained, untrained in against:
        text, numbers = _against_untrained(model, trained, untrained, phrases)
        parts.append(text)
        cited += numbers
        if _order(untrained, trained) != "higher":
            behind.append(model)
    caveat = (
        f"; so the {what} of {' and '.join(behind)} at this depth is no sign of what training "
        "learned"
        if behind
        else ""
    )
    return Sentence(
        f"Against the untrained networks, at the last {kind}: {'; '.join(parts)}{caveat}.", cited
    )


def invariance_findings(
    invariance: InvarianceResult,
    file: str,
    layers: dict[str, list[str]],
    roles: dict[str, dict],
    baseline_of: dict[str, str] | None = None,
) -> list[Sentence]:
    """For each augmentation: which model is more invariant to it at its last block output,
    and how each stands against its untrained network (``baseline_of``: model -> label of
    its untrained network in ``invariance``)."""
    source = _Source(invariance.to_dict(), file)
    baseline_of = baseline_of or {}
    models = list(layers)
    _, kind = _kind(roles[models[0]])
    sentences = []
    for augmentation in invariance.fingerprints:
        estimates = {}
        for model in [*models, *dict.fromkeys(baseline_of.values())]:
            owner = next((m for m in models if baseline_of.get(m) == model), model)
            layer = _last_layer(layers[owner], roles[owner])
            paths = invariance.value_paths(model, augmentation, layer)
            estimates[model] = _estimate(source, paths)
        if any(estimates[m] is None for m in models):
            continue
        text, cited = _compare_models(
            *((m, estimates[m]) for m in models),
            f"is more invariant to {augmentation}",
            f"are about as invariant to {augmentation}",
        )
        sentences.append(Sentence(f"At the last {kind}, {text}.", cited))
        against = [
            (m, estimates[m], estimates[baseline_of[m]])
            for m in models
            if estimates.get(baseline_of.get(m)) is not None
        ]
        phrases = tuple(
            f"is {degree} invariant to {augmentation} than"
            for degree in ("more", "less", "no more")
        )
        baseline = _baseline_sentence(kind, against, phrases, f"invariance to {augmentation}")
        if baseline:
            sentences.append(baseline)
    return sentences


def _accuracies(
    class_fit: ClassFitResult,
    source: _Source,
    kind: str,
    last: dict[str, str],
    baseline_of: dict[str, str],
) -> Sentence:
    """kNN and probe accuracy at the last ``kind`` of each model and of the untrained
    networks (at the layer of the model they stand for)."""
    owner = {untrained: model for model, untrained in baseline_of.items() if model in last}
    readers = [*last, *owner]
    parts, cited = [], []
    for reader in readers:
        layer = last[owner.get(reader, reader)]
        values = [class_fit.value_paths(reader, layer, m) for m in ("knn", "probe")]
        knn, probe = (source.cite(v[0]) if v else None for v in values)
        if knn is not None and probe is not None:
            parts.append(f"{reader} {format_value(knn.value)} / {format_value(probe.value)}")
            cited += [knn, probe]
    return Sentence(
        f"Held-out accuracy at the last {kind}, kNN / linear probe: {'; '.join(parts)}.", cited
    )


def class_findings(
    class_fit: ClassFitResult,
    file: str,
    layers: dict[str, list[str]],
    roles: dict[str, dict],
    baseline_of: dict[str, str] | None = None,
) -> list[Sentence]:
    """Which model fits the classes more at its last block output (class CKA with its
    interval, and the probe), how each stands against its untrained network, and how
    crowded each is from the first to the last."""
    source = _Source(class_fit.to_dict(), file)
    baseline_of = baseline_of or {}
    models = list(layers)
    _, kind = _kind(next(iter(roles.values())))

    def cite(model: str, layer: str, measure: str) -> Cited | None:
        paths = class_fit.value_paths(model, layer, measure)
        return None if paths is None else source.cite(paths[0])

    last = {m: _last_layer(layers[m], roles[m]) for m in models}
    first = {m: _first_layer(layers[m], roles[m]) for m in models}
    estimates = {
        m: _estimate(source, class_fit.value_paths(m, last[m], "class_cka")) for m in models
    }
    probes = [cite(m, last[m], "probe") for m in models]
    crowding = [(m, cite(m, first[m], "ratio"), cite(m, last[m], "ratio")) for m in models]
    sentences = []
    if all(e is not None for e in estimates.values()):
        text, cited = _compare_models(
            *estimates.items(), "fits the classes more", "fit the classes about as much"
        )
        probe_cited = [p for p in probes if p is not None]
        probe_text = ""
        if len(probe_cited) == len(probes):
            shown = " and ".join(
                f"{format_value(p.value)} ({model})"
                for p, model in zip(probes, models, strict=True)
            )
            probe_text = f"; the linear probe's held-out accuracy there is {shown}"
        sentences.append(
            Sentence(f"At the last {kind}, by class CKA {text}{probe_text}.", cited + probe_cited)
        )
        against = []
        for m in models:
            if m in baseline_of:
                paths = class_fit.value_paths(baseline_of[m], last[m], "class_cka")
                untrained = _estimate(source, paths)
                if untrained is not None:
                    against.append((m, estimates[m], untrained))
        phrases = tuple(f"fits the classes {d} than" for d in ("more", "less", "no more"))
        baseline = _baseline_sentence(kind, against, phrases, "class fit")
        if baseline:
            sentences.append(baseline)
            sentences.append(_accuracies(class_fit, source, kind, last, baseline_of))
    defined = [(m, f, l_) for m, f, l_ in crowding if f is not None and l_ is not None]
    for m in models:
        if m in baseline_of:
            untrained = cite(baseline_of[m], last[m], "ratio")
            if untrained is not None and baseline_of[m] not in [d[0] for d in defined]:
                defined.append((baseline_of[m], cite(baseline_of[m], first[m], "ratio"), untrained))
    defined = [(m, f, l_) for m, f, l_ in defined if f is not None and l_ is not None]
    if defined:
        parts = [
            f"{model} {format_value(f.value)} to {format_value(l_.value)}"
            for model, f, l_ in defined
        ]
        sentences.append(
            Sentence(
                "Crowding ratio (mean within-class over mean between-class distance; lower is "
                f"better separated) from the first to the last {kind}: {'; '.join(parts)}.",
                [c for _, f, l_ in defined for c in (f, l_)],
            )
        )
    return sentences
