"""The study's summary sentences on hand-built JSON documents: the verdicts follow the
intervals, and every printed number is the cited value."""

import re

import numpy as np

from repcompare.report.findings import agreement, class_findings, invariance_findings
from repcompare.report.model import format_value

LAYERS = ["l1.bn2", "l1", "l2.bn2", "l2"]
ROLES = {"l1.bn2": "residual", "l1": "block", "l2.bn2": "residual", "l2": "block"}


def _cka(values, low, high) -> dict:
    side = {"label": "A", "layers": LAYERS, "degenerate": [], "roles": ROLES}
    return {
        "side_a": side,
        "side_b": side | {"label": "B"},
        "cka": values,
        "ci_low": low,
        "ci_high": high,
    }


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


def _records(model: str, values: list[float], spread: float, **fields) -> list[dict]:
    return [
        {
            "model": model,
            "layer": layer,
            **fields,
            "invariance": v,
            "ci_low": v - spread,
            "ci_high": v + spread,
        }
        for layer, v in zip(LAYERS, values, strict=True)
    ]


def test_the_more_invariant_model_is_named_only_outside_the_intervals():
    document = {
        "input_fingerprints": {"crop": "x", "flip": "y"},
        "records": [
            *_records("A", [0.1, 0.2, 0.3, 0.4], 0.05, augmentation="crop"),
            *_records("B", [0.1, 0.2, 0.3, 0.7], 0.05, augmentation="crop"),
            *_records("A", [0.1, 0.2, 0.3, 0.5], 0.05, augmentation="flip"),
            *_records("B", [0.1, 0.2, 0.3, 0.55], 0.05, augmentation="flip"),
        ],
    }
    layers = {"A": LAYERS, "B": LAYERS}
    crop, flip = invariance_findings(document, "i.json", layers, {"A": ROLES, "B": ROLES})
    assert crop.text.startswith("At the last block output, B is more invariant to crop than A")
    assert crop.cited[0].paths == [["records", 7, "invariance"]]  # B's l2 record
    assert "no clear difference" in flip.text
    assert "0.500 [0.450, 0.550] vs 0.550 [0.500, 0.600]" in flip.text


def test_class_findings_name_the_better_fit_and_the_crowding():
    def records(model, class_cka, ratio, probe):
        return [
            {
                "model": model,
                "layer": layer,
                "class_cka": c,
                "ratio": r,
                "probe": p,
                "class_cka_ci_low": c - 0.01,
                "class_cka_ci_high": c + 0.01,
            }
            for layer, c, r, p in zip(LAYERS, class_cka, ratio, probe, strict=True)
        ]

    document = {
        "records": [
            *records("A", [0.5, 0.6, 0.7, 0.8], [0.4, 0.3, 0.2, 0.1], [0.7, 0.8, 0.9, 1.0]),
            *records("B", [0.5, 0.4, 0.3, 0.2], [0.5, 0.8, 1.2, 1.6], [0.6, 0.6, 0.6, 0.5]),
        ]
    }
    fit, crowding = class_findings(
        document, "c.json", {"A": LAYERS, "B": LAYERS}, {"A": ROLES, "B": ROLES}
    )
    assert "A fits the classes more than B: 0.800 [0.790, 0.810] vs 0.200" in fit.text
    assert "1.000 (A) and 0.500 (B)" in fit.text
    assert "A 0.300 to 0.100; B 0.800 to 1.600" in crowding.text
    for sentence in (fit, crowding):
        assert _printed(sentence) == [format_value(c.value) for c in sentence.cited]
