"""The ``invariance`` report: every rendered value checked against the hand-built curves."""

import csv
import fnmatch
import json
import math

import numpy as np
import pytest

from repcompare.report.files import write_report
from repcompare.report.invariance import OWNED_FILES, columns, invariance_report
from repcompare.report.model import format_value, report_figures
from repcompare.report.terminal import report_table
from tests.support.render import markdown_rows, terminal_rows, terminal_text
from tests.support.results import invariance_result


def expected_rows(result):
    """(model, augmentation, layer, depth, value, low, high) for every layer of every curve."""
    for curve in result.curves:
        depths = np.linspace(0, 1, len(curve.layers))
        for i, layer in enumerate(curve.layers):
            yield (
                curve.model,
                curve.variant,
                layer,
                depths[i],
                curve.values[i],
                curve.ci_low[i],
                curve.ci_high[i],
            )


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = invariance_result()
    out = tmp_path_factory.mktemp("invariance")
    return result, out, write_report(invariance_report(result), out)


def test_the_csv_rows_are_the_curves(written):
    result, out, _ = written
    with open(out / "invariance.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = list(expected_rows(result))
    assert len(rows) == len(expected) == 14
    for row, (model, augmentation, layer, depth, value, low, high) in zip(
        rows, expected, strict=True
    ):
        assert (row["model"], row["augmentation"], row["layer"]) == (model, augmentation, layer)
        assert row["depth"] == f"{depth:.6f}"
        for key, number in (("invariance", value), ("ci_low", low), ("ci_high", high)):
            if math.isnan(number):
                assert row[key] == ""
            else:
                assert row[key] == f"{number:.6f}"
                assert float(row[key]) == pytest.approx(number, abs=5e-7)
    assert sum(row["invariance"] == "" for row in rows) == 1


def test_the_json_records_are_the_curves_with_null_for_undefined(written):
    result, out, _ = written
    document = json.loads((out / "invariance.json").read_text())
    expected = list(expected_rows(result))
    for record, (_, _, layer, depth, value, low, high) in zip(
        document["records"], expected, strict=True
    ):
        assert record["layer"] == layer and record["depth"] == pytest.approx(depth)
        for key, number in (("invariance", value), ("ci_low", low), ("ci_high", high)):
            assert record[key] == (None if math.isnan(number) else number)
    assert document["input_fingerprints"] == result.fingerprints
    assert document["settings"]["augmentations"] == ["simclr", "flip"]
    assert set(document["provenance"]) == {"small", "big"}
    assert document["seconds"] == result.seconds


def test_the_markdown_table_shows_format_value_of_the_records(written):
    result, out, _ = written
    text = (out / "invariance.md").read_text()
    header, rows = markdown_rows(text)
    assert header == [
        "model",
        "augmentation",
        "layer",
        "depth",
        "invariance",
        "95% low",
        "95% high",
    ]
    records = result.records()
    keys = list(columns(True))
    for cells, record, expected in zip(rows, records, expected_rows(result), strict=True):
        assert cells == [format_value(record[k]) for k in keys]
        value = expected[4]
        if math.isnan(value):
            assert cells[4:] == ["undefined"] * 3
        else:
            assert float(cells[4]) == pytest.approx(value, abs=5e-4)
    assert "![" in text and "](invariance.png)" in text
    assert "simclr `cccccccccccccccc`, flip `dddddddddddddddd`" in text
    assert "CKA between 2 augmented views of the same 128 images" in text


def test_the_terminal_table_has_a_section_per_model_and_the_fingerprints(written):
    result, _, _ = written
    report = invariance_report(result)
    text = terminal_text(report_table(report))
    assert text.startswith("Invariance: CKA between 2 augmented views, 128 images")
    assert "simclr inputs cccccccccccccccc; flip inputs dddddddddddddddd" in text
    header, rows = terminal_rows(text)
    assert header[-2:] == ["95% low", "95% high"]
    assert [r[:3] for r in rows] == [list(e[:3]) for e in expected_rows(result)]
    assert [r[4] for r in rows] == [format_value(e[4]) for e in expected_rows(result)]
    assert sum(line.startswith("├") for line in text.splitlines()) == 3


def test_without_bootstrap_there_are_no_interval_columns():
    report = invariance_report(invariance_result(bootstrap=False))
    assert list(report.tables[0].columns) == list(columns(False))
    assert all(r["ci_low"] is None for r in report.records)


def test_write_report_writes_exactly_the_owned_files(written, tmp_path):
    result, out, paths = written
    names = [p.name for p in paths]
    assert sorted(names) == sorted(OWNED_FILES) == sorted(p.name for p in out.iterdir())
    again = result.save(tmp_path)
    assert [p.name for p in again] == names
    for name in ("invariance.csv", "invariance.json", "invariance.md"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    assert all(any(fnmatch.fnmatchcase(n, p) for p in OWNED_FILES) for n in names)


def test_the_plot_has_a_panel_per_augmentation_and_a_line_per_curve_with_its_values():
    result = invariance_result()
    (figure,) = report_figures(invariance_report(result))
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["simclr", "flip"]
    for ax, augmentation in zip(panels, ("simclr", "flip"), strict=True):
        curves = [c for c in result.curves if c.variant == augmentation]
        lines = ax.get_lines()
        assert len(lines) == len(curves) == 2
        for line, curve in zip(lines, curves, strict=True):
            np.testing.assert_array_equal(line.get_ydata(), curve.values)
            np.testing.assert_allclose(line.get_xdata(), np.linspace(0, 1, len(curve.layers)))
        assert len(ax.collections) == 2  # a shaded interval per curve
        assert ax.get_xlabel().startswith("relative depth")  # the models' layers differ
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["small", "big"]
