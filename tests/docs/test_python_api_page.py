"""Every snippet of docs/python-api.md runs, in order, in one namespace (like a notebook)."""

import re
from pathlib import Path

import matplotlib.pyplot as plt

PAGE = Path(__file__).parents[2] / "docs" / "python-api.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def test_every_snippet_of_the_python_api_page_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = snippets()
    assert len(found) >= 6
    namespace: dict = {}
    for number, code in enumerate(found):
        exec(compile(code, f"{PAGE.name} snippet {number}", "exec"), namespace)
    assert (tmp_path / "heatmap.png").stat().st_size > 0
    assert (tmp_path / "cka-results" / "cka.json").exists()
    assert namespace["result"].matrix.values.shape == (8, 16)
    plt.close("all")
