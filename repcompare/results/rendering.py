"""What every result offers beyond its numbers, through the one registry of renderers.

A result is plain data; ``repcompare.report`` registers, for each result type, how its
report model is built, written and drawn (``RENDERERS``), and is loaded on first use.
``Reported.report``/``save``/``plot`` look them up here, so ``results/`` never imports
``report/`` and ``report/`` imports ``results/`` with typed parameters.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from repcompare.report.model import Report


@dataclass(frozen=True)
class Renderer:
    """How one result type is shown: ``build`` makes its report model from the result,
    ``write`` writes a report model's files into a folder, ``figures`` draws its pictures,
    ``html`` gives a short HTML view of it (a notebook's)."""

    build: Callable[[Any], Any]
    write: Callable[[Any, Path], list[Path]]
    figures: Callable[[Any], list]
    html: Callable[[Any], str]


# result type -> its Renderer; filled by the package named here when it is imported
RENDERERS: dict[type, Renderer] = {}
RENDERERS_PACKAGE = "repcompare.report"


def renderer(result: object) -> Renderer:
    """The registered renderer of ``result``'s type (the renderers' package is loaded on
    first use: a late binding, so that this package never imports it)."""
    if not RENDERERS:
        importlib.import_module(RENDERERS_PACKAGE)
    return RENDERERS[type(result)]


class Reported:
    """``report``, ``save`` and ``plot`` of a result, through ``RENDERERS``; ``records`` and
    ``to_dict`` come from the result's own ``records()`` and ``to_document()``."""

    def report(self) -> Report:
        """The result's report model: records, tables, figures, summary and JSON document."""
        return renderer(self).build(self)

    def save(self, out: str | Path) -> list[Path]:
        """Write into folder ``out`` exactly the files the command line writes; their paths."""
        return renderer(self).write(self.report(), Path(out))

    def plot(self) -> list[Figure]:
        """The result's pictures as matplotlib Figures (not shown, not saved)."""
        return renderer(self).figures(self.report())

    def __repr__(self) -> str:
        """The result's type and its report's title (the numbers: ``records()``)."""
        return f"<{type(self).__name__}: {self.report().title}>"

    def _repr_html_(self) -> str:
        """A notebook's view: the title and the first rows of the main table (or a study's
        summary)."""
        return renderer(self).html(self.report())

    def records(self) -> list[dict]:
        """The rows of the result's CSV file as dicts (NaN where a value is undefined), e.g.
        for ``pandas.DataFrame(result.records())``."""
        raise NotImplementedError

    def to_document(self) -> dict:
        """The result's JSON document (what the command writes as JSON; null: undefined)."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """The result's JSON document (``to_document``)."""
        return self.to_document()
