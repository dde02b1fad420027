"""The audit report: a JSON-safe context, jinja2 templates, one self-contained HTML, a PDF.

:func:`build_context` turns an :class:`~skinaudit.audit.AuditResult` into plain data (every
table from the result's sections, every figure drawn from ``result.predictions``);
:func:`render_html` feeds it to the templates shipped as the package
``skinaudit.templates`` (found with :mod:`importlib.resources`, never a path relative to
the working directory); :func:`write_report` writes ``report.html`` (figures embedded as
``data:`` URIs, so the HTML is one file), ``report.pdf`` (WeasyPrint, from the same HTML)
and the figure PNGs under ``figures/``.

Escaping: the jinja2 environment autoescapes every template, so any string that comes
from data (an image id, a dataset name, a model path, a note) is shown, never executed.
``StrictUndefined`` makes a template mistake fail loudly instead of printing nothing.
Number formatting lives in the filters :func:`fmt_num`, :func:`fmt_pct` and
:func:`fmt_cell`; the context keeps raw numbers (NaN and inf become ``None``, shown
"n/a").

A section whose input is absent (no model, so no Grad-CAM) is rendered as
"not available: <reason>", never dropped.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import importlib.metadata
import logging
import math
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ._jsonsafe import json_safe as _json_safe
from .errors import ConfigError, DataError, MissingDependencyError

__all__ = ["ReportRules", "CHECKLIST", "build_context", "summary_badges", "render_html", "write_html", "write_pdf",
           "html_to_pdf", "write_report", "fmt_num", "fmt_pct", "fmt_cell", "fmt_threshold"]

log = logging.getLogger(__name__)

_TEMPLATE_PACKAGE = "skinaudit.templates"
_MAIN_TEMPLATE = "report.html.j2"
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
#: Packages whose versions the cover and the appendix list (distribution names).
VERSION_PACKAGES = ("skinaudit", "numpy", "pandas", "scipy", "scikit-learn", "scikit-image", "statsmodels",
                    "fairlearn", "matplotlib", "jinja2", "weasyprint", "torch", "torchvision", "grad-cam",
                    "captum", "pillow")


@dataclass(frozen=True)
class ReportRules:
    """Thresholds of the summary badges (PASS / WARN / FAIL / not run).

    min_recall : overall recall at the audit threshold below which the recall badge FAILs.
        None (default): the audit's own recall target ``config.gamma`` (the target of the
        threshold search) when the configuration has one, else 0.85.
    min_group_positives : malignant cases a skin-tone group needs; fewer gives WARN
        ("too small to compare"). Under 30 positives a recall's 95% Wilson interval is
        about +-0.15 wide or more.
    max_skipped_share : share of images that could not be scored above which the
        coverage badge WARNs.
    min_pointing_game : pointing-game hit rate (share of explained images whose CAM maximum
        falls in the lesion) below which an ITA group's localisation WARNs; 0.5 means the
        explanation misses the lesion more often than it finds it.
    """

    min_recall: float | None = None
    min_group_positives: int = 30
    max_skipped_share: float = 0.05
    min_pointing_game: float = 0.5

    def __post_init__(self):
        if self.min_recall is not None and not 0.0 <= float(self.min_recall) <= 1.0:
            raise ConfigError(f"the 'min_recall' parameter must be in [0, 1]; got {self.min_recall}")
        if int(self.min_group_positives) < 1:
            raise ConfigError(f"the 'min_group_positives' parameter must be at least 1; got {self.min_group_positives}")
        if not 0.0 <= float(self.max_skipped_share) <= 1.0:
            raise ConfigError(f"the 'max_skipped_share' parameter must be in [0, 1]; got {self.max_skipped_share}")
        if not 0.0 <= float(self.min_pointing_game) <= 1.0:
            raise ConfigError(f"the 'min_pointing_game' parameter must be in [0, 1]; got {self.min_pointing_game}")


#: Where each report section answers reporting guidelines: Model Cards (Mitchell et al.
#: 2019, section names), TRIPOD+AI (Collins et al., BMJ 2024) and CLAIM 2024 (Tejani et
#: al., Radiology: AI 2024). Guideline items are named by topic; TRIPOD+AI's numbers are
#: given where they are unambiguous. Rows: (section id, title, model card, TRIPOD+AI, CLAIM).
CHECKLIST = (
    ("cover", "Cover: model, data, versions",
     "Model details", "Model specification; open science (code, versions)",
     "Software and model description; data sources"),
    ("use", "Intended use and limits",
     "Intended use; ethical considerations; caveats and recommendations",
     "3b target population and intended users; limitations", "Intended use and clinical role; limitations"),
    ("dataset", "Dataset composition",
     "Evaluation data; factors", "Data sources and participants; 3c health inequalities (groups represented)",
     "Data sources; eligibility; demographic characteristics (ITA group)"),
    ("overall", "Overall performance",
     "Metrics (with the decision threshold); quantitative analyses",
     "Model performance with its decision threshold", "Metrics of model performance; performance on the test data"),
    ("fairness", "Fairness across ITA groups",
     "Quantitative analyses disaggregated by factor, with intervals",
     "3c health inequalities; fairness approaches; performance in key subgroups",
     "Statistical measures of significance and uncertainty; subgroup performance"),
    ("skintone", "ITA estimator sensitivity",
     "Factors (how the skin-tone factor was measured); caveats",
     "Predictor (group) definition and measurement; sensitivity analysis",
     "Robustness or sensitivity analysis; definitions of data elements"),
    ("recalibration", "Threshold recalibration",
     "Metrics (decision thresholds); quantitative analyses",
     "Model updating / recalibration; fairness approaches", "Model output and thresholds; robustness analysis"),
    ("explanations", "Explanations and localisation",
     "Quantitative analyses; caveats", "Interpretability of the model",
     "Methods for explainability or interpretability"),
    ("failure_modes", "Failure modes of false negatives",
     "Caveats and recommendations", "Limitations; usability in context",
     "Failure analysis of incorrectly classified cases"),
    ("skipped", "Skipped and flagged images",
     "Evaluation data (exclusions)", "Missing data and data preparation", "Missing data; data preprocessing"),
    ("appendix", "Reproducibility appendix",
     "Model details (version, hashes)", "Open science: code, software and data availability",
     "Software libraries and versions; availability of code and data"),
)

# Sections of result.sections with their own chapter; anything else lands in "Other results".
_KNOWN_SECTIONS = ("overall", "groups", "fairness", "skintone", "recalibration", "explanations",
                   "localisation", "failure_modes")
_SCALAR = (str, int, float, bool, type(None))


# -- formatting filters (the only place numbers become text) ------------------------------

def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_num(value, digits: int = 4) -> str:
    """A number as text: integers with thousands separators ("1,512"), reals with
    ``digits`` decimals ("0.8889"), booleans "yes"/"no", missing (None, NaN) "n/a"."""
    if _is_missing(value):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{int(digits)}f}"
    return str(value)


def fmt_pct(value, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage ("31.4%"); missing is "n/a"."""
    if _is_missing(value) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{100.0 * value:.{int(digits)}f}%"


def fmt_threshold(value) -> str:
    """A threshold with as many decimals as it has (0.5 -> "0.5", 0.375 -> "0.375")."""
    if _is_missing(value) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{float(value):.6g}"


def fmt_cell(value, kind: str = "auto") -> str:
    """A table cell. ``kind``: "pct" a share in [0, 1] as a percentage, "percent" a value
    already in percent, "thr" a threshold, "p" a p-value, "est_ci" ``[estimate, low,
    high]`` as "0.8000 [0.7000, 0.9000]", "change" ``[before, after]`` as "3 -> 1";
    "auto" picks by type. A pair of numbers is an interval "[lo, hi]"; other lists
    are joined with ", "; a dict becomes "key: value; ..."."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "pct":
        return fmt_pct(value)
    if kind == "percent" and number:
        return f"{value:.1f}%"
    if kind == "thr" and number:
        return fmt_threshold(value)
    if kind == "thr" and isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ", ".join(fmt_threshold(v) for v in value) if value else "none"
    if kind == "thr" and isinstance(value, dict):
        # per-group thresholds; a randomised (fairlearn) group lists each threshold it mixes
        parts = []
        for k, v in value.items():
            if isinstance(v, dict):
                leaves = [x for path, x in _walk(v) if path and path[-1] == "threshold" and not _is_missing(x)]
                parts.append(f"{k}: {' or '.join(fmt_threshold(x) for x in leaves) or 'n/a'}")
            else:
                parts.append(f"{k}: {fmt_cell(v, 'thr')}")
        return "; ".join(parts)
    if kind == "change" and isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{fmt_cell(value[0])}\u00a0\u2192\u00a0{fmt_cell(value[1])}"
    if kind == "p" and number:
        return "< 0.0001" if value < 1e-4 else f"{value:.4f}"
    if kind == "est_ci" and isinstance(value, (list, tuple)) and len(value) == 3:
        return f"{fmt_num(value[0])} {fmt_cell(list(value[1:]))}"
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None
                                   for v in value):
            ints = all(isinstance(v, int) for v in value)  # a count interval stays in counts
            lo, hi = (v if v is None or ints else float(v) for v in value)
            return f"[{fmt_num(lo)},\u00a0{fmt_num(hi)}]"
        return ", ".join(fmt_cell(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt_cell(v)}" for k, v in value.items())
    return fmt_num(value)


# -- templates ------------------------------------------------------------------------------

def _load_template(name: str):
    from importlib import resources

    if "/" in name or "\\" in name or name.startswith("."):
        raise ConfigError(f"template names are plain file names inside {_TEMPLATE_PACKAGE}; got {name!r}")
    res = resources.files(_TEMPLATE_PACKAGE).joinpath(name)
    if not res.is_file():
        return None
    return res.read_text(encoding="utf-8")


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FunctionLoader(_load_template), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters.update(num=fmt_num, pct=fmt_pct, cell=fmt_cell, thr=fmt_threshold)
    return env


# -- context building ---------------------------------------------------------------------

def _label(key) -> str:
    return str(key).replace("_", " ")


_COUNT_NAMES = {"n", "n_pos", "n_neg", "tp", "fn", "tn", "fp", "count", "fn_before", "fn_after", "fp_before",
                "fp_after", "delta_fn", "delta_fp"}
_LOW_SUFFIXES = (("_lo", "_hi"), ("_low", "_high"))


def _column_kind(key: str) -> str:
    k = str(key).lower()
    if "share" in k or k.endswith("pct") or k.startswith("pct"):
        return "pct" if "change" not in k else "percent"
    if k == "percent" or k.endswith("_percent") or k.endswith("change pct"):
        return "percent"
    if "threshold" in k or "cut" in k:
        return "thr"
    if k.startswith("p_") or k in ("p value", "p adjusted", "p permutation"):
        return "p"
    return "auto"


def _merge_intervals(columns: list, records: list) -> tuple[list, list]:
    """Merge ``X_lo``/``X_hi`` (or ``_low``/``_high``) column pairs: into ``X`` as
    ``[estimate, low, high]`` when ``X`` is a column, else into a new interval column ``X``
    (``[low, high]``) at the place of ``X_lo``."""
    merged, cols, recs = {}, list(columns), [dict(r) for r in records]
    for c in list(cols):
        for lo_s, hi_s in _LOW_SUFFIXES:
            if str(c).endswith(lo_s) and f"{str(c)[:-len(lo_s)]}{hi_s}" in cols:
                merged[str(c)[:-len(lo_s)]] = (c, f"{str(c)[:-len(lo_s)]}{hi_s}")
    for base, (lo, hi) in merged.items():
        if base in cols:
            for r in recs:
                est = r.get(base)
                if isinstance(est, (int, float)) and not isinstance(est, bool) or est is None:
                    r[base] = {"_est_ci": [est, r.get(lo), r.get(hi)]}
            cols = [c for c in cols if c not in (lo, hi)]
        else:
            name = base or "interval"
            for r in recs:
                r[name] = [r.get(lo), r.get(hi)]
            cols = [name if c == lo else c for c in cols if c != hi]
    return cols, recs


def _intify(value):
    """Integral floats of a count (and of its interval or before/after pair) as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_intify(v) for v in value]
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("_est_ci", "_change"):
        return {k: _intify(v) for k, v in value.items()}
    return value


def _cell(value, kind: str) -> dict:
    """``{v: raw value, k: format kind, n: right-align (a number, or numbers)}``."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("_est_ci", "_change"):
        key = next(iter(value))
        return {"v": _json_safe(value[key]), "k": key[1:], "n": True}
    numeric = isinstance(value, (int, float)) or (
        isinstance(value, list) and any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    return {"v": _json_safe(value), "k": kind, "n": bool(numeric)}


def _table(caption: str, records: list, *, columns=None, source: str = "", labels=None) -> dict:
    """A renderable table: ``caption``, ``columns`` [{key, label, kind}], ``rows`` (lists
    of cells ``{v: raw JSON value, k: format kind}``), ``source`` (where the numbers come
    from). Interval column pairs are merged (see :func:`_merge_intervals`); in a row whose
    ``metric`` or ``item`` is a count (FN, n ...), integral floats are shown as integers."""
    records = [r if isinstance(r, dict) else {"value": r} for r in records]
    if columns is None:
        columns = []
        for r in records:
            for k in r:
                if k not in columns:
                    columns.append(k)
    columns, records = _merge_intervals([str(c) for c in columns], records)
    labels = labels or {}
    cols = [{"key": k, "label": labels.get(k, _label(k)), "kind": _column_kind(k)} for k in columns]
    rows = []
    for r in records:
        row_name = str(r.get("item") or r.get("metric") or "")
        row_kind = _column_kind(row_name)
        is_count = row_name.replace(" ", "_") in _COUNT_NAMES
        cells = []
        for c in cols:
            v = r.get(c["key"])
            if is_count or c["key"] in _COUNT_NAMES:
                v = _intify(v)
            kind = c["kind"] if c["kind"] != "auto" or c["key"] != "value" else row_kind
            cells.append(_cell(v, kind))
        rows.append(cells)
    for j in range(len(cols)):  # a missing value aligns with the rest of its column
        numeric = any(row[j]["n"] for row in rows if row[j]["v"] is not None)
        for row in rows:
            if row[j]["v"] is None:
                row[j]["n"] = numeric
    return {"kind": "table", "caption": caption, "columns": cols, "rows": rows, "source": source,
            "wide": len(cols) > 7}


def _kv_table(caption: str, mapping: dict, *, source: str = "") -> dict:
    return _table(caption, [{"item": _label(k), "value": v} for k, v in mapping.items()],
                  columns=["item", "value"], source=source)


def _is_flat(value) -> bool:
    """A dict whose values are scalars or lists of scalars."""
    return isinstance(value, dict) and all(
        isinstance(x, _SCALAR) or (isinstance(x, list) and all(isinstance(y, _SCALAR) for y in x))
        for x in value.values())


def _flatten(record: dict) -> dict:
    """One level of nested dicts becomes dotted column names (``ci.recall``)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict) and v:
            out.update({f"{k}.{k2}": v2 for k2, v2 in v.items()})
        else:
            out[k] = v
    return out


def _is_records(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _generic_parts(name: str, value, *, source: str, depth: int = 0, caption: str | None = None) -> list:
    """Render any JSON value as tables.

    Records (a list of dicts) -> one table. A dict -> its scalars in an item/value table;
    its flat-dict values that share one key set -> one table with a row per key (e.g.
    ``{"light": {"n": .., "recall": ..}, "dark": {...}}``); other flat dicts -> their own
    item/value table; a nested ``tables`` dict -> one table per name; anything deeper
    recurses (to depth 3; beyond, the value is shown as text)."""
    caption = caption or _label(name)
    if _is_records(value):
        return [_table(caption, [_flatten(r) for r in value], source=source)]
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if isinstance(v, _SCALAR) or (
            isinstance(v, list) and all(isinstance(x, _SCALAR) for x in v))}
        flat = {k: v for k, v in value.items() if k not in scalars and isinstance(v, dict) and v and _is_flat(v)}
        parts = [_kv_table(caption, scalars, source=source)] if scalars else []
        if len(flat) >= 2 and len({tuple(v) for v in flat.values()}) == 1:
            parts.append(_table(caption if not scalars else f"{caption}: by name",
                                [{"name": k, **v} for k, v in flat.items()], source=source))
        else:
            parts.extend(_kv_table(f"{caption}: {_label(k)}" if depth or scalars else _label(k), v,
                                   source=f"{source}.{k}") for k, v in flat.items())
        for k, v in value.items():
            if k in scalars or k in flat:
                continue
            if k == "tables" and isinstance(v, dict):
                for tname, records in v.items():
                    parts.extend(_generic_parts(tname, records, source=f"{source}.tables.{tname}",
                                                caption=_TABLE_CAPTIONS.get(tname, _label(tname))))
            elif depth >= 3:
                parts.append(_kv_table(f"{caption}: {_label(k)}", {"value": str(v)}, source=source))
            else:
                parts.extend(_generic_parts(f"{name} / {k}", v, source=f"{source}.{k}", depth=depth + 1))
        return parts
    if isinstance(value, list):
        return [_table(caption, [{"value": v} for v in value], columns=["value"], source=source)] if value else []
    return [_kv_table(caption, {name: value}, source=source)]


def _read_figure(path) -> tuple[str | None, str | None]:
    """(data URI, None) for a PNG or JPEG file, or (None, reason)."""
    p = Path(path)
    if not p.is_file():
        return None, f"figure file {p.name} not found"
    return _data_uri(p.read_bytes(), p.name)


def _data_uri(data: bytes, name: str) -> tuple[str | None, str | None]:
    if data.startswith(_PNG):
        mime = "image/png"
    elif data.startswith(_JPEG):
        mime = "image/jpeg"
    else:
        return None, f"figure file {name} is not a PNG or JPEG image"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", None


def _figure(name: str, path, *, caption: str, base: Path, blobs: dict | None = None) -> dict:
    """A figure to embed. A relative path whose file stem names an entry of ``blobs``
    (``AuditResult.figures``: name -> PNG bytes) is taken from memory; otherwise the file is
    read (relative paths from ``base``, the output folder)."""
    p = Path(path)
    blob = (blobs or {}).get(p.stem) if not p.is_absolute() else None
    if isinstance(blob, (bytes, bytearray)):
        src, reason = _data_uri(bytes(blob), p.name)
        shown = str(p)
    else:
        if not p.is_absolute():
            p = base / p
        src, reason = _read_figure(p)
        try:
            shown = str(p.relative_to(base))
        except ValueError:
            shown = p.name
    return {"kind": "figure", "name": name, "caption": caption, "file": shown, "src": src, "reason": reason}


_TABLE_CAPTIONS = {
    "table7": "Images per ITA group (layout of the paper's Table 7)",
    "table8": "Metrics per ITA group (layout of the paper's Table 8): gap = max - min over the groups; "
              "significant paper rule = the paper's fixed-gap heuristic, not a statistical test",
    "table6": "False negatives per failure mode (layout of the paper's Table 6)",
}
#: Interval shown per metric in the per-group fairness table (as computed by skinaudit.fairness).
_GROUP_INTERVALS = (("auc", "delong"), ("recall", "wilson"), ("precision", "wilson"), ("f1", "bootstrap"),
                    ("specificity", "wilson"), ("fnr", "wilson"))


def _interval(entry) -> list:
    if isinstance(entry, dict):
        return [entry.get("low"), entry.get("high")]
    if isinstance(entry, list) and len(entry) == 2:
        return entry
    return [None, None]


def _fairness_parts(sec: dict, source: str, result=None):
    """Curated view of :func:`skinaudit.fairness.fairness_report`'s section: settings, the
    per-group table with intervals, the tests with verdicts, max - min gaps and the paper's
    heuristic. Returns (parts, keys used) or None when the layout is not that one."""
    groups, tests = sec.get("groups"), sec.get("tests")
    if not (isinstance(groups, dict) and groups and all(isinstance(g, dict) for g in groups.values())
            and _is_records(tests)):
        return None
    settings = ("threshold", "alpha", "n_boot", "n_perm", "random_state", "reference", "min_positives",
                "max_ci_width", "power", "primary")
    parts = [_kv_table("Statistical settings", {k: sec[k] for k in settings if k in sec}, source=source)]
    rows = []
    for name, g in groups.items():
        ci = g.get("ci") or {}
        row = {"ITA group": name, "n": g.get("n"), "malignant": g.get("n_pos")}
        for met, method in _GROUP_INTERVALS:
            row[met] = {"_est_ci": [g.get(met), *_interval((ci.get(met) or {}).get(method))]}
        row.update(fn=g.get("fn"), fp=g.get("fp"))
        undefined = g.get("undefined") or {}
        if undefined:
            row["undefined"] = "; ".join(f"{k}: {v}" for k, v in undefined.items())
        rows.append(row)
    parts.append(_table("Metrics per ITA group with 1 - alpha intervals (AUC: DeLong; recall, precision, "
                        "specificity, FNR: Wilson; F1: stratified bootstrap percentile)", rows,
                        source=f"{source}.groups"))
    keep = ("metric", "group", "difference", "ci_low", "ci_high", "p_value", "p_adjusted", "verdict", "reason",
            "mdd")
    refs = sorted({str(t.get("reference")) for t in tests if t.get("reference") is not None})
    test_rows = []
    for t in tests:
        row = {k: t.get(k) for k in keep if k in t}
        row["method"] = " / ".join(_label(t[k]) for k in ("test", "ci_method", "correction") if t.get(k))
        test_rows.append(row)
    parts.append(_table(f"Tests of each ITA group against the reference ({', '.join(refs) or 'n/a'}): verdict "
                        "'significant' only when the adjusted p < alpha and the interval excludes 0; mdd: the "
                        "smallest difference detectable at the stated power; method: test / interval / "
                        "multiplicity correction", test_rows, source=f"{source}.tests",
                        columns=["metric", "group", "difference", "ci_low", "ci_high", "p_value", "p_adjusted",
                                 "verdict", "mdd", "method", "reason"],
                        labels={"ci": "interval of the difference"}))
    used = {"groups", "tests", "verdicts", "gaps", *settings}
    max_min = sec.get("max_min")
    if isinstance(max_min, dict) and all(isinstance(v, dict) for v in max_min.values()):
        parts.append(_table("Max - min over the ITA groups, with a stratified bootstrap interval",
                            [{"metric": k, **{c: v.get(c) for c in ("value", "boot_low", "boot_high", "paper_flag")}}
                             for k, v in max_min.items()], source=f"{source}.max_min",
                            labels={"boot": "bootstrap interval", "paper_flag": "above the paper's fixed gap"}))
        used.add("max_min")
    rule = sec.get("paper_rule")
    if isinstance(rule, dict) and isinstance(rule.get("flags"), dict):
        flags = rule["flags"]
        label = str(rule.get("label") or "paper heuristic: a fixed limit on the gap")
        parts.append(_table(f"{label[:1].upper()}{label[1:]}. Flagged: the gap against the reference is above "
                            "the limit", [{"metric": m, **(f if isinstance(f, dict) else {"flag": f})}
                                                      for m, f in flags.items()], source=f"{source}.paper_rule"))
        used.add("paper_rule")
    return parts, used


def _recalibration_parts(sec: dict, source: str, result=None):
    """Curated view of :func:`skinaudit.fairness.recalibrate`'s section: settings, the
    thresholds of each method, their effect on the test split (before -> after), then per
    group. Returns (parts, keys used) or None when the layout is not that one."""
    methods = sec.get("methods")
    if not (isinstance(methods, dict) and methods and all(isinstance(m, dict) for m in methods.values())):
        return None
    settings = ("threshold", "gamma", "step", "n_cal", "n_test", "random_state", "fitted_on", "reported_on")
    parts = [_kv_table("Recalibration settings (threshold: the audit threshold, the 'before' of every row)",
                       {k: sec[k] for k in settings if k in sec}, source=source)]
    parts.append(_table("Thresholds of each method, fitted on the calibration split",
                        [{"method": name, **{c: m.get(c) for c in ("status", "thresholds", "feasible", "fallback",
                                                                   "randomized", "reason")}}
                         for name, m in methods.items()], source=f"{source}.methods"))

    def change(m, key):
        return {"_change": [m.get(f"{key}_before"), m.get(f"{key}_after")]}

    effect = [{"method": name, "FN": change(m, "fn"), "FP": change(m, "fp"), "recall": change(m, "recall"),
               "precision": change(m, "precision"), "recall gap (max - min)": change(m, "recall_gap"),
               "recall_gap_change_pct": m.get("recall_gap_change_pct")}
              for name, m in methods.items() if m.get("status", "ok") == "ok"]
    if effect:
        parts.append(_table("Effect on the test split, before \u2192 after (all images)", effect,
                            source=f"{source}.methods", labels={"recall_gap_change_pct": "recall gap change"}))
    per_group = []
    for name, m in methods.items():
        for r in m.get("per_group") or []:
            if isinstance(r, dict):
                per_group.append({"method": name, "group": r.get("group"), "n": r.get("n"),
                                  "malignant": r.get("n_pos"), "FN": change(r, "fn"), "FP": change(r, "fp"),
                                  "recall": change(r, "recall"), "precision": change(r, "precision")})
    if per_group:
        parts.append(_table("Per ITA group, before \u2192 after each recalibration (test split)", per_group,
                            source=f"{source}.methods.*.per_group"))
    boot = (methods.get("global") or {}).get("bootstrap")
    if isinstance(boot, dict):
        parts.extend(_generic_parts("bootstrap", boot, source=f"{source}.methods.global.bootstrap",
                                    caption="Bootstrap of the global threshold search (spread of t* and of the "
                                            "recall it reaches)"))
    method_notes = [f"{name}: {m['note']}" for name, m in methods.items() if isinstance(m.get("note"), str)]
    if method_notes:
        parts.append(_table("Notes on the methods", [{"note": n} for n in method_notes], columns=["note"],
                            source=f"{source}.methods"))
    return parts, {"methods", *settings, "tables:recalibration"}


def _groups_parts(sec: dict, source: str, result):
    """Table 7 from a groups section ``{"scheme", "intervals": {group: text},
    "groups": {group: {n, benign, malignant, share}}}``; None for another layout."""
    groups = sec.get("groups")
    if not (isinstance(groups, dict) and groups and all(_is_flat(g) for g in groups.values())):
        return None
    intervals = sec.get("intervals") if isinstance(sec.get("intervals"), dict) else {}
    rows = [{"ITA group": name, **({"ITA interval (degrees)": intervals.get(name)} if intervals else {}), **g}
            for name, g in groups.items()]
    parts = [_table(_TABLE_CAPTIONS["table7"] + (f"; scheme {sec['scheme']}" if isinstance(sec.get("scheme"), str)
                                                 else ""), rows, source=f"{source}.groups")]
    return parts, {"groups", "intervals", "scheme"} if isinstance(sec.get("scheme"), str) else {"groups", "intervals"}


def _failure_parts(sec: dict, source: str, result):
    """Failure modes: Table 6 comes from the section's ``tables``; the ``summary`` (the same
    counts) is not repeated; example cases come from the section (``cases`` or ``examples``
    records) or else from the run's ``failure_modes`` table (up to
    :data:`EXAMPLES_PER_MODE` per mode, in table order)."""
    used = {"summary"} if sec.get("summary") is not None else set()
    for key in ("cases", "examples"):
        if _is_records(sec.get(key)):
            return [], used
    table = (getattr(result, "tables", None) or {}).get("failure_modes")
    if not isinstance(table, pd.DataFrame) or not {"image_id", "mode"} <= set(table.columns) or table.empty:
        return [], used
    cols = [c for c in ("image_id", "case", "mode", "evidence") if c in table.columns]
    examples = table.groupby("mode", sort=False, group_keys=False).head(EXAMPLES_PER_MODE)[cols]
    return [_table(f"Example cases, up to {EXAMPLES_PER_MODE} per mode, with the evidence for their mode",
                   examples.to_dict(orient="records"), source="tables.failure_modes")], used


#: Example cases per failure mode shown in the report.
EXAMPLES_PER_MODE = 3

_SPECIAL_VIEWS = {"fairness": _fairness_parts, "recalibration": _recalibration_parts, "groups": _groups_parts,
                  "failure_modes": _failure_parts}


def _section_view(sid: str, title: str, sec, *, base: Path, source: str, result=None) -> dict:
    """A section of ``result.sections`` as {id, title, available, reason, parts, figures,
    notes}. Keys ``tables`` (name -> records), ``figures`` (name -> image path) and
    ``notes`` (list of str) are rendered as such; ``available: False`` with ``reason``
    marks a section that could not run; the fairness and recalibration layouts of
    :mod:`skinaudit.fairness` get a curated view; every other key is rendered generically."""
    view = {"id": sid, "title": title, "available": sec is not None, "reason": None, "parts": [], "figures": [],
            "notes": []}
    blobs = getattr(result, "figures", None) if isinstance(getattr(result, "figures", None), dict) else {}
    if sec is None:
        view["reason"] = "this stage did not run in this audit"
        return view
    if not isinstance(sec, dict):
        sec = {"value": sec}
    sec = _json_safe(sec)
    if sec.get("available") is False:
        view["available"] = False
        view["reason"] = str(sec.get("reason") or "the stage reported no result")
    notes = sec.get("notes") or []
    view["notes"] = [str(n) for n in (notes if isinstance(notes, list) else [notes])]
    for name, path in sorted((sec.get("figures") or {}).items()):
        if isinstance(path, list):
            view["figures"].extend(_figure(f"{name} {i + 1}", p, caption=f"{_label(name)} {i + 1}", base=base,
                                           blobs=blobs) for i, p in enumerate(path))
        else:
            view["figures"].append(_figure(name, path, caption=_label(name), base=base, blobs=blobs))
    rest = {k: v for k, v in sec.items() if k not in ("tables", "figures", "notes", "available", "reason")}
    special = _SPECIAL_VIEWS.get(sid)
    curated = special(rest, source, result) if special else None
    used = set()
    if curated is not None:
        parts, used = curated
        view["parts"].extend(parts)
        rest = {k: v for k, v in rest.items() if k not in used}
    tables = sec.get("tables") if isinstance(sec.get("tables"), dict) else {}
    table_parts = []
    for name, records in tables.items():
        if f"tables:{name}" not in used:
            table_parts.extend(_generic_parts(name, records, source=f"{source}.tables.{name}",
                                              caption=_TABLE_CAPTIONS.get(name)))
    # the paper-layout tables (Tables 6, 7, 8) lead their section
    view["parts"][:0] = table_parts
    if rest:
        view["parts"].extend(_generic_parts(title, rest, source=source,
                                            caption="Other values" if curated is not None else None))
    return view


def _versions() -> list[dict]:
    rows = [{"package": "python", "version": platform.python_version()}]
    for pkg in VERSION_PACKAGES:
        try:
            rows.append({"package": pkg, "version": importlib.metadata.version(pkg)})
        except importlib.metadata.PackageNotFoundError:
            rows.append({"package": pkg, "version": "not installed"})
    return rows


def _walk(obj, path=()):
    """Yield (key path, value) for every leaf of nested dicts and lists."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, (*path, str(i)))
    else:
        yield path, obj


def _find_number(sec, *keys):
    if not isinstance(sec, dict):
        return None
    for k in keys:
        v = sec.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return v
    return None


def _badge(check, status, value, rule, detail=""):
    return {"check": check, "status": status, "value": value, "rule": rule, "detail": detail}


def _verdicts(sec) -> list[tuple[str, str]]:
    """(where, verdict) for every verdict of a fairness section: from ``verdicts``
    (metric -> group -> verdict) when present, else from the ``verdict`` of each record of
    ``tests``."""
    if not isinstance(sec, dict):
        return []
    if isinstance(sec.get("verdicts"), (dict, list)):
        return [(".".join(path), v.strip().lower()) for path, v in _walk(sec["verdicts"]) if isinstance(v, str)]
    return [(f"{t.get('metric')}.{t.get('group')}", t["verdict"].strip().lower()) for t in sec.get("tests") or []
            if isinstance(t, dict) and isinstance(t.get("verdict"), str)]


def _paper_flags(sec) -> list[tuple[str, bool]]:
    """(where, flagged) for the paper's fixed-gap heuristic in a fairness section: the
    booleans under ``paper_rule.flags`` when present (metric -> group -> flag), else every
    boolean under ``paper_rule`` whose key names a flag or significance."""
    rule = sec.get("paper_rule") if isinstance(sec, dict) else None
    if not isinstance(rule, dict):
        return []
    if isinstance(rule.get("flags"), dict):
        return [(".".join(path), v) for path, v in _walk(rule["flags"]) if isinstance(v, bool)]
    out = []
    for path, v in _walk(rule):
        if isinstance(v, bool) and any(w in p for p in path for w in ("signific", "flag", "exceed")):
            out.append((".".join(p for p in path if "signific" not in p and "flag" not in p) or "gap", v))
        elif isinstance(v, str) and v.strip().lower() in ("significant", "not significant"):
            out.append((".".join(path), v.strip().lower() == "significant"))
    return out


#: Group labels of images without a usable skin tone; they are not an ITA group to compare.
_NO_GROUP = ("unknown", "missing")


def _group_counts(pred: pd.DataFrame):
    """Images (``size``) and malignant cases (``sum``) per ITA group, images without a
    group (``unknown``, missing) left out; None when there is no group column."""
    if "group" not in pred.columns:
        return None
    g = pred["group"].astype("string").fillna("missing")
    keep = ~g.isin(_NO_GROUP)
    return pred[keep].assign(_g=g[keep]).groupby("_g", sort=True)["label"].agg(["size", "sum"])


#: Recall target of the badge when neither the rules nor the configuration give one.
DEFAULT_RECALL_TARGET = 0.85


def _recall_target(result, rules: ReportRules) -> tuple[float, str]:
    if rules.min_recall is not None:
        return float(rules.min_recall), "report rule min_recall"
    gamma = getattr(result.config, "gamma", None)
    if isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and 0 < gamma <= 1:
        return float(gamma), "the audit's recall target gamma"
    return DEFAULT_RECALL_TARGET, "default target"


def summary_badges(result, *, rules: ReportRules | None = None) -> list[dict]:
    """The summary checks of an audit, each ``{check, status, value, rule, detail}`` with
    ``status`` one of "PASS", "WARN", "FAIL", "not run" (no input for the check).

    Checks: share of images scored (``rules.max_skipped_share``); overall recall at the
    audit threshold (``rules.min_recall``, else ``config.gamma``, else 0.85); malignant cases per ITA group
    (``rules.min_group_positives``); the fairness section's statistical verdicts (FAIL on
    any "significant", WARN on any "insufficient data"); the paper's fixed-gap heuristic
    from the fairness section's ``paper_rule`` (WARN when a gap exceeds it, since the
    heuristic ignores sample size).
    """
    rules = rules if rules is not None else ReportRules()
    overall = result.sections.get("overall") or {}
    threshold = float(result.config.threshold)
    badges = []
    scored = len(result.predictions)
    skipped = len(result.skipped)
    share = skipped / (scored + skipped) if scored + skipped else float("nan")
    badges.append(_badge("Images scored", "PASS" if share <= rules.max_skipped_share else "WARN",
                         f"{scored} scored, {skipped} skipped ({fmt_pct(share)})",
                         f"skipped share <= {fmt_pct(rules.max_skipped_share)}"))
    recall = overall.get("recall")
    target, why = _recall_target(result, rules)
    recall_rule = f"recall >= {fmt_threshold(target)} ({why})"
    if _is_missing(recall):
        badges.append(_badge("Recall", "not run", "n/a", recall_rule,
                             "recall is undefined (no malignant case was scored)"))
    else:
        badges.append(_badge("Recall", "PASS" if recall >= target else "FAIL",
                             f"{fmt_num(float(recall))} at threshold {threshold:g}",
                             recall_rule))
    counts = _group_counts(result.predictions)
    if counts is None or counts.empty:
        badges.append(_badge("ITA group sizes", "not run", "n/a",
                             f">= {rules.min_group_positives} malignant per ITA group",
                             "no skin-tone group per image in this audit" if counts is None else
                             "no image has a usable skin tone (all 'unknown')"))
    else:
        small = [f"{name}: {int(row['sum'])}" for name, row in counts.iterrows()
                 if row["sum"] < rules.min_group_positives]
        badges.append(_badge("ITA group sizes", "WARN" if small else "PASS",
                             ", ".join(f"{name}: {int(row['sum'])}" for name, row in counts.iterrows()),
                             f">= {rules.min_group_positives} malignant per ITA group",
                             ("too few malignant cases to compare: " + ", ".join(small)) if small else ""))
    fairness = result.sections.get("fairness")
    alpha = _find_number(fairness, "alpha") if isinstance(fairness, dict) else None
    rule = "significant: adjusted p < alpha and interval excludes 0" + (f" (alpha {alpha:g})" if alpha else "")
    if fairness is None:
        badges.append(_badge("Fairness, statistical tests", "not run", "n/a", rule, "no fairness section"))
    else:
        verdicts = _verdicts(fairness)
        sig = [w for w, v in verdicts if v.startswith("significant")]
        insufficient = [w for w, v in verdicts if "insufficient" in v]
        if not verdicts:
            badges.append(_badge("Fairness, statistical tests", "not run", "n/a", rule,
                                 "the fairness section carries no verdicts"))
        else:
            status = "FAIL" if sig else ("WARN" if insufficient else "PASS")
            detail = "; ".join(filter(None, [("significant gap: " + ", ".join(sig)) if sig else "",
                                            ("insufficient data: " + ", ".join(insufficient)) if insufficient else ""]))
            badges.append(_badge("Fairness, statistical tests", status,
                                 f"{len(sig)} significant, {len(insufficient)} insufficient data, "
                                 f"{len(verdicts)} verdicts", rule, detail))
    flags = _paper_flags(fairness) if fairness is not None else []
    paper_rule = "gap > 0.02 (AUC) or > 0.05 (other metrics): the paper's fixed-gap heuristic"
    if not flags:
        badges.append(_badge("Fairness, paper heuristic", "not run", "n/a", paper_rule,
                             "no paper-rule result in the fairness section"))
    else:
        flagged = [w for w, f in flags if f]
        badges.append(_badge("Fairness, paper heuristic", "WARN" if flagged else "PASS",
                             f"{len(flagged)} of {len(flags)} gaps above the fixed threshold", paper_rule,
                             ("above: " + ", ".join(flagged)) if flagged else ""))
    badges.append(_localisation_badge(result.sections.get("localisation"), rules))
    return badges


def _localisation_badge(sec, rules: ReportRules) -> dict:
    rule = f"pointing-game hit rate >= {fmt_num(rules.min_pointing_game, 2)} in every ITA group"
    if not isinstance(sec, dict) or sec.get("available") is False:
        reason = sec.get("reason") if isinstance(sec, dict) else None
        return _badge("Explanations on the lesion", "not run", "n/a", rule, reason or "no localisation section")
    records = sec.get("groups") if _is_records(sec.get("groups")) else []
    rates = [(str(r.get("group")), r.get("pointing_game")) for r in records if str(r.get("group")) != "all"]
    rates = [(g, v) for g, v in rates if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not rates:
        return _badge("Explanations on the lesion", "not run", "n/a", rule, "no pointing-game rate per group")
    low = [g for g, v in rates if v < rules.min_pointing_game]
    return _badge("Explanations on the lesion", "WARN" if low else "PASS",
                  ", ".join(f"{g}: {fmt_num(float(v), 2)}" for g, v in rates), rule,
                  ("the CAM maximum misses the lesion too often in: " + ", ".join(low)) if low else "")


def _scheme_cut_points(result) -> tuple[list[float], str]:
    """Cut points of the grouping scheme from the skintone or groups section; the paper's
    binary scheme (28 degrees) when neither states them."""
    for sid in ("skintone", "groups", "fairness"):
        sec = result.sections.get(sid)
        if not isinstance(sec, dict):
            continue
        for holder in (sec.get("scheme"), sec):
            if not isinstance(holder, dict):
                continue
            for key in ("cut_points", "cutpoints", "cuts", "edges"):
                val = holder.get(key)
                if isinstance(val, (list, tuple)) and val and all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in val):
                    finite = [float(v) for v in val if math.isfinite(float(v))]
                    if finite:
                        return finite, f"{sid} section"
    for name in (getattr(result.config, "scheme", None), (result.sections.get("groups") or {}).get("scheme")
                 if isinstance(result.sections.get("groups"), dict) else None):
        if name is None or not isinstance(name, (str, list, tuple)):
            continue
        try:
            from .skintone import get_scheme
        except ImportError:  # pragma: no cover - skintone ships with the package
            break
        try:
            return [float(c) for c in get_scheme(name).cuts], f"scheme {name}"
        except ConfigError:
            log.warning("unknown ITA scheme %r in the result; the histogram shows the paper's cut at 28", name)
    return [28.0], "the paper's binary scheme (light > 28, dark <= 28); no scheme stated in the result"


def _threshold_marks(result) -> dict:
    """Global thresholds found in the recalibration section: ``methods.<name>.thresholds.all``
    (the layout of :func:`skinaudit.fairness.recalibrate`) or ``<name>.threshold``."""
    sec = result.sections.get("recalibration")
    marks = {}
    if not isinstance(sec, dict):
        return marks
    holders = sec["methods"] if isinstance(sec.get("methods"), dict) else sec
    for name, sub in holders.items():
        if not isinstance(sub, dict):
            continue
        t = _find_number(sub.get("thresholds"), "all") if isinstance(sub.get("thresholds"), dict) else None
        t = t if t is not None else _find_number(sub, "threshold")
        if t is not None and 0 <= t <= 1 and not math.isclose(t, result.config.threshold):
            marks[_label(name)] = float(t)
    return marks


def _computed_figures(result, figures_dir: Path) -> dict:
    """Draw every figure the report computes itself; name -> (path or None, reason)."""
    from . import figures as F

    pred = result.predictions
    y = pred["label"].to_numpy(int)
    s = pred["score"].to_numpy(float)
    t = float(result.config.threshold)
    o = result.sections.get("overall") or {}
    out = {"roc": (F.roc_png(y, s, figures_dir / "roc.png", threshold=t), None)}
    if all(isinstance(o.get(k), int) for k in ("tp", "fn", "tn", "fp")):
        out["confusion"] = (F.confusion_png(o["tp"], o["fn"], o["tn"], o["fp"], figures_dir / "confusion.png",
                                            threshold=t), None)
    else:
        out["confusion"] = (None, "the overall section has no confusion counts")
    groups = pred["group"].astype("string").fillna("missing").to_numpy(object) if "group" in pred else None
    if groups is not None:
        out["roc_by_group"] = (F.roc_png(y, s, figures_dir / "roc_by_group.png", threshold=t, groups=groups,
                                         title="ROC curve per ITA group"), None)
    else:
        out["roc_by_group"] = (None, "no skin-tone group per image in this audit")
    if "ita" in pred.columns and np.isfinite(pd.to_numeric(pred["ita"], errors="coerce").to_numpy(float)).any():
        cuts, _ = _scheme_cut_points(result)
        out["ita_histogram"] = (F.ita_histogram_png(pd.to_numeric(pred["ita"], errors="coerce").to_numpy(float),
                                                    figures_dir / "ita_histogram.png", cut_points=cuts,
                                                    groups=groups), None)
    else:
        out["ita_histogram"] = (None, "no ITA value per image in this audit")
    out["threshold_curves"] = (F.threshold_curves_png(y, s, figures_dir / "threshold_curves.png", threshold=t,
                                                      groups=groups, marks=_threshold_marks(result)), None)
    return out


_FIGURE_CAPTIONS = {
    "roc": "ROC curve of all scored images; the dot is the operating point at the audit threshold.",
    "confusion": "Confusion matrix at the audit threshold (rows: true class; shares of each row).",
    "roc_by_group": "ROC curve per ITA group; dots: operating point at the audit threshold.",
    "ita_histogram": "ITA per image with the grouping scheme's cut points (dashed).",
    "threshold_curves": "Recall, precision, F1 and specificity against the threshold (top); recall per ITA "
                        "group (bottom, when groups are known). Solid line: the audit threshold; dotted: "
                        "recalibrated thresholds.",
}


def _overall_table(overall: dict) -> dict:
    rows = [("AUC", "auc"), ("Recall (sensitivity)", "recall"), ("Precision (PPV)", "precision"), ("F1", "f1"),
            ("Accuracy", "accuracy"), ("Specificity", "specificity"), ("False-negative rate", "fnr"),
            ("True positives (TP)", "tp"), ("False negatives (FN)", "fn"), ("True negatives (TN)", "tn"),
            ("False positives (FP)", "fp"), ("Images (n)", "n")]
    return _table("Overall performance (layout of the paper's Table 3)",
                  [{"metric": label, "value": overall.get(key)} for label, key in rows if key in overall],
                  columns=["metric", "value"], source="sections.overall")


def _dataset_table(dataset: dict, n_scored: int) -> dict:
    n = dataset.get("n")
    mal = dataset.get("malignant")
    ben = dataset.get("benign")
    rows = [{"item": "images in the dataset", "value": n}, {"item": "benign", "value": ben},
            {"item": "malignant", "value": mal},
            {"item": "malignant share", "value": mal / n if isinstance(mal, int) and n else None},
            {"item": "with a lesion mask", "value": dataset.get("with_mask")},
            {"item": "excluded when loading", "value": dataset.get("excluded")},
            {"item": "scored in this audit", "value": n_scored}]
    return _table("Dataset composition (layout of the paper's Table 1)", rows, columns=["item", "value"],
                  source="dataset")


#: Rows listed per image table (skipped, flagged) in the report; the rest are counted and
#: named in the CSV files of the audit.
MAX_LISTED = 300


def _listing(caption: str, records: list, columns: list, *, source: str, where: str) -> dict:
    shown = records[:MAX_LISTED]
    more = len(records) - len(shown)
    if more:
        caption = f"{caption}: the first {len(shown)} of {len(records)}; all are in {where}"
    table = _table(caption, shown, columns=columns, source=source)
    table["more"] = more
    return table


def _predictions_flags(pred: pd.DataFrame) -> list[dict]:
    if "flags" not in pred.columns:
        return []
    rows = []
    for rec in pred.to_dict(orient="records"):
        flags = rec.get("flags")
        if isinstance(flags, (list, tuple, np.ndarray)):
            flags = [str(f) for f in flags]
            text = ", ".join(flags)
        else:
            text = "" if _is_missing(flags) or flags is pd.NA else str(flags)
        if text.strip():
            rows.append({"image_id": rec["image_id"], "label": rec["label"], "score": rec["score"],
                         "group": rec.get("group"), "flags": text})
    return rows


def _report_date() -> str:
    """UTC date of the report: ``SOURCE_DATE_EPOCH`` (seconds since 1970) when set, else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            when = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise ConfigError(f"SOURCE_DATE_EPOCH={epoch!r}: expected whole seconds since 1970-01-01 UTC") from None
    else:
        when = _dt.datetime.now(_dt.timezone.utc)
    return when.replace(microsecond=0).isoformat()


def build_context(result, *, figures_dir, rules: ReportRules | None = None, generated_at: str | None = None) -> dict:
    """Everything the report templates show, as JSON-safe data; draws the figures.

    Parameters
    ----------
    result : AuditResult
        The audit. Its ``predictions`` (columns ``image_id, label, score, prediction``
        and, when present, ``group``, ``ita``, ``flags``) feed the figures; its
        ``sections`` feed every table, so every number comes from the same scores and
        the one threshold ``result.config.threshold``.
    figures_dir : path-like
        Folder where the figure PNGs are written (created if needed).
    rules : ReportRules, optional
        Thresholds of the summary badges.
    generated_at : str, optional
        Date shown on the cover; default: the environment's ``SOURCE_DATE_EPOCH`` (the
        reproducible-builds convention: the same audit then gives byte-identical HTML and PDF)
        or else now; UTC, ISO 8601 to the second.

    Returns
    -------
    dict, JSON-serialisable: ``title, generated_at, threshold, model, dataset, config,
    versions, hashes, badges, figures`` (name -> {file, src, caption, reason}),
    ``overall, dataset_table, sections`` (id -> view with ``available, reason, parts,
    figures, notes``), ``other_sections, checklist, skipped, flagged``. Figure ``src``
    values are ``data:`` URIs.
    """
    from .audit import AuditResult

    if not isinstance(result, AuditResult):
        raise ConfigError(f"the report needs an AuditResult; got {type(result).__name__}")
    rules = rules if rules is not None else ReportRules()
    if not isinstance(rules, ReportRules):
        raise ConfigError(f"the 'rules' parameter must be a ReportRules; got {type(rules).__name__}")
    pred = result.predictions
    missing = {"image_id", "label", "score"} - set(pred.columns)
    if missing:
        raise DataError(f"the predictions lack the column(s) {sorted(missing)} that the report needs")
    if not len(pred):
        raise DataError("the audit has no scored image to report on")
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    base = figures_dir.parent
    threshold = float(result.config.threshold)

    figures = {}
    for name, (path, reason) in _computed_figures(result, figures_dir).items():
        fig = _figure(name, path, caption=_FIGURE_CAPTIONS[name], base=base) if path else \
            {"kind": "figure", "name": name, "caption": _FIGURE_CAPTIONS[name], "file": None, "src": None,
             "reason": reason}
        figures[name] = fig

    titles = {"groups": "Composition by ITA group (layout of the paper's Table 7)",
              "fairness": "Fairness across ITA groups (layout of the paper's Table 8)",
              "skintone": "ITA estimator and its sensitivity", "recalibration": "Threshold recalibration",
              "explanations": "Explanations (Grad-CAM++ triptychs, the paper's Fig. 8)",
              "localisation": "Localisation of the explanation against the lesion, by ITA group",
              "failure_modes": "Failure modes of the false negatives (layout of the paper's Table 6)"}
    absent = {"explanations": "no model with an explainable layer was audited (scores only), so no Grad-CAM++",
              "localisation": "no explanations were computed, so no localisation scores",
              "failure_modes": "the failure-mode stage needs explanations and was not run",
              "groups": "no skin-tone group per image in this audit",
              "fairness": "no skin-tone group per image, so no comparison between groups",
              "skintone": "skin tone (ITA) was not estimated in this audit",
              "recalibration": "no recalibration was run in this audit"}
    sections = {}
    for sid, title in titles.items():
        view = _section_view(sid, title, result.sections.get(sid), base=base, source=f"sections.{sid}",
                             result=result)
        if result.sections.get(sid) is None:
            view["reason"] = absent[sid]
        sections[sid] = view
    other = [_section_view(k, _label(k), v, base=base, source=f"sections.{k}", result=result)
             for k, v in sorted(result.sections.items()) if k not in _KNOWN_SECTIONS]

    overall = result.sections.get("overall")
    cfg = result.config.to_dict() if hasattr(result.config, "to_dict") else dataclasses.asdict(result.config)
    model = {**dict.fromkeys(("name", "adapter", "path", "sha256", "arch")), **_json_safe(result.model or {})}
    dataset = {**dict.fromkeys(("name", "n", "malignant", "benign", "with_mask", "excluded", "manifest_sha256",
                                "source")), **_json_safe(result.dataset or {})}
    hashes = [{"item": "model file", "sha256": model.get("sha256") or "n/a (no model file)"},
              {"item": "dataset manifest", "sha256": dataset.get("manifest_sha256") or "n/a"}]
    skipped = result.skipped if result.skipped is not None else pd.DataFrame(columns=["image_id", "reason"])
    counts = _group_counts(pred)
    small_groups = [] if counts is None else [
        {"group": str(k), "n": int(r["size"]), "malignant": int(r["sum"])} for k, r in counts.iterrows()
        if r["sum"] < rules.min_group_positives]
    context = {
        "title": "Skin-lesion classifier audit",
        "generated_at": generated_at or _report_date(),
        "threshold": threshold,
        "skinaudit_version": _skinaudit_version(),
        "model": model, "dataset": dataset, "config": cfg,
        "model_table": _kv_table("Model", model, source="model"),
        "dataset_info_table": _kv_table("Dataset", dataset, source="dataset"),
        "config_table": _kv_table("Configuration", cfg, source="config"),
        "versions": _versions(), "hashes": hashes,
        "rules": dataclasses.asdict(rules),
        "badges": summary_badges(result, rules=rules),
        "figures": figures,
        "overall_available": overall is not None,
        "overall": _overall_table(overall) if overall is not None else None,
        "dataset_table": _dataset_table(dataset, len(pred)),
        "n_scored": len(pred), "n_skipped": len(skipped),
        "small_groups": small_groups,
        "sections": sections, "other_sections": other,
        "checklist": [{"id": sid, "section": title, "model_card": mc, "tripod_ai": tr, "claim": cl}
                      for sid, title, mc, tr, cl in CHECKLIST],
        "skipped": _listing("Images that could not be scored or were excluded", skipped.to_dict(orient="records"),
                            ["image_id", "reason"], source="skipped", where="skipped.csv"),
        "flagged": _listing("Scored images with quality flags", _predictions_flags(pred),
                            ["image_id", "label", "score", "group", "flags"], source="predictions.flags",
                            where="predictions.csv"),
    }
    return _json_safe(context)


def _skinaudit_version() -> str:
    from ._version import __version__

    return __version__


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

    ``out_dir`` should be the staging folder of :class:`skinaudit.audit.atomic_output_dir`
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
