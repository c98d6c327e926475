"""Old home of the report writers, kept while callers move to the report model.

``best_matches`` now lives in ``repcompare.report.cka``; CSV and JSON are written by
``repcompare.report.files`` and Markdown by ``repcompare.report.markdown``, from a ``Report``.
"""

from __future__ import annotations

from repcompare.report.cka import best_matches

__all__ = ["best_matches"]
