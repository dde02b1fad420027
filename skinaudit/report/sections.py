"""One view per report section: the curated layouts (groups, fairness, recalibration, failure modes) and
the generic rendering of every other section's values."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._jsonsafe import json_safe
from .tables import TABLE_CAPTIONS, embed_figure, generic_parts, is_flat, is_records, kv_table, make_table, pretty


# Sections of result.sections with their own chapter; anything else lands in "Other results".
KNOWN_SECTIONS = ("overall", "groups", "fairness", "skintone", "recalibration", "explanations",
                   "localisation", "failure_modes")


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
            and is_records(tests)):
        return None
    settings = ("threshold", "alpha", "n_boot", "n_perm", "random_state", "reference", "min_positives",
                "max_ci_width", "power", "primary")
    parts = [kv_table("Statistical settings", {k: sec[k] for k in settings if k in sec}, source=source)]
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
    parts.append(make_table("Metrics per ITA group with 1 - alpha intervals (AUC: DeLong; recall, precision, "
                        "specificity, FNR: Wilson; F1: stratified bootstrap percentile)", rows,
                        source=f"{source}.groups"))
    keep = ("metric", "group", "difference", "ci_low", "ci_high", "p_value", "p_adjusted", "verdict", "reason",
            "mdd")
    refs = sorted({str(t.get("reference")) for t in tests if t.get("reference") is not None})
    test_rows = []
    for t in tests:
        row = {k: t.get(k) for k in keep if k in t}
        row["method"] = " / ".join(pretty(t[k]) for k in ("test", "ci_method", "correction") if t.get(k))
        test_rows.append(row)
    parts.append(make_table(f"Tests of each ITA group against the reference ({', '.join(refs) or 'n/a'}): verdict "
                        "'significant' only when the adjusted p < alpha and the interval excludes 0; mdd: the "
                        "smallest difference detectable at the stated power; method: test / interval / "
                        "multiplicity correction", test_rows, source=f"{source}.tests",
                        columns=["metric", "group", "difference", "ci_low", "ci_high", "p_value", "p_adjusted",
                                 "verdict", "mdd", "method", "reason"],
                        labels={"ci": "interval of the difference"}))
    used = {"groups", "tests", "verdicts", "gaps", *settings}
    max_min = sec.get("max_min")
    if isinstance(max_min, dict) and all(isinstance(v, dict) for v in max_min.values()):
        parts.append(make_table("Max - min over the ITA groups, with a stratified bootstrap interval",
                            [{"metric": k, **{c: v.get(c) for c in ("value", "boot_low", "boot_high", "paper_flag")}}
                             for k, v in max_min.items()], source=f"{source}.max_min",
                            labels={"boot": "bootstrap interval", "paper_flag": "above the paper's fixed gap"}))
        used.add("max_min")
    rule = sec.get("paper_rule")
    if isinstance(rule, dict) and isinstance(rule.get("flags"), dict):
        flags = rule["flags"]
        label = str(rule.get("label") or "paper heuristic: a fixed limit on the gap")
        parts.append(make_table(f"{label[:1].upper()}{label[1:]}. Flagged: the gap against the reference is above "
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
    parts = [kv_table("Recalibration settings (threshold: the audit threshold, the 'before' of every row)",
                       {k: sec[k] for k in settings if k in sec}, source=source)]
    parts.append(make_table("Thresholds of each method, fitted on the calibration split",
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
        parts.append(make_table("Effect on the test split, before \u2192 after (all images)", effect,
                            source=f"{source}.methods", labels={"recall_gap_change_pct": "recall gap change"}))
    per_group = []
    for name, m in methods.items():
        for r in m.get("per_group") or []:
            if isinstance(r, dict):
                per_group.append({"method": name, "group": r.get("group"), "n": r.get("n"),
                                  "malignant": r.get("n_pos"), "FN": change(r, "fn"), "FP": change(r, "fp"),
                                  "recall": change(r, "recall"), "precision": change(r, "precision")})
    if per_group:
        parts.append(make_table("Per ITA group, before \u2192 after each recalibration (test split)", per_group,
                            source=f"{source}.methods.*.per_group"))
    boot = (methods.get("global") or {}).get("bootstrap")
    if isinstance(boot, dict):
        parts.extend(generic_parts("bootstrap", boot, source=f"{source}.methods.global.bootstrap",
                                    caption="Bootstrap of the global threshold search (spread of t* and of the "
                                            "recall it reaches)"))
    method_notes = [f"{name}: {m['note']}" for name, m in methods.items() if isinstance(m.get("note"), str)]
    if method_notes:
        parts.append(make_table("Notes on the methods", [{"note": n} for n in method_notes], columns=["note"],
                            source=f"{source}.methods"))
    return parts, {"methods", *settings, "tables:recalibration"}


def _groups_parts(sec: dict, source: str, result):
    """Table 7 from a groups section ``{"scheme", "intervals": {group: text},
    "groups": {group: {n, benign, malignant, share}}}``; None for another layout."""
    groups = sec.get("groups")
    if not (isinstance(groups, dict) and groups and all(is_flat(g) for g in groups.values())):
        return None
    intervals = sec.get("intervals") if isinstance(sec.get("intervals"), dict) else {}
    grouping = sec.get("grouping") if isinstance(sec.get("grouping"), dict) else {}
    if grouping.get("by") == "column":  # grouped by a metadata column (AuditConfig.group_column)
        label = str(grouping.get("label") or "group")
        rows = [{label: name, **g} for name, g in groups.items()]
        return [make_table(f"Images per group of {label} (the groups of the fairness analysis)", rows,
                           source=f"{source}.groups")], {"groups"}
    rows = [{"ITA group": name, **({"ITA interval (degrees)": intervals.get(name)} if intervals else {}), **g}
            for name, g in groups.items()]
    parts = [make_table(TABLE_CAPTIONS["table7"] + (f"; scheme {sec['scheme']}" if isinstance(sec.get("scheme"), str)
                                                 else ""), rows, source=f"{source}.groups")]
    return parts, {"groups", "intervals", "scheme"} if isinstance(sec.get("scheme"), str) else {"groups", "intervals"}


def _failure_parts(sec: dict, source: str, result):
    """Failure modes: Table 6 comes from the section's ``tables``; the ``summary`` (the same
    counts) is not repeated; example cases come from the section (``cases`` or ``examples``
    records) or else from the run's ``failure_modes`` table (up to
    :data:`EXAMPLES_PER_MODE` per mode, in table order)."""
    used = {"summary"} if sec.get("summary") is not None else set()
    for key in ("cases", "examples"):
        if is_records(sec.get(key)):
            return [], used
    table = (getattr(result, "tables", None) or {}).get("failure_modes")
    if not isinstance(table, pd.DataFrame) or not {"image_id", "mode"} <= set(table.columns) or table.empty:
        return [], used
    cols = [c for c in ("image_id", "case", "mode", "evidence") if c in table.columns]
    examples = table.groupby("mode", sort=False, group_keys=False).head(EXAMPLES_PER_MODE)[cols]
    return [make_table(f"Example cases, up to {EXAMPLES_PER_MODE} per mode, with the evidence for their mode",
                   examples.to_dict(orient="records"), source="tables.failure_modes")], used


#: Example cases per failure mode shown in the report.
EXAMPLES_PER_MODE = 3


_SPECIAL_VIEWS = {"fairness": _fairness_parts, "recalibration": _recalibration_parts, "groups": _groups_parts,
                  "failure_modes": _failure_parts}


def section_view(sid: str, title: str, sec, *, base: Path, source: str, result=None) -> dict:
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
    sec = json_safe(sec)
    if sec.get("available") is False:
        view["available"] = False
        view["reason"] = str(sec.get("reason") or "the stage reported no result")
    notes = sec.get("notes") or []
    view["notes"] = [str(n) for n in (notes if isinstance(notes, list) else [notes])]
    for name, path in sorted((sec.get("figures") or {}).items()):
        if isinstance(path, list):
            view["figures"].extend(embed_figure(f"{name} {i + 1}", p, caption=f"{pretty(name)} {i + 1}", base=base,
                                           blobs=blobs) for i, p in enumerate(path))
        else:
            view["figures"].append(embed_figure(name, path, caption=pretty(name), base=base, blobs=blobs))
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
            table_parts.extend(generic_parts(name, records, source=f"{source}.tables.{name}",
                                              caption=TABLE_CAPTIONS.get(name)))
    # the paper-layout tables (Tables 6, 7, 8) lead their section
    view["parts"][:0] = table_parts
    if rest:
        view["parts"].extend(generic_parts(title, rest, source=source,
                                            caption="Other values" if curated is not None else None))
    return view
