"""``python -m lth.report``: a sweep's (or a single run's) tables and plots, from the jobs' own files only.

``jobs`` (the job directories read back, their overrides and configs), ``tables`` (aggregates over seeds,
CSV, Markdown, provenance), ``plots`` (summary, accuracy, early-stop, analysis and width figures),
``curves`` (each job's training curves), ``overlap`` (the masks' overlap between seeds and init
strategies) and ``cli`` (``report``, ``main``). The top floor: it may import lth.run and the science
(lottery, models, data, analysis) beneath it, never Lightning; nothing in lth imports it.
"""

from lth.report.cli import main, report
from lth.report.curves import curves_figure, read_curves
from lth.report.jobs import Context, context, describe_model, find_jobs, read_config, varying_keys
from lth.report.plots import DPI, PANEL_SIZE, accuracy_figure, early_stop_figure
from lth.report.tables import aggregate

__all__ = [
    "DPI",
    "PANEL_SIZE",
    "Context",
    "accuracy_figure",
    "aggregate",
    "context",
    "curves_figure",
    "describe_model",
    "early_stop_figure",
    "find_jobs",
    "main",
    "read_config",
    "read_curves",
    "report",
    "varying_keys",
]
