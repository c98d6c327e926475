"""Turning results into terminal tables, files and pictures.

Each analysis result becomes one ``Report`` (``model.py``; built by ``cka_report``,
``invariance_report``, ``class_fit_report`` and ``atlas_report``), which the renderers
read: ``files.py`` (CSV, JSON, PNG/SVG and ``write_report``), ``markdown.py`` and
``terminal.py``; a study becomes a ``StudyReport`` (``study.py``) with its own files
(``study_files.py``). Importing this package registers every result type's renderer
(``repcompare.results.rendering.RENDERERS``): this table is the one place that does.
"""

from repcompare.report.atlas import atlas_report
from repcompare.report.cka import cka_report
from repcompare.report.class_fit import class_fit_report
from repcompare.report.files import write_report
from repcompare.report.html import report_html, study_html
from repcompare.report.invariance import invariance_report
from repcompare.report.model import report_figures
from repcompare.report.study import study_figures, study_report
from repcompare.report.study_files import write_study
from repcompare.results.atlas import AtlasResult
from repcompare.results.cka import CKAResult
from repcompare.results.class_fit import ClassFitResult
from repcompare.results.invariance import InvarianceResult
from repcompare.results.rendering import RENDERERS, Renderer
from repcompare.results.study import StudyResult

RENDERERS.update(
    {
        CKAResult: Renderer(cka_report, write_report, report_figures, report_html),
        InvarianceResult: Renderer(invariance_report, write_report, report_figures, report_html),
        ClassFitResult: Renderer(class_fit_report, write_report, report_figures, report_html),
        AtlasResult: Renderer(atlas_report, write_report, report_figures, report_html),
        StudyResult: Renderer(study_report, write_study, study_figures, study_html),
    }
)
