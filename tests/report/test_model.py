"""``format_value``, the one place a report decides how a value reads, and ``Table``."""

import math

import numpy as np
import pytest

from repcompare.report.model import Table, csv_cell, format_value
from repcompare.results.fields import json_number


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (math.nan, "undefined"),
        (None, "undefined"),
        (np.float32("nan"), "undefined"),
        (0.5, "0.500"),
        (np.float64(0.12345), "0.123"),
        (np.float32(0.25), "0.250"),
        (-0.0004, "-0.000"),
        (1.0, "1.000"),
        (7, "7"),
        (np.int64(12), "12"),
        ("layer1.0", "layer1.0"),
        ("", ""),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_format_value_digits_and_the_csv_flavour():
    assert format_value(1 / 3, 6) == "0.333333"
    assert format_value(math.nan, 6, undefined="") == ""
    assert csv_cell(0.1234567) == "0.123457"
    assert csv_cell(math.nan) == "" and csv_cell(None) == ""
    assert csv_cell("undefined: constant layer") == "undefined: constant layer"
    assert csv_cell(3) == "3"


def test_json_number_is_null_for_undefined():
    assert json_number(math.nan) is None and json_number(None) is None
    assert json_number(np.float64(0.25)) == 0.25 and type(json_number(np.float32(1))) is float


def test_table_sections_follow_the_model_and_numeric_columns_any_number():
    records = [
        {"model": "a", "layer": "x", "v": None},
        {"model": "a", "layer": "y", "v": 0.5},
        {"model": "b", "layer": "x", "v": math.nan},
        {"model": "a", "layer": "z", "v": 0.1},
    ]
    table = Table(records, {"model": "model", "layer": "layer", "v": "value"}, section_by="model")
    assert [[r["layer"] for r in s] for s in table.sections()] == [["x", "y"], ["x"], ["z"]]
    assert table.numeric("v") and not table.numeric("layer")
    assert table.cells(records[0]) == ["a", "x", "undefined"]
    assert table.cells(records[1]) == ["a", "y", "0.500"]
    unsectioned = Table(records, {"v": "value"})
    assert len(list(unsectioned.sections())) == 1
