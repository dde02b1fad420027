"""Rendering: the jinja2 environment over the templates shipped as ``skinaudit.templates``, the HTML
string, the PDF (WeasyPrint), and the report files of an audit folder."""
from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import ConfigError, MissingDependencyError
from .badges import ReportRules
from .context import build_context
from .format import fmt_cell, fmt_num, fmt_pct, fmt_threshold


_TEMPLATE_PACKAGE = "skinaudit.templates"


_MAIN_TEMPLATE = "report.html.j2"


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader(_TEMPLATE_PACKAGE, "."), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(num=fmt_num, pct=fmt_pct, cell=fmt_cell, thr=fmt_threshold)
    return env




def render_html(result, *, out_dir, rules: ReportRules | None = None, generated_at: str | None = None,
                name_files: bool = True) -> str:
    """The report as one self-contained HTML string (figures embedded as ``data:`` URIs).

    The figure PNGs are also written to ``out_dir/figures``; ``name_files`` shows each
    figure's file name (relative to ``out_dir``) in its caption.
    """
    context = build_context(result, figures_dir=Path(out_dir) / "figures", rules=rules, generated_at=generated_at)
    if not name_files:
        for fig in [*context["figures"].values(),
                    *(f for view in [*context["sections"].values(), *context["other_sections"]]
                      for f in view["figures"])]:
            fig["file"] = None
    return _environment().get_template(_MAIN_TEMPLATE).render(**context)


def write_html(result, path, *, rules: ReportRules | None = None, generated_at: str | None = None) -> Path:
    """Write the self-contained HTML report to ``path`` (figures drawn in a temporary
    folder, embedded, then removed)."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="skinaudit-report-") as tmp:
        html = render_html(result, out_dir=tmp, rules=rules, generated_at=generated_at, name_files=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def _weasyprint():
    try:
        import weasyprint
    except ImportError as exc:  # also OSError-free: a missing system library raises OSError, kept as is
        raise MissingDependencyError("weasyprint", "pdf", "Writing the PDF report") from exc
    return weasyprint


def html_to_pdf(html: str, path) -> Path:
    """Render an HTML string to a PDF file with WeasyPrint (A4, print stylesheet).

    Only ``data:`` URIs are fetched (the report embeds everything), so nothing is read from
    the network or the disk while rendering.
    """
    weasyprint = _weasyprint()
    fetcher_cls = getattr(weasyprint, "URLFetcher", None)
    if fetcher_cls is not None:
        fetcher = fetcher_cls(allowed_protocols=("data",))
    else:  # WeasyPrint < 66
        def fetcher(url, *args, **kwargs):
            if not url.startswith("data:"):
                raise ValueError(f"the report refuses to fetch {url}")
            return weasyprint.default_url_fetcher(url, *args, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weasyprint.HTML(string=html, url_fetcher=fetcher, base_url=None).write_pdf(str(path))
    return path


def write_pdf(result, path, *, rules: ReportRules | None = None, generated_at: str | None = None) -> Path:
    """Write the PDF report to ``path`` (same template as the HTML).

    Raises
    ------
    MissingDependencyError
        When WeasyPrint is not installed (``pip install 'skinaudit[pdf]'``).
    """
    _weasyprint()
    with tempfile.TemporaryDirectory(prefix="skinaudit-report-") as tmp:
        html = render_html(result, out_dir=tmp, rules=rules, generated_at=generated_at, name_files=False)
    return html_to_pdf(html, path)


def write_report(result, out_dir, *, pdf: bool = True, rules: ReportRules | None = None,
                 generated_at: str | None = None) -> dict:
    """Write ``report.html``, ``report.pdf`` (when ``pdf``) and ``figures/*.png`` into
    ``out_dir``.

    ``out_dir`` should be the staging folder of :class:`skinaudit.output_folder.atomic_output_dir`
    so that the report appears atomically with the rest of the audit; this function
    writes plain files into it.

    Returns
    -------
    dict: ``html`` (Path), ``pdf`` (Path or None), ``figures`` (dict name -> Path).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: the output path exists and is not a folder")
    if pdf:
        _weasyprint()  # fail before any work when the extra is missing
    out.mkdir(parents=True, exist_ok=True)
    html = render_html(result, out_dir=out, rules=rules, generated_at=generated_at)
    html_path = out / "report.html"
    html_path.write_text(html, encoding="utf-8")
    pdf_path = html_to_pdf(html, out / "report.pdf") if pdf else None
    figures = {p.stem: p for p in sorted((out / "figures").glob("*.png"))}
    return {"html": html_path, "pdf": pdf_path, "figures": figures}


def write_audit_into(result, folder, *, report: bool = True, pdf: bool = True, rules: ReportRules | None = None,
                     generated_at: str | None = None) -> None:
    """Write an audit's files (:meth:`AuditResult.write_files`) and (``report``) its report into
    the existing ``folder``: the staging folder of :class:`~skinaudit.output_folder.atomic_output_dir`."""
    result.write_files(folder)
    if report:
        write_report(result, folder, pdf=pdf, rules=rules, generated_at=generated_at)


def write_audit(result, out_dir, *, report: bool = True, pdf: bool = True, rules: ReportRules | None = None,
                generated_at: str | None = None, force: bool = False) -> Path:
    """Write an audit into ``out_dir`` atomically: its files (:meth:`AuditResult.write_files`)
    and (``report``) ``report.html`` plus (``pdf``) ``report.pdf``. The folder is replaced as a
    whole, or not at all; a folder holding files skinaudit did not write is refused unless
    ``force`` (see :mod:`skinaudit.output_folder`)."""
    from ..output_folder import atomic_output_dir

    if report and pdf:
        _weasyprint()  # fail before any work when the extra is missing
    with atomic_output_dir(out_dir, force=force) as tmp:
        write_audit_into(result, tmp, report=report, pdf=pdf, rules=rules, generated_at=generated_at)
    return Path(out_dir)
