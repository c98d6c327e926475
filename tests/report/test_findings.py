"""The study's summary sentences on hand-built results: the verdicts follow the
intervals, and every printed number is the cited value."""

import re
from dataclasses import replace

import numpy as np

from repcompare.report.findings import agreement, class_findings, invariance_findings
from repcompare.report.model import format_value
from repcompare.results.class_fit import ClassFit
from repcompare.results.curves import LayerCurve
from repcompare.similarity import SimilarityMatrix
from tests.support.results import cka_result, class_fit_result, invariance_result, provenance

LAYERS = ["l1.bn2", "l1", "l2.bn2", "l2"]
ROLES = {"l1.bn2": "residual", "l1": "block", "l2.bn2": "residual", "l2": "block"}


def _cka(values, low, high):
    return replace(
        cka_result(),
        side_a="A",
        side_b="B",
        matrix=SimilarityMatrix(LAYERS, LAYERS, np.array(values), (), (), 256),
        ci_low=None if low is None else np.array(low),
        ci_high=None if high is None else np.array(high),
        roles_a=ROLES,
        roles_b=ROLES,
    )


def _diagonal(values: list[float], spread: float) -> tuple[list, list, list]:
    matrix = np.full((4, 4), 0.3)
    np.fill_diagonal(matrix, values)
    return matrix.tolist(), (matrix - spread).tolist(), (matrix + spread).tolist()


def _printed(sentence) -> list[str]:
    return re.findall(r"\d+\.\d{3}", sentence.text)


def test_models_that_part_with_depth_are_said_to_part():
    sentences = agreement(_cka(*_diagonal([0.8, 0.9, 0.6, 0.4], 0.02)), "a/cka.json")
    first = sentences[0]
    assert "part with depth" in first.text
    assert "(l1 / l1) is 0.900 [0.880, 0.920]" in first.text
    assert first.cited[0].paths == [["cka", 1, 1]] and first.cited[3].value == 0.4
    assert "falls below 0.5 at l2 / l2 (0.400)" in sentences[1].text
    means = sentences[2]
    assert "0.650 for block outputs and 0.700 for residual branches" in means.text
    assert "more alike than the block outputs" in means.text
    assert means.cited[0].paths == [["cka", 1, 1], ["cka", 3, 3]]
    for sentence in sentences:
        assert _printed(sentence) == [format_value(c.value) for c in sentence.cited]


def test_overlapping_intervals_are_no_clear_difference():
    sentences = agreement(_cka(*_diagonal([0.8, 0.7, 0.8, 0.6], 0.06)), "a/cka.json")
    assert "no clear difference: the 95% intervals overlap" in sentences[0].text
    assert "stays at or above 0.5" in sentences[1].text and "0.600 at l2 / l2" in sentences[1].text


def test_without_intervals_nothing_is_called_a_difference():
    values, _, _ = _diagonal([0.9, 0.9, 0.2, 0.2], 0.0)
    sentences = agreement(_cka(values, None, None), "a/cka.json")
    assert "no intervals were computed" in sentences[0].text
    assert "[" not in sentences[0].text


def _curve(model: str, augmentation: str, values: list[float], spread: float) -> LayerCurve:
    values = np.array(values)
    return LayerCurve(model, augmentation, LAYERS, values, values - spread, values + spread)


def test_the_more_invariant_model_is_named_only_outside_the_intervals():
    result = replace(
        invariance_result(),
        curves=[
            _curve("A", "crop", [0.1, 0.2, 0.3, 0.4], 0.05),
            _curve("B", "crop", [0.1, 0.2, 0.3, 0.7], 0.05),
            _curve("A", "flip", [0.1, 0.2, 0.3, 0.5], 0.05),
            _curve("B", "flip", [0.1, 0.2, 0.3, 0.55], 0.05),
        ],
        fingerprints={"crop": "x", "flip": "y"},
        provenance={"A": provenance("A"), "B": provenance("B")},
    )
    layers = {"A": LAYERS, "B": LAYERS}
    crop, flip = invariance_findings(result, "i.json", layers, {"A": ROLES, "B": ROLES})
    assert crop.text.startswith("At the last block output, B is more invariant to crop than A")
    assert crop.cited[0].paths == [["records", 7, "invariance"]]  # B's l2 record
    assert "no clear difference" in flip.text
    assert "0.500 [0.450, 0.550] vs 0.550 [0.500, 0.600]" in flip.text


def test_class_findings_name_the_better_fit_and_the_crowding():
    def fit(model, class_cka, ratio, probe) -> ClassFit:
        measures = {"class_cka": np.array(class_cka), "ratio": np.array(ratio)}
        interval = (measures["class_cka"] - 0.01, measures["class_cka"] + 0.01)
        return ClassFit(model, LAYERS, measures | {"probe": np.array(probe)}, interval)

    result = replace(
        class_fit_result(tokens=False),
        fits=[
            fit("A", [0.5, 0.6, 0.7, 0.8], [0.4, 0.3, 0.2, 0.1], [0.7, 0.8, 0.9, 1.0]),
            fit("B", [0.5, 0.4, 0.3, 0.2], [0.5, 0.8, 1.2, 1.6], [0.6, 0.6, 0.6, 0.5]),
        ],
        provenance={"A": provenance("A"), "B": provenance("B")},
    )
    fit, crowding = class_findings(
        result, "c.json", {"A": LAYERS, "B": LAYERS}, {"A": ROLES, "B": ROLES}
    )
    assert "A fits the classes more than B: 0.800 [0.790, 0.810] vs 0.200" in fit.text
    assert "1.000 (A) and 0.500 (B)" in fit.text
    assert "A 0.300 to 0.100; B 0.800 to 1.600" in crowding.text
    for sentence in (fit, crowding):
        assert _printed(sentence) == [format_value(c.value) for c in sentence.cited]


def test_a_model_is_read_against_its_untrained_network_and_flagged_when_not_above_it():
    def fit(model, class_cka) -> ClassFit:
        values = np.array(class_cka)
        measures = {"class_cka": values, "ratio": values, "probe": values, "knn": values}
        return ClassFit(model, LAYERS, measures, (values - 0.01, values + 0.01))

    result = replace(
        class_fit_result(tokens=False),
        fits=[
            fit("A", [0.5, 0.6, 0.7, 0.8]),
            fit("B", [0.5, 0.4, 0.3, 0.31]),
            fit("untrained", [0.5, 0.4, 0.3, 0.3]),
        ],
        provenance={m: provenance(m) for m in ("A", "B", "untrained")},
    )
    baseline_of = {"A": "untrained", "B": "untrained"}
    sentences = class_findings(
        result, "c.json", {"A": LAYERS, "B": LAYERS}, {"A": ROLES, "B": ROLES}, baseline_of
    )
    against = next(s for s in sentences if s.text.startswith("Against the untrained"))
    assert "A fits the classes more than its untrained network (0.800 [0.790, 0.810] vs " in (
        against.text
    )
    assert "B fits the classes no more than its untrained network (0.310 [0.300, 0.320] vs " in (
        against.text
    )
    assert against.text.endswith(
        "so the class fit of B at this depth is no sign of what training learned."
    )
    assert _printed(against) == [format_value(c.value) for c in against.cited]
    assert against.cited[3].paths == [["records", 11, "class_cka"]]  # the untrained's l2
    accuracy = sentences[sentences.index(against) + 1]
    assert accuracy.text == (
        "Held-out accuracy at the last block output, kNN / linear probe: A 0.800 / 0.800; "
        "B 0.310 / 0.310; untrained 0.300 / 0.300."
    )
    assert accuracy.cited[-1].paths == [["records", 11, "probe"]]
    crowding = sentences[-1]
    assert "untrained 0.400 to 0.300" in crowding.text
