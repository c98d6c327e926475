"""The ``cka`` report: every rendered value checked against the hand-built result."""

import csv
import fnmatch
import json
import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from repcompare.report.cka import OWNED_FILES, cka_report
from repcompare.report.files import write_report
from repcompare.report.markdown import render_markdown
from repcompare.report.model import format_value, report_figures
from repcompare.report.terminal import report_table
from tests.support.render import markdown_rows, terminal_rows, terminal_text
from tests.support.results import DEAD, NAMES_A, NAMES_B, cka_result


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    result = cka_result()
    out = tmp_path_factory.mktemp("cka")
    return result, out, write_report(cka_report(result), out)


def test_the_csv_holds_every_pair_to_6_decimals_and_undefined_as_empty(written):
    result, out, _ = written
    with open(out / "cka.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["layer_a", "layer_b", "cka", "ci_low", "ci_high", "note"]
    assert [(r["layer_a"], r["layer_b"]) for r in rows] == [
        (a, b) for a in NAMES_A for b in NAMES_B
    ]
    m = result.matrix
    for row in rows:
        i, j = NAMES_A.index(row["layer_a"]), NAMES_B.index(row["layer_b"])
        if row["layer_a"] == DEAD:
            assert (row["cka"], row["ci_low"], row["ci_high"]) == ("", "", "")
            assert row["note"] == "undefined: constant layer"
            continue
        assert row["cka"] == f"{m.values[i, j]:.6f}"
        assert float(row["cka"]) == pytest.approx(m.values[i, j], abs=5e-7)
        assert float(row["ci_low"]) == pytest.approx(result.ci_low[i, j], abs=5e-7)
        assert float(row["ci_high"]) == pytest.approx(result.ci_high[i, j], abs=5e-7)
        assert row["note"] == ""
    assert "nan" not in (out / "cka.csv").read_text().lower()


def test_the_json_numbers_are_the_matrix_and_null_where_undefined(written):
    result, out, _ = written
    document = json.loads((out / "cka.json").read_text())
    for key, values in (
        ("cka", result.matrix.values),
        ("ci_low", result.ci_low),
        ("ci_high", result.ci_high),
    ):
        for i, row in enumerate(document[key]):
            for j, value in enumerate(row):
                if math.isnan(values[i, j]):
                    assert value is None
                else:
                    assert value == values[i, j]
    assert document["side_a"]["layers"] == list(NAMES_A)
    assert document["side_a"]["degenerate"] == [DEAD]
    assert document["side_b"]["provenance"]["model_spec"] == "torchvision:resnet18"
    assert document["settings"]["bootstrap"] == 100
    assert document["best_matches"] == result.best_matches()
    assert "NaN" not in (out / "cka.json").read_text()


def expected_best(result) -> list[tuple[str, str, float]]:
    """(layer of A, most similar layer of B, CKA) per layer, worked out from the matrix."""
    m = result.matrix
    best = []
    for i, layer in enumerate(NAMES_A):
        if np.isnan(m.values[i]).all():
            best.append((layer, None, math.nan))
        else:
            j = int(np.nanargmax(m.values[i]))
            best.append((layer, NAMES_B[j], m.values[i, j]))
    return best


def test_the_markdown_shows_the_best_match_per_layer_and_undefined(written):
    result, out, _ = written
    text = (out / "cka.md").read_text()
    header, rows = markdown_rows(text)
    assert header == [
        "layer of timm:resnet18",
        "most similar layer of torchvision:resnet18",
        "CKA",
        "same layer CKA",
    ]
    table = cka_report(result).tables[0]
    assert len(rows) == len(table.records) == len(NAMES_A)
    for cells, record, (layer, best, value) in zip(
        rows, table.records, expected_best(result), strict=True
    ):
        assert cells == [format_value(record[k]) for k in table.columns]
        assert cells[0] == layer
        i = NAMES_A.index(layer)
        same = result.matrix.values[i, NAMES_B.index(layer)]
        if best is None:
            assert cells[1:] == ["undefined", "undefined", "undefined"]
        else:
            assert cells[1] == best
            assert float(cells[2]) == pytest.approx(value, abs=5e-4)
            assert float(cells[3]) == pytest.approx(same, abs=5e-4)
    assert "minibatch estimator, linear kernel, 256 examples, batch size 64" in text
    assert "100 bootstrap resamples" in text
    assert "Every pair is in `cka.csv`" in text
    for stem in ("heatmap", "heatmap_blocks", "heatmap_residual"):
        assert f"]({stem}.png)" in text
    assert text.startswith("# CKA: timm:resnet18 vs torchvision:resnet18\n")


def test_the_terminal_table_holds_the_best_match_per_layer(written):
    result, _, _ = written
    text = terminal_text(report_table(cka_report(result)))
    assert text.startswith("CKA timm:resnet18 (rows) vs torchvision:resnet18: minibatch, linear")
    header, rows = terminal_rows(text)
    assert header[:3] == [
        "layer of timm:resnet18",
        "most similar layer of torchvision:resnet18",
        "CKA",
    ]
    assert len(rows) == len(NAMES_A)
    for cells, (layer, best, value) in zip(rows, expected_best(result), strict=True):
        assert cells[0] == layer
        if best is None:
            assert cells[1:3] == ["undefined", "undefined"]
        else:
            assert cells[1] == best and cells[2] == f"{value:.3f}"
    dead = NAMES_A.index(DEAD)
    cells = [list(column.cells)[dead] for column in report_table(cka_report(result)).columns]
    assert [c.style for c in cells[1:3]] == ["dim", "dim"]  # undefined reads dim


def test_the_same_layer_column_is_blank_without_a_namesake_and_absent_without_any():
    result = cka_result(bootstrap=False, paper=False)
    names_b = ("x", "layer2.0", "y", "z", "w")
    result.matrix = type(result.matrix)(NAMES_A, names_b, result.matrix.values, (DEAD,), (), 8)
    _, rows = terminal_rows(terminal_text(report_table(cka_report(result))))
    assert [r[3] for r in rows] == ["", "", f"{result.matrix.values[2, 1]:.3f}", ""]
    result.matrix = type(result.matrix)(
        NAMES_A, ("p", "q", "r", "s", "t"), result.matrix.values, (DEAD,), (), 8
    )
    header, rows = terminal_rows(terminal_text(report_table(cka_report(result))))
    assert len(header) == 3 and all(len(r) == 3 for r in rows)


def test_write_report_writes_exactly_the_owned_files(written):
    result, out, paths = written
    names = [p.name for p in paths]
    assert names == cka_report(result).file_names()
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert names[:3] == ["cka.csv", "cka.json", "cka.md"]
    assert {n for n in names if n.endswith(".png")} == {
        "heatmap.png",
        "heatmap_blocks.png",
        "heatmap_residual.png",
    }
    for name in names:
        assert any(fnmatch.fnmatchcase(name, p) for p in OWNED_FILES), name
    for pattern in OWNED_FILES:
        assert any(fnmatch.fnmatchcase(n, pattern) for n in names), pattern
    figure = report_figures(cka_report(result))[0]
    with Image.open(out / "heatmap.png") as image:
        assert image.size == tuple(round(150 * s) for s in figure.get_size_inches())
    assert (out / "heatmap.svg").read_text().lstrip().startswith("<?xml")


def test_the_result_saves_the_files_of_its_report(written, tmp_path):
    result, out, paths = written
    again = result.save(tmp_path)
    assert [p.name for p in again] == [p.name for p in paths]
    for name in ("cka.csv", "cka.json", "cka.md"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    assert (tmp_path / "cka.md").read_text() == render_markdown(cka_report(result))


def image_values(figure: Figure) -> np.ndarray:
    return np.ma.filled(figure.axes[0].images[0].get_array().astype(float), np.nan)


def test_the_heatmaps_show_the_matrix_and_the_paper_split():
    result = cka_result()
    figures = report_figures(cka_report(result))
    assert [f.get_label() for f in figures] == ["heatmap", "heatmap_blocks", "heatmap_residual"]
    assert all(isinstance(f, Figure) for f in figures)
    whole, blocks, residual = figures
    assert len(whole.axes) == 2  # the heatmap and its colour bar
    np.testing.assert_array_equal(image_values(whole), result.matrix.values)
    assert [t.get_text() for t in whole.axes[0].get_yticklabels()] == list(NAMES_A)
    assert [t.get_text() for t in whole.axes[0].get_xticklabels()] == list(NAMES_B)
    assert "grey: undefined" in whole.axes[0].get_xlabel()
    np.testing.assert_array_equal(
        image_values(blocks), result.matrix.values[np.ix_([0, 2], [1, 3])]
    )
    np.testing.assert_array_equal(
        image_values(residual), result.matrix.values[np.ix_([1, 3], [2, 4])]
    )
    assert "block outputs" in blocks.axes[0].get_title()


def test_without_the_paper_roles_there_is_one_heatmap():
    report = cka_report(cka_result(bootstrap=False, paper=False))
    assert [f.stem for f in report.figures] == ["heatmap"]
    assert "bootstrap" not in report.summary[0]
    assert all(r["ci_low"] is None for r in report.records)


def test_figures_are_not_held_by_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    report_figures(cka_report(cka_result()))
    assert plt.get_fignums() == before
