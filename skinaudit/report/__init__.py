"""The audit report: a JSON-safe context, jinja2 templates, one self-contained HTML, a PDF.

:func:`build_context` turns an :class:`~skinaudit.result.AuditResult` into plain data (every
table from the result's typed sections, every figure drawn from ``result.predictions``);
:func:`render_html` feeds it to the templates shipped as the package ``skinaudit.templates``;
:func:`write_report` writes ``report.html`` (figures embedded as ``data:`` URIs),
``report.pdf`` (WeasyPrint, from the same HTML) and the figure PNGs under ``figures/``;
:func:`write_audit` writes a whole audit folder atomically.

Escaping: the jinja2 environment autoescapes every template, so any string that comes from
data (an image id, a dataset name, a model path, a note) is shown, never executed.
``StrictUndefined`` makes a template mistake fail loudly. Number formatting lives in the
filters of :mod:`skinaudit.report.format`. A section whose stage did not run is rendered as
"not available: <reason>", never dropped. The modules: ``format`` (numbers as text),
``tables`` (records as typed cells, figures as data URIs), ``sections`` (one view per
section), ``badges`` (the summary checks), ``order`` (presentation order of a result read
from disk), ``context`` (what the templates show), ``render`` (jinja2, HTML, PDF, files).
"""
from __future__ import annotations

from .badges import ReportRules, summary_badges
from .context import CHECKLIST, build_context, report_date
from .format import fmt_cell, fmt_num, fmt_pct, fmt_threshold
from .render import html_to_pdf, render_html, write_audit, write_audit_into, write_html, write_pdf, write_report

__all__ = ["ReportRules", "CHECKLIST", "build_context", "summary_badges", "render_html", "write_html", "write_pdf",
           "html_to_pdf", "write_report", "write_audit", "write_audit_into", "report_date", "fmt_num", "fmt_pct", "fmt_cell",
           "fmt_threshold"]
