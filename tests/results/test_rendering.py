"""Results reach their renderers through the one registry: every result type has one, a
result saves its files in a process that never imported ``repcompare.report`` itself, and
it prints as one short line."""

import subprocess
import sys
from pathlib import Path

import pytest

import repcompare.report  # noqa: F401  (fills the registry)
from repcompare.report.html import NOTEBOOK_ROWS
from repcompare.results.rendering import RENDERERS, Reported
from tests.support.results import cka_result, class_fit_result, invariance_result

ROOT = Path(__file__).parents[2]


def _subclasses(kind: type) -> set[type]:
    direct = set(kind.__subclasses__())
    return direct.union(*(_subclasses(k) for k in direct))


def test_every_result_type_has_a_renderer():
    assert _subclasses(Reported) == set(RENDERERS)


def test_a_result_saves_its_files_without_importing_the_renderers_first(tmp_path):
    code = (
        "import sys\n"
        "from tests.support.results import cka_result\n"
        "result = cka_result()\n"
        "assert 'repcompare.report' not in sys.modules\n"
        "print(' '.join(sorted(p.name for p in result.save(sys.argv[1]))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    names = done.stdout.split()
    assert {"cka.csv", "cka.json", "cka.md", "heatmap.png"} <= set(names)
    assert all((tmp_path / name).stat().st_size > 0 for name in names)


@pytest.mark.parametrize("build", [cka_result, invariance_result, class_fit_result])
def test_a_result_prints_as_one_short_line_and_shows_a_short_table_in_a_notebook(build):
    result = build()
    shown = repr(result)
    assert shown.startswith(f"<{type(result).__name__}: ") and "\n" not in shown
    assert len(shown) < 200 and "array(" not in shown
    html = result._repr_html_()
    assert html.startswith("<p><strong>") and "<table>" in html
    assert html.count("<tr>") <= 1 + NOTEBOOK_ROWS
