"""The summary of a study in sentences with numbers, read from the analyses' JSON documents.

Every number a sentence prints is ``cited``: the file it comes from and the JSON path of
the value (or of the values it is the mean of), so the report can be checked against its
own results. The wording never claims more than the numbers show: a difference is called
one only where the 95% bootstrap intervals do not overlap ("no clear difference"
otherwise), and a difference of means without an interval is stated as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from repcompare.report.model import format_value, is_undefined
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


def _estimate(source: _Source, path: list, low: list | None, high: list | None) -> _Estimate | None:
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


def agreement(cka: dict, file: str) -> list[Sentence]:
    """Where A and B agree and where they part: same-depth CKA at the first and last block
    output, where it first falls below ``PARTING_LEVEL``, and block outputs vs residual
    branches."""
    source = _Source(cka, file)
    side_a, side_b = cka["side_a"], cka["side_b"]
    a, b = side_a["label"], side_b["label"]
    role, kind = _kind(side_a.get("roles", {}))
    intervals = cka.get("ci_low") is not None

    def estimate(i: int, j: int) -> _Estimate | None:
        bounds = (["ci_low", i, j], ["ci_high", i, j]) if intervals else (None, None)
        return _estimate(source, ["cka", i, j], *bounds)

    def pairs(of_role: str | None) -> list[tuple[int, int]]:
        rows = _layers_of(side_a["layers"], side_a.get("roles", {}), of_role)
        columns = _layers_of(side_b["layers"], side_b.get("roles", {}), of_role)
        return [
            (i, j) for i, j in depth_pairs(rows, columns) if source.cite(["cka", i, j]) is not None
        ]

    matched = pairs(role)
    if not matched:
        return [Sentence(f"{a} and {b} have no {kind} pair with a defined CKA to compare.")]
    name = lambda i, j: f"{side_a['layers'][i]} / {side_b['layers'][j]}"  # noqa: E731
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
    below = [(i, j) for i, j in matched if source.cite(["cka", i, j]).value < PARTING_LEVEL]
    if below:
        i, j = below[0]
        value = source.cite(["cka", i, j])
        sentences.append(
            Sentence(
                f"Same-depth CKA first falls below {PARTING_LEVEL} at {name(i, j)} "
                f"({format_value(value.value)}).",
                [value],
            )
        )
    else:
        i, j = min(matched, key=lambda p: source.cite(["cka", *p]).value)
        value = source.cite(["cka", i, j])
        sentences.append(
            Sentence(
                f"Same-depth CKA stays at or above {PARTING_LEVEL} at every {kind}; its lowest "
                f"is {format_value(value.value)} at {name(i, j)}.",
                [value],
            )
        )
    residual = pairs("residual") if role else []
    if residual:
        blocks = source.cite(*(["cka", i, j] for i, j in matched))
        branches = source.cite(*(["cka", i, j] for i, j in residual))
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


def _record(document: dict, **match: str) -> int | None:
    """The index of the first record with the ``match``ing fields."""
    for k, record in enumerate(document["records"]):
        if all(record[key] == value for key, value in match.items()):
            return k
    return None


def _last_layer(layers: list[str], roles: dict[str, str]) -> str:
    role, _ = _kind(roles)
    return layers[_layers_of(layers, roles, role)[-1]]


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


def invariance_findings(
    invariance: dict, file: str, layers: dict[str, list[str]], roles: dict[str, dict]
) -> list[Sentence]:
    """For each augmentation: which model is more invariant to it at its last block output."""
    source = _Source(invariance, file)
    models = list(layers)
    sentences = []
    for augmentation in invariance["input_fingerprints"]:
        estimates = []
        for model in models:
            layer = _last_layer(layers[model], roles[model])
            k = _record(invariance, model=model, augmentation=augmentation, layer=layer)
            estimates.append(
                (model, _record_estimate(source, k, "invariance", "ci_low", "ci_high"))
            )
        if any(e is None for _, e in estimates):
            continue
        text, cited = _compare_models(
            *estimates,
            f"is more invariant to {augmentation}",
            f"are about as invariant to {augmentation}",
        )
        _, kind = _kind(roles[models[0]])
        sentences.append(Sentence(f"At the last {kind}, {text}.", cited))
    return sentences


def _record_estimate(
    source: _Source, k: int | None, key: str, low: str, high: str
) -> _Estimate | None:
    if k is None:
        return None
    record = source.document["records"][k]
    has_interval = not is_undefined(record.get(low))
    return _estimate(
        source,
        ["records", k, key],
        ["records", k, low] if has_interval else None,
        ["records", k, high] if has_interval else None,
    )


def class_findings(
    class_fit: dict, file: str, layers: dict[str, list[str]], roles: dict[str, dict]
) -> list[Sentence]:
    """Which model fits the classes more at its last block output (class CKA with its
    interval, and the probe), and how crowded each is from the first to the last."""
    source = _Source(class_fit, file)
    estimates, probes, crowding = [], [], []
    for model in layers:
        role, _ = _kind(roles[model])
        chosen = [layers[model][i] for i in _layers_of(layers[model], roles[model], role)]
        first = _record(class_fit, model=model, layer=chosen[0])
        last = _record(class_fit, model=model, layer=chosen[-1])
        estimates.append(
            (
                model,
                _record_estimate(
                    source, last, "class_cka", "class_cka_ci_low", "class_cka_ci_high"
                ),
            )
        )
        probes.append(source.cite(["records", last, "probe"]))
        crowding.append(
            (
                model,
                source.cite(["records", first, "ratio"]),
                source.cite(["records", last, "ratio"]),
            )
        )
    sentences = []
    _, kind = _kind(next(iter(roles.values())))
    if all(e is not None for _, e in estimates):
        text, cited = _compare_models(
            *estimates, "fits the classes more", "fit the classes about as much"
        )
        probe_cited = [p for p in probes if p is not None]
        probe_text = ""
        if len(probe_cited) == len(probes):
            shown = " and ".join(
                f"{format_value(p.value)} ({model})"
                for p, model in zip(probes, layers, strict=True)
            )
            probe_text = f"; the linear probe's held-out accuracy there is {shown}"
        sentences.append(
            Sentence(f"At the last {kind}, by class CKA {text}{probe_text}.", cited + probe_cited)
        )
    defined = [(m, f, l_) for m, f, l_ in crowding if f is not None and l_ is not None]
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
