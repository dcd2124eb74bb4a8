"""The HTML report: results files → one self-contained page (tables, charts, worst-first image grid).

Needs the ``report`` extra (``pip install 'clipgauge[report]'``: Jinja2 and matplotlib).
"""

from .build import ReportOptions, ReportResult, build_report, render_report
from .inputs import ReportRun, load_runs

__all__ = ["ReportOptions", "ReportResult", "ReportRun", "build_report", "load_runs", "render_report"]
