"""The ``class-fit`` report: every rendered value checked against the hand-built fits."""

import csv
import fnmatch
import json
import math

import numpy as np
import pytest

from repcompare.report.class_fit import OWNED_FILES, PLOTS, class_fit_report, columns
from repcompare.report.files import write_report
from repcompare.report.model import format_value, report_figures
from repcompare.report.terminal import report_table
from repcompare.results.class_fit import MEASURES, TOKEN_MEASURES
from tests.support.render import markdown_rows, terminal_rows, terminal_text
from tests.support.results import class_fit_result


def layer_values(result):
    """(model, layer, {measure: value}, (ci low, ci high)) per layer of every fit."""
    for fit in result.fits:
        for i, layer in enumerate(fit.layers):
            measures = {m: v[i] for m, v in fit.measures.items()}
            yield fit.model, layer, measures, (fit.class_ci[0][i], fit.class_ci[1][i])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = class_fit_result()
    out = tmp_path_factory.mktemp("class_fit")
    return result, out, write_report(class_fit_report(result), out)


def test_the_csv_holds_every_measure_of_every_layer(written):
    result, out, _ = written
    with open(out / "class_fit.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected = list(layer_values(result))
    assert len(rows) == len(expected) == 3
    assert set(MEASURES + TOKEN_MEASURES) < set(rows[0])
    for row, (model, layer, measures, (low, high)) in zip(rows, expected, strict=True):
        assert (row["model"], row["layer"]) == (model, layer)
        for measure, value in measures.items():
            assert row[measure] == ("" if math.isnan(value) else f"{value:.6f}"), measure
        assert row["class_cka_ci_low"] == f"{low:.6f}"
        assert row["class_cka_ci_high"] == f"{high:.6f}"
    assert rows[0]["knn_cls"] == "" and rows[0]["probe_cls"] == ""


def test_the_json_records_hold_null_where_a_token_is_missing(written):
    result, out, _ = written
    document = json.loads((out / "class_fit.json").read_text())
    for record, (_, layer, measures, _) in zip(
        document["records"], layer_values(result), strict=True
    ):
        assert record["layer"] == layer
        for measure, value in measures.items():
            assert record[measure] == (None if math.isnan(value) else value)
    assert document["input_fingerprint"] == result.fingerprint
    assert document["settings"]["tokens"] is True


def test_the_markdown_and_terminal_show_the_token_accuracies(written):
    result, out, _ = written
    text = (out / "class_fit.md").read_text()
    report = class_fit_report(result)
    table = report.tables[0]
    assert table.columns == columns(True)
    header, rows = markdown_rows(text)
    assert header == ["model", "layer", *(columns(True)[m] for m in TOKEN_MEASURES)]
    terminal_header, terminal_cells = terminal_rows(terminal_text(report_table(report)))
    assert terminal_header == header
    assert terminal_cells == rows
    for cells, record, (model, layer, measures, _) in zip(
        rows, table.records, layer_values(result), strict=True
    ):
        assert cells == [format_value(record[k]) for k in table.columns]
        assert cells[:2] == [model, layer]
        for cell, measure in zip(cells[2:], TOKEN_MEASURES, strict=True):
            value = measures[measure]
            if math.isnan(value):
                assert cell == "undefined"
            else:
                assert float(cell) == pytest.approx(value, abs=5e-4)
    assert rows[0][2] == "undefined"
    assert "Token features (`--tokens`)" in text
    assert "Every measure (intra, inter, inter_min too) is in `class_fit.csv`." in text
    for figure in report.figures:
        assert f"]({figure.stem}.png)" in text


def test_write_report_writes_exactly_the_owned_files(written, tmp_path):
    result, out, paths = written
    names = [p.name for p in paths]
    stems = ["class_fit_measures", "class_fit_tokens"]
    expected = ["class_fit.csv", "class_fit.json", "class_fit.md"]
    expected += [f"{stem}{suffix}" for stem in stems for suffix in (".png", ".svg")]
    assert names == expected
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert all(any(fnmatch.fnmatchcase(n, p) for p in OWNED_FILES) for n in names)
    again = result.save(tmp_path)
    assert [p.name for p in again] == names
    assert (tmp_path / "class_fit.csv").read_bytes() == (out / "class_fit.csv").read_bytes()


def test_a_panel_per_measure_and_the_token_panels():
    result = class_fit_result()
    measures, tokens = report_figures(class_fit_report(result))
    assert (measures.get_label(), tokens.get_label()) == ("class_fit_measures", "class_fit_tokens")
    panels = [ax for ax in measures.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == [name for name, _ in PLOTS.values()]
    for ax, measure in zip(panels, PLOTS, strict=True):
        lines = ax.get_lines()
        assert len(lines) == len(result.fits)
        for line, fit in zip(lines, result.fits, strict=True):
            np.testing.assert_array_equal(line.get_ydata(), fit.measures[measure])
        assert len(ax.collections) == (2 if measure == "class_cka" else 0)
    knn, probe = (ax for ax in tokens.axes if ax.get_visible())
    assert (knn.get_title(), probe.get_title()) == (
        "kNN accuracy (cosine)",
        "linear-probe accuracy",
    )
    lines = knn.get_lines()
    assert len(lines) == 6  # 2 models x 3 token features
    np.testing.assert_array_equal(lines[0].get_ydata(), result.fits[0].measures["knn_cls"])
    assert "class token" in tokens.get_suptitle()
