"""One view per report section: the curated layouts (groups, fairness, recalibration, failure modes) and
the generic rendering of every other section's values."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._jsonsafe import json_safe
from .format import is_missing
from .words import group_noun
from .tables import TABLE_CAPTIONS, embed_figure, generic_parts, is_flat, is_records, kv_table, make_table, pretty


# Sections of result.sections with their own chapter; anything else lands in "Other results".
KNOWN_SECTIONS = ("overall", "groups", "fairness", "skintone", "recalibration", "explanations",
                   "localisation", "failure_modes", "counterfactual")


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
    noun = group_noun(result, sec)
    rows, why_na = [], []
    for name, g in groups.items():
        ci = g.get("ci") or {}
        row = {noun: name, "n": g.get("n"), "malignant": g.get("n_pos")}
        for met, method in _GROUP_INTERVALS:
            est = g.get(met)
            # an undefined metric has no interval to show, whatever bounds its method fell back to
            bounds = _interval((ci.get(met) or {}).get(method)) if not is_missing(est) else [None, None]
            row[met] = {"_est_ci": [est, *bounds]}
        row.update(fn=g.get("fn"), fp=g.get("fp"))
        undefined = g.get("undefined") or {}
        if undefined:  # said under the table: a text column would push the numbers off a PDF page
            why_na.append(f"{name}: " + "; ".join(str(v) for v in undefined.values()))
        rows.append(row)
    table = make_table(f"Metrics per {noun} with 1 - alpha intervals (AUC: DeLong; recall, precision, "
                       "specificity, FNR: Wilson; F1: stratified bootstrap percentile)", rows,
                       source=f"{source}.groups")
    if why_na:
        table["more_note"] = "n/a, by group: " + " | ".join(why_na) + "."
    parts.append(table)
    keep = ("metric", "group", "difference", "ci_low", "ci_high", "p_value", "p_adjusted", "verdict", "reason",
            "mdd")
    refs = sorted({str(t.get("reference")) for t in tests if t.get("reference") is not None})
    test_rows = []
    for t in tests:
        row = {k: t.get(k) for k in keep if k in t}
        row["method"] = " / ".join(pretty(t[k]) for k in ("test", "ci_method", "correction") if t.get(k))
        test_rows.append(row)
    parts.append(make_table(f"Tests of each {noun} against the reference ({', '.join(refs) or 'n/a'}): verdict "
                        "'significant' only when the adjusted p < alpha and the interval excludes 0; mdd: the "
                        "smallest difference detectable at the stated power; method: test / interval / "
                        "multiplicity correction", test_rows, source=f"{source}.tests",
                        columns=["metric", "group", "difference", "ci_low", "ci_high", "p_value", "p_adjusted",
                                 "verdict", "mdd", "method", "reason"],
                        labels={"ci": "interval of the difference"}))
    used = {"groups", "tests", "verdicts", "gaps", "grouping", *settings}  # grouping: named in every caption
    max_min = sec.get("max_min")
    if isinstance(max_min, dict) and all(isinstance(v, dict) for v in max_min.values()):
        parts.append(make_table(f"Max - min over the {noun}s, with a stratified bootstrap interval",
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
    unknown = sec.get("unknown_images")
    if isinstance(unknown, dict) and isinstance(unknown.get("reasons"), dict):
        grouping = sec.get("grouping") if isinstance(sec.get("grouping"), dict) else {}
        by_column = grouping.get("by") == "column"
        what = (f"no value in {' or '.join(map(str, grouping.get('columns') or []))}" if by_column
                else "no measurable skin tone")
        where = "columns containing 'unknown'" if by_column else "'unknown' column"
        parts.append(make_table(
            f"Images left out of the comparison ({what}), by reason: {unknown.get('n')} of {unknown.get('of')}; "
            f"their metrics are the {where} of Table 8",
            [{"reason": pretty(k), "images": v} for k, v in unknown["reasons"].items()],
            source=f"{source}.unknown_images"))
        used.add("unknown_images")
    robust = sec.get("measurement_robust")
    if isinstance(robust, dict) and isinstance(robust.get("contrasts"), dict):
        parts.append(_robust_table(robust, sec.get("reference"), f"{source}.measurement_robust"))
        used.add("measurement_robust")
    return parts, used


def _robust_table(robust: dict, reference, source: str) -> dict:
    """Whether each primary finding survives the skin-tone measurement's uncertainty, one row per contrast."""
    rows = []
    for metric, by_group in robust["contrasts"].items():
        for group, c in (by_group or {}).items():
            if not isinstance(c, dict):
                continue
            variants = [v for v in (c.get("variants") or {}).values() if isinstance(v, dict)]
            defined = [v for v in variants if v.get("same_sign") is not None]
            rows.append({"metric": metric, "group vs reference": f"{group} vs {reference}", "gap": c.get("gap"),
                         "audit verdict": c.get("verdict"), "same direction in draws": c.get("same_sign"),
                         "same significance in draws": c.get("same_significance"),
                         "variants keeping the direction": f"{sum(bool(v['same_sign']) for v in defined)} of "
                                                           f"{len(defined)} (undefined: {len(variants) - len(defined)})",
                         "holds": c.get("holds")})
    share = robust.get("hold_share")
    return make_table(f"Does each primary finding survive the skin-tone measurement? {robust.get('n_draws')} "
                      f"group-assignment draws ({robust.get('method')}); a finding holds when it keeps its direction "
                      f"and significance in at least {share:.0%} of them" if isinstance(share, float) else
                      "Does each primary finding survive the skin-tone measurement?", rows, source=source,
                      labels={"same direction in draws": "same direction in draws (share)",
                              "same significance in draws": "same significance in draws (share)"})


def _infeasible(m: dict) -> dict:
    """group -> why, for the groups whose threshold search missed its target (``feasible`` false)."""
    feasible = m.get("feasible")
    fallback = m.get("fallback") if isinstance(m.get("fallback"), dict) else {}
    if isinstance(feasible, dict):
        return {g: str(fallback.get(g) or "no threshold reaches the recall target") for g, ok in feasible.items()
                if ok is False}
    if feasible is False:
        return {"all": str(m.get("fallback") or "no threshold reaches the recall target")}
    return {}


def _recalibration_parts(sec: dict, source: str, result=None):
    """Curated view of :func:`skinaudit.fairness.recalibrate`'s section: one note on the data (fitted on
    the calibration part, evaluated on the held-out part of the audited images), the thresholds of each
    method (an infeasible search is shown as infeasible), the effect on the held-out images (absolute
    changes; the relative change labelled as such), then per group. Returns (parts, keys used, notes)
    or None when the layout is not that one."""
    methods = sec.get("methods")
    if not (isinstance(methods, dict) and methods and all(isinstance(m, dict) for m in methods.values())):
        return None
    noun = group_noun(result, sec)
    n_cal, n_test = (f"{v:,}" if isinstance(v, int) else v for v in (sec.get("n_cal"), sec.get("n_test")))
    how = sec.get("calibration_source") or "a calibration part of the audited images"
    notes = [f"The thresholds are fitted on {n_cal if n_cal is not None else 'the'} calibration images ({how}) "
             f"and evaluated on the held-out part: the other {n_test if n_test is not None else ''} audited images "
             f"with a compared {noun} (images in the group 'unknown' take part in neither). 'Before' is the "
             f"audit threshold {sec.get('threshold', 'n/a')}; every number of this section is on the held-out "
             f"images. Recall target gamma {sec.get('gamma', 'n/a')}, grid step {sec.get('step', 'n/a')}, "
             f"random state {sec.get('random_state', 'n/a')}."]
    notes += [n for n in (sec.get("notes") or []) if isinstance(n, str) and n.startswith("The fairness-constrained")]
    infeasible = {name: _infeasible(m) for name, m in methods.items()}
    rows = []
    for name, m in methods.items():
        bad = infeasible[name]
        status = m.get("status", "ok")
        if status == "ok" and bad:
            status = "infeasible for " + ", ".join(bad)
        why = "; ".join(bad.values()) or m.get("reason")
        rows.append({"method": name, "status": status, "thresholds": m.get("thresholds"),
                     "randomized": m.get("randomized"), "note": why if why else (m.get("note") or "")})
    parts = [make_table("Thresholds of each method, fitted on the calibration images; 'infeasible': the search "
                        "found no threshold that reaches the recall target there, so the group keeps a fallback "
                        "threshold and is not recalibrated", rows, source=f"{source}.methods",
                        labels={"randomized": "randomised"})]

    def change(m, key):
        return {"_change": [m.get(f"{key}_before"), m.get(f"{key}_after")]}

    def delta(m, key):
        b, a = m.get(f"{key}_before"), m.get(f"{key}_after")
        if isinstance(b, (int, float)) and isinstance(a, (int, float)):
            return f"{a - b:+.4f}"
        return None

    def label(name):
        bad = infeasible[name]
        return f"{name} (infeasible for {', '.join(bad)}: not a recalibration there)" if bad else name

    effect = [{"method": label(name), "FN": change(m, "fn"), "FP": change(m, "fp"), "recall": change(m, "recall"),
               "precision": change(m, "precision"), "recall gap (max - min)": change(m, "recall_gap"),
               "recall gap change": delta(m, "recall_gap"), "relative_change_pct": m.get("recall_gap_change_pct")}
              for name, m in methods.items() if m.get("status", "ok") == "ok"]
    if effect:
        parts.append(make_table(
            f"Effect on the held-out images (n = {n_test}), before \u2192 after; recall gap = max - min of recall "
            f"over the {noun}s, its change in absolute recall (after - before), and relative to the gap before",
            effect, source=f"{source}.methods",
            labels={"recall gap change": "recall gap change (absolute)",
                    "relative_change_pct": "relative change of the gap"}))
    per_group = []
    for name, m in methods.items():
        for r in m.get("per_group") or []:
            if isinstance(r, dict):
                g = r.get("group")
                per_group.append({"method": name, "group": g, "n": r.get("n"), "malignant": r.get("n_pos"),
                                  "FN": change(r, "fn"), "FP": change(r, "fp"), "recall": change(r, "recall"),
                                  "precision": change(r, "precision"),
                                  "search": "infeasible: fallback threshold" if g in infeasible[name] else ""})
    if per_group:
        parts.append(make_table(f"Per {noun}, before \u2192 after each recalibration (held-out images)", per_group,
                                source=f"{source}.methods.*.per_group"))
    boot = (methods.get("global") or {}).get("bootstrap")
    if isinstance(boot, dict):
        parts.extend(generic_parts("bootstrap", boot, source=f"{source}.methods.global.bootstrap",
                                   caption="Bootstrap of the global threshold search (spread of t* and of the "
                                           "recall it reaches on the held-out images)"))
    used = {"methods", "threshold", "gamma", "step", "n_cal", "n_test", "random_state", "fitted_on", "reported_on",
            "calibration_source", "tables:recalibration"}
    return parts, used, notes


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




#: Label of the "all" column or row: which images it covers, per section.
ALL_LABELS = {"fairness": "all audited images (incl. unknown)",
              "recalibration": "all held-out images"}


def _label_all_column(parts: list, sid: str) -> None:
    """Say which images an "all" column or row covers (Table 8: every audited image; recalibration: the
    held-out part of the audited images)."""
    label = ALL_LABELS.get(sid)
    if not label:
        return
    for part in parts:
        for col in part.get("columns", []):
            if col["key"] == "all":
                col["label"] = label
        gcol = next((j for j, c in enumerate(part.get("columns", [])) if c["key"] == "group"
                     or str(c["key"]).endswith(" group")), None)
        if gcol is not None:
            for row in part["rows"]:
                if row[gcol]["v"] == "all":
                    row[gcol]["v"] = label


def _skintone_parts(sec: dict, source: str, result=None):
    """The ITA estimator's scalars and small counts (unknown by reason, mask source, artifacts,
    uncertainty, cast) in one item/value table; lists of records (per cast group) and the
    sensitivity tables keep their own tables."""
    rows, tables = [], []

    def add(prefix, d, depth):
        for k, v in d.items():
            if isinstance(v, _SCALARS) or (isinstance(v, list) and all(isinstance(x, _SCALARS) for x in v)):
                rows.append({"item": f"{prefix}{pretty(k)}", "value": v})
            elif is_records(v):
                tables.append(make_table(f"{prefix}{pretty(k)}".strip(": "), v, source=f"{source}.{k}"))
            elif isinstance(v, dict) and depth < 2:
                add(f"{prefix}{pretty(k)}: ", v, depth + 1)
            else:
                rows.append({"item": f"{prefix}{pretty(k)}", "value": str(v)})
    add("", {k: v for k, v in sec.items() if k not in ("sensitivity", "notes")}, 0)
    parts = [make_table("The ITA estimator: method, counts and settings", rows, columns=["item", "value"],
                        source=source), *tables]
    sens = sec.get("sensitivity")
    if isinstance(sens, dict):
        parts.extend(generic_parts("sensitivity", sens, source=f"{source}.sensitivity",
                                   caption="Sensitivity sample"))
    return parts, set(sec)


_SCALARS = (str, int, float, bool, type(None))


def _num(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _degrees(value):
    """A target ITA as a whole number of degrees when it is one (60.0 -> 60)."""
    v = _num(value)
    return int(v) if v is not None and float(v).is_integer() else value


def _counterfactual_parts(sec: dict, source: str, result=None):
    """The counterfactual test (:func:`skinaudit.counterfactual_stats.counterfactual_test`): the
    verdict with its signed effect, one row per skin colour (the original first), the paired tests,
    the mean score per class and level, and the images left out with their reason."""
    levels = sec.get("levels")
    if not is_records(levels) or not levels:
        return None
    light, dark = levels[0].get("target_ita"), levels[-1].get("target_ita")
    targets = [lv.get("target_ita") for lv in levels if _num(lv.get("target_ita")) is not None]
    if targets:
        light, dark = max(targets), min(targets)
    effect = _num(sec.get("effect"))
    if effect is None:
        direction = "n/a"
    else:
        where = f"ITA {dark:g}" if effect > 0 else f"ITA {light:g}"
        direction = (f"{effect:+.4f} (mean score at ITA {dark:g} minus at ITA {light:g}; "
                     + ("no change" if effect == 0 else f"higher at {where}") + ")")
    rows = [{"item": "verdict", "value": sec.get("verdict")},
            {"item": "effect on the mean score", "value": direction},
            {"item": "practical margin", "value": sec.get("margin")},
            {"item": "alpha", "value": sec.get("alpha")},
            {"item": "images recoloured and scored", "value": f"{sec.get('n')} of {sec.get('n_sampled')} sampled"},
            {"item": "decision threshold", "value": sec.get("threshold")},
            {"item": "rule", "value": sec.get("verdict_rule")}]
    parts = [make_table("Verdict", rows, columns=["item", "value"], source=source)]
    original = sec.get("original") if isinstance(sec.get("original"), dict) else {}
    per = [{"skin": "as photographed", "target ITA": "original", **original}]
    per += [{"skin": "recoloured", "target ITA": _degrees(lv.get("target_ita")), **lv} for lv in levels]
    parts.append(make_table(
        "Score and decisions per skin colour, the same images at every level (ITA measured: the median of the "
        "recoloured skin as skinaudit's estimator reads it; decisions changed: against the original)",
        per, columns=["skin", "target ITA", "ita_achieved_median", "n", "mean_score", "recall", "fn", "flips"],
        labels={"ita_achieved_median": "ITA measured", "n": "images", "mean_score": "mean score", "fn": "FN",
                "flips": "decisions changed"}, source=f"{source}.levels"))
    p_raw = sec.get("p_values") if isinstance(sec.get("p_values"), dict) else {}
    p_adj = sec.get("p_adjusted") if isinstance(sec.get("p_adjusted"), dict) else {}
    table = sec.get("mcnemar_table")
    counts = None
    if isinstance(table, list) and len(table) == 2 and all(isinstance(r, list) and len(r) == 2 for r in table):
        counts = (f"malignant at both {table[0][0]}, only at ITA {light:g} {table[0][1]}, only at ITA {dark:g} "
                  f"{table[1][0]}, at neither {table[1][1]}")
    tests = [{"test": "McNemar exact", "compares": f"decisions at ITA {light:g} vs {dark:g}",
              "p_value": p_raw.get("mcnemar"), "p_adjusted": p_adj.get("mcnemar"), "note": counts},
             {"test": "Wilcoxon signed-rank", "compares": f"scores at ITA {light:g} vs {dark:g}",
              "p_value": p_raw.get("wilcoxon"), "p_adjusted": p_adj.get("wilcoxon"),
              "note": sec.get("wilcoxon_undefined")}]
    parts.append(make_table("Paired tests between the lightest and the darkest level (Holm-adjusted over the two)",
                            tests, columns=["test", "compares", "p_value", "p_adjusted", "note"],
                            labels={"p_value": "p", "p_adjusted": "p (Holm)"}, source=source))
    dose = sec.get("dose_response") if isinstance(sec.get("dose_response"), dict) else {}
    if dose and all(is_records(v) for v in dose.values()):
        by_level = {}
        for name, curve in dose.items():
            for pt in curve:
                row = by_level.setdefault(pt.get("target_ita"), {"target ITA": _degrees(pt.get("target_ita"))})
                row[f"{name} (n)"] = pt.get("n")
                row[name] = {"_est_ci": [pt.get("mean_score"), pt.get("low"), pt.get("high")]}
        alpha = _num(sec.get("alpha"))
        level = f"{100 * (1 - alpha):g}%" if alpha is not None else "1 - alpha"
        parts.append(make_table(f"Mean score per class and level with a {level} bootstrap interval over images "
                                "(the figure below)", list(by_level.values()), source=f"{source}.dose_response"))
    skipped = sec.get("skipped")
    if is_records(skipped) and skipped:
        parts.append(make_table("Sampled images not recoloured, with the reason", skipped,
                                source=f"{source}.skipped"))
    used = {"levels", "original", "effect", "verdict", "margin", "alpha", "n", "n_sampled", "threshold",
            "verdict_rule", "p_values", "p_adjusted", "mcnemar_table", "wilcoxon_undefined", "dose_response",
            "skipped", "summary"}
    own = sec.get("notes") if isinstance(sec.get("notes"), list) else []
    notes = ([str(sec["summary"])] if sec.get("summary") else []) + [str(n) for n in own]
    return parts, used, notes


_SPECIAL_VIEWS = {"fairness": _fairness_parts, "recalibration": _recalibration_parts, "groups": _groups_parts,
                  "failure_modes": _failure_parts, "skintone": _skintone_parts,
                  "counterfactual": _counterfactual_parts}


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
    # a curated view sees the section's own notes (it states which it keeps); they are never "other values"
    curated = special({**rest, "notes": notes}, source, result) if special else None
    used = set()
    if curated is not None:
        if len(curated) == 3:  # the view states its own notes
            parts, used, view["notes"] = curated
        else:
            parts, used = curated
        view["parts"].extend(parts)
        rest = {k: v for k, v in rest.items() if k not in used}
    tables = sec.get("tables") if isinstance(sec.get("tables"), dict) else {}
    table_parts = []
    for name, records in tables.items():
        if f"tables:{name}" not in used:
            caption = TABLE_CAPTIONS.get(name)
            table_parts.extend(generic_parts(name, records, source=f"{source}.tables.{name}",
                                              caption=caption.replace("ITA group", group_noun(result))
                                              if caption else None))
    # the paper-layout tables (Tables 6, 7, 8) lead their section
    view["parts"][:0] = table_parts
    _label_all_column(view["parts"], sid)
    if rest:
        view["parts"].extend(generic_parts(title, rest, source=source,
                                            caption="Other values" if curated is not None else None))
    return view
