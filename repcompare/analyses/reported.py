"""What every analysis result offers beyond its numbers, through its report model
(``repcompare.report.model.Report``): files, figures and plain rows."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from repcompare.report.model import Report


class Reported:
    """``save``, ``plot``, ``records`` and ``to_dict`` of a result whose ``report()`` builds
    its report model."""

    def report(self) -> Report:
        """The result's report model: records, tables, figures, summary and JSON document."""
        raise NotImplementedError

    def save(self, out: str | Path) -> list[Path]:
        """Write into folder ``out`` exactly the files the command line writes; their paths."""
        from repcompare.report.files import write_report

        return write_report(self.report(), Path(out))

    def plot(self) -> list[Figure]:
        """The result's pictures as matplotlib Figures (not shown, not saved)."""
        from repcompare.report.model import report_figures

        return report_figures(self.report())

    def records(self) -> list[dict]:
        """The rows of the result's CSV file as dicts (NaN where a value is undefined), e.g.
        for ``pandas.DataFrame(result.records())``."""
        return self.report().records

    def to_dict(self) -> dict:
        """The result's JSON document (what the command writes as JSON; null: undefined)."""
        return self.report().document
