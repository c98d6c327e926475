"""Results reach their renderers through the one registry: every result type has one, and a
result saves its files in a process that never imported ``repcompare.report`` itself."""

import subprocess
import sys
from pathlib import Path

import repcompare.report  # noqa: F401  (fills the registry)
from repcompare.results.rendering import RENDERERS, Reported

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
