"""The layers of ``docs/architecture.md`` hold: every import of the package goes to a part the
table there allows, and no module imports itself back through others (no cycle).

Imports under ``if TYPE_CHECKING:`` are not executed and are left out; so are imports inside
functions of ``repcompare/__init__.py`` (the facade that loads the API on first use).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "repcompare"
TABLE_ROW = re.compile(r"^\| `(?P<part>[\w.]+)` \| (?P<allowed>[^|]*) \|", re.M)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """The part of the code a module belongs to: ``sides`` for ``repcompare.sides.plan``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "repcompare"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            hidden |= {id(n) for n in ast.walk(node)}
    return hidden


def _imports(path: Path) -> set[str]:
    """The ``repcompare`` modules ``path`` imports when it runs."""
    tree = ast.parse(path.read_text())
    hidden = _type_checking_nodes(tree)
    if path == PACKAGE / "__init__.py":
        hidden |= {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) for n in ast.walk(f)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        module = getattr(node, "module", None) or ""
        if isinstance(node, ast.ImportFrom) and module.startswith("repcompare"):
            if module == "repcompare":
                found |= {f"repcompare.{alias.name}" for alias in node.names}
            else:
                found.add(module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("repcompare")}
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _allowed() -> dict[str, set[str]]:
    """The table of ``docs/architecture.md``: each part and the parts it may import."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = {m["part"]: m["allowed"] for m in TABLE_ROW.finditer(text)}
    return {part: set(re.findall(r"`([\w.]+)`", allowed)) for part, allowed in rows.items()}


def test_every_part_of_the_package_is_in_the_table():
    parts = {_part(module) for module in _graph()}
    assert parts == set(_allowed())


def test_every_import_goes_where_the_table_allows():
    allowed = _allowed()
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _part(target) != _part(module) and _part(target) not in allowed[_part(module)]
    )
    assert not wrong, "\n".join(wrong)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (modules in order), or None."""
    state: dict[str, int] = defaultdict(int)  # 0 unseen, 1 on the path, 2 done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module], found = 1, None
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state[target] == 1:
                return [*path[path.index(target) :], target]
            if state[target] == 0 and (found := visit(target)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if state[module] == 0 and (found := visit(module)):
            return found
    return None


def test_no_module_imports_itself_back():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle(graph, expected):
    assert _cycle(graph) == expected


def test_the_checks_see_an_upward_import(tmp_path):
    """The parser finds an import from a lower part to a higher one (``results`` -> ``report``)."""
    module = tmp_path / "module.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nfrom repcompare.report.model import Report\n"
        "if TYPE_CHECKING:\n    from repcompare.api import cka\n"
    )
    assert _imports(module) == {"repcompare.report.model"}
    assert "report" not in _allowed()["results"]
