"""The fairness and recalibration sections of an audit, each from one call.

:func:`fairness_report` builds the per-group table, gaps, intervals, tests and verdicts (and
the paper's fixed-gap heuristic, labelled as such); :func:`recalibrate` fits threshold
searches on a calibration split and reports what they change on the test split. Both return a
:class:`SectionResult`: a JSON-safe ``section`` dict (NaN written as None, with the reason
beside it) for ``metrics.json`` and ``tables`` (name -> DataFrame) for the CSV files. The
layouts are documented in ``docs/statistics.md``.
"""
from __future__ import annotations

import logging
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as _st

from ._jsonsafe import json_safe
from .data import preview
from .errors import DataError
from .metrics import (COUNT_COLUMNS, PAPER_GAP_RULE, RATE_METRICS, UNDEFINED_REASONS, check_threshold,
                      choose_reference, gap, group_metrics, max_min, paper_rule, paper_table)
from .stats import (adjust_pvalues, delong_auc, delong_unpaired, min_detectable_difference, newcombe_interval,
                    percentile_interval, permutation_test, proportion_test, stratified_bootstrap, verdict,
                    wilson_interval)
from .thresholds import (FairlearnThresholds, GroupRecallThresholds, RecallConstrainedThreshold, bootstrap_threshold,
                         evaluate_thresholds)
from .validation import check_bounded, check_choice, check_int, check_labels_scores, check_param

__all__ = ["SectionResult", "fairness_report", "recalibrate", "threshold_change", "PAPER_RULE_LABEL"]

log = logging.getLogger(__name__)

PAPER_RULE_LABEL = ("paper heuristic: a gap is flagged when |gap| > 0.02 (AUC) or > 0.05 (other metrics); "
                    "a fixed threshold on a point estimate, not a statistical test")

#: (successes, trials) columns of each proportion, for Wilson / Newcombe / Fisher.
_PROPORTIONS = {"recall": ("tp", "n_pos"), "fnr": ("fn", "n_pos"), "precision": ("tp", "n_pred_pos"),
                "specificity": ("tn", "n_neg"), "accuracy": ("correct", "n")}
#: Contrasts tested (FNR = 1 - recall carries the same test as recall and is not tested twice).
_TESTED = ("auc", "recall", "precision", "f1", "specificity", "accuracy")


class SectionResult(NamedTuple):
    """``section``: JSON-safe dict for metrics.json; ``tables``: name -> DataFrame for CSV."""

    section: dict
    tables: dict


def _seeds(random_state: int, k: int) -> list[int]:
    """k independent child seeds of ``random_state`` (numpy SeedSequence)."""
    seed = check_int(random_state, "random_state", low=0)
    return [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(seed).spawn(k)]


def _with_derived(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    t["n_pred_pos"] = t["tp"] + t["fp"]
    t["correct"] = t["tp"] + t["tn"]
    return t


# ------------------------------------------------------------------------------- fairness
def fairness_report(y_true, y_score, groups, *, threshold: float, reference=None, alpha: float = 0.05,
                    n_boot: int = 2000, n_perm: int | None = None, random_state: int = 0, min_positives: int = 10,
                    max_ci_width: float = 0.3, power: float = 0.8, primary=("recall", "auc"),
                    descriptive=(), progress=None) -> SectionResult:
    """Per-group metrics with intervals, gaps, tests and verdicts at one threshold.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n,)
    y_score : array-like of float in [0, 1], shape (n,)
        P(malignant); predicted malignant when ``score >= threshold``.
    groups : array-like, shape (n,)
        Group per case (e.g. ITA group); a pandas Categorical keeps its order.
    threshold : float in [0, 1]
        The audit threshold (the one every other table uses).
    reference : str, optional
        Group every other group is compared with; default the largest group.
    alpha : float in (0, 1)
        Level of every interval (1 - alpha) and test.
    n_boot : int
        Stratified (group x label) bootstrap replicates.
    n_perm : int, optional
        Permutations per contrast (default ``n_boot``).
    random_state : int
        Seed; the bootstrap and the permutations use independent child seeds of it.
    min_positives : int
        A contrast whose groups have fewer malignant cases than this is "insufficient data".
    max_ci_width : float
        A contrast whose interval is wider than this is "insufficient data".
    power : float in (0, 1)
        Power of the minimum detectable difference.
    primary : sequence of str
        Metrics whose contrasts form the primary family (Holm); the other tested metrics
        (AUC, recall, precision, F1, specificity, accuracy) form the exploratory family
        (Benjamini-Hochberg).
    descriptive : sequence of str
        Groups shown with their metrics and intervals but never compared (no gap, test or
        verdict, not in the max-min spread, never the reference): e.g. ``unknown``, the images
        whose skin tone could not be measured. Their row says so (``compared: false``).
    progress : callable, optional
        ``progress(iterable, total=, desc=)`` wrapper for the loop over contrasts.

    Returns
    -------
    SectionResult
        ``section`` keys: ``threshold, alpha, n_boot, n_perm, random_state, reference,
        min_positives, max_ci_width, power, groups, gaps, max_min, tests, verdicts, paper_rule,
        notes, tables``; ``tables``: ``fairness_groups``, ``fairness_table8``,
        ``fairness_gaps``, ``fairness_tests`` (DataFrames). See docs/statistics.md.
    """
    t = check_threshold(threshold)
    alpha = check_param(alpha, "alpha")
    n_boot = check_int(n_boot, "n_boot", low=1)
    n_perm = n_boot if n_perm is None else check_int(n_perm, "n_perm", low=1)
    min_positives = check_int(min_positives, "min_positives", low=0)
    check_bounded(max_ci_width, "max_ci_width", 0.0, math.inf, low_open=True, high_open=True)
    for met in primary:
        check_choice(met, "primary", _TESTED)
    y, s = check_labels_scores(y_true, y_score)
    table = group_metrics(y, s, groups, threshold=t)
    shown_only = [str(i) for i in table.index if str(i) in {str(d) for d in descriptive}]
    ref = choose_reference(table.drop(index=shown_only), reference)
    names = [str(i) for i in table.index if str(i) != "all" and str(i) not in shown_only]
    others = [g for g in names if g != ref]
    if not others:
        raise DataError("a fairness comparison needs at least two groups; the data has one")
    g_arr = np.array([str(x) for x in np.asarray(groups, dtype=object)])
    boot_seed, perm_seed = _seeds(random_state, 2)
    boot = stratified_bootstrap(y, s, g_arr, threshold=t, n_boot=n_boot, random_state=boot_seed)
    col = {name: i for i, name in enumerate(boot["groups"])}
    col["all"] = len(boot["groups"])
    z = float(_st.norm.ppf(1 - alpha / 2))
    tab = _with_derived(table)

    # ---- per group
    group_out = {}
    for name in names + shown_only + ["all"]:
        row = tab.loc[name]
        m = np.ones(y.size, bool) if name == "all" else g_arr == name
        auc, var = delong_auc(y[m], s[m])
        ci = {}
        for met in RATE_METRICS + COUNT_COLUMNS:
            entry = {"bootstrap": percentile_interval(boot["values"][met][:, col[name]], alpha=alpha)}
            if met in _PROPORTIONS:
                k, nn = _PROPORTIONS[met]
                entry["wilson"] = list(wilson_interval(row[k], row[nn], alpha=alpha))
            if met == "auc":
                se = math.sqrt(var) if math.isfinite(var) else float("nan")
                entry["delong"] = [max(0.0, auc - z * se), min(1.0, auc + z * se)]
                entry["delong_se"] = se
            ci[met] = entry
        group_out[name] = {
            **{c: int(row[c]) for c in ("n", "n_pos", "n_neg") + COUNT_COLUMNS},
            **{met: float(row[met]) for met in RATE_METRICS},
            "undefined": {met: r for met, r in _reasons(row).items()},
            "ci": ci,
            **({"compared": False} if name in shown_only else {}),
        }

    # ---- gaps against the reference and max-min
    vals = boot["values"]
    gap_rows, spreads = [], {}
    for met in RATE_METRICS + ("fn", "fp"):
        for g in others:
            d_boot = gap(vals[met][:, col[g]], vals[met][:, col[ref]])
            d = gap(tab.loc[g, met], tab.loc[ref, met])
            rec = {"metric": met, "group": g, "reference": ref, "value": float(tab.loc[g, met]),
                   "reference_value": float(tab.loc[ref, met]), "difference": d,
                   **_prefixed("boot", percentile_interval(d_boot, alpha=alpha)),
                   "analytic_low": float("nan"), "analytic_high": float("nan"), "analytic_method": None,
                   "paper_flag": None if met in COUNT_COLUMNS else paper_rule(met, d)}
            if met in _PROPORTIONS:
                k, nn = _PROPORTIONS[met]
                _, lo, hi = newcombe_interval(tab.loc[g, k], tab.loc[g, nn], tab.loc[ref, k], tab.loc[ref, nn],
                                              alpha=alpha)
                rec.update(analytic_low=lo, analytic_high=hi, analytic_method="newcombe")
            elif met == "auc":
                dl = _delong_pair(y, s, g_arr, g, ref, alpha)
                rec.update(analytic_low=dl["ci"][0], analytic_high=dl["ci"][1], analytic_method="delong_unpaired")
            gap_rows.append(rec)
        mm_boot = max_min(vals[met][:, [col[g] for g in names]], axis=1)
        mm = max_min(tab.loc[names, met].to_numpy(dtype=float))
        spreads[met] = {"value": mm, **_prefixed("boot", percentile_interval(mm_boot, alpha=alpha)),
                        "paper_flag": None if met in COUNT_COLUMNS else paper_rule(met, mm)}
    gaps = pd.DataFrame(gap_rows)

    # ---- tests, multiplicity, verdicts
    test_rows = []
    iterator = others if progress is None else progress(others, total=len(others), desc="fairness tests")
    for g in iterator:
        perm = permutation_test(y, s, g_arr, g, ref, threshold=t, n_perm=n_perm, random_state=perm_seed,
                                metrics=_TESTED)
        for met in _TESTED:
            gap_row = gaps[(gaps.metric == met) & (gaps.group == g)].iloc[0]
            test_rows.append(_test_row(tab, y, s, g_arr, g, ref, met, gap_row, perm[met], alpha, power, z, primary))
    tests = pd.DataFrame(test_rows)
    tests["p_adjusted"] = np.nan
    for fam, method in (("primary", "holm"), ("exploratory", "fdr_bh")):
        sel = tests["family"] == fam
        if sel.any():
            tests.loc[sel, "p_adjusted"] = adjust_pvalues(tests.loc[sel, "p_value"].to_numpy(), method=method,
                                                          alpha=alpha)
            tests.loc[sel, "correction"] = method
    verdicts, reasons = [], []
    for _, r in tests.iterrows():
        v, why = verdict(r["p_adjusted"], (r["ci_low"], r["ci_high"]), alpha=alpha,
                         n_positives=(r["n_pos_group"], r["n_pos_reference"]), min_positives=min_positives,
                         max_ci_width=float(max_ci_width))
        verdicts.append(v)
        reasons.append(why)
    tests["verdict"], tests["reason"] = verdicts, reasons

    # ---- paper heuristic, notes, tables
    paper = {"label": PAPER_RULE_LABEL, "limits": dict(PAPER_GAP_RULE),
             "flags": {met: {g: paper_rule(met, gap(tab.loc[g, met], tab.loc[ref, met])) for g in others}
                       for met in RATE_METRICS},
             "max_min_flags": {met: spreads[met]["paper_flag"] for met in RATE_METRICS}}
    notes = _notes(tab, names, min_positives, boot, col)
    notes += _interval_notes(group_out, gap_rows, spreads, alpha)
    t8 = paper_table(table, reference=ref, descriptive=shown_only)
    section = {
        "threshold": t, "alpha": alpha, "n_boot": n_boot, "n_perm": n_perm, "random_state": int(random_state),
        "reference": ref, "min_positives": min_positives, "max_ci_width": float(max_ci_width), "power": float(power),
        "primary": list(primary), "groups": group_out,
        "gaps": {met: {r["group"]: {k: r[k] for k in r.index if k not in ("metric", "group")}
                       for _, r in gaps[gaps.metric == met].iterrows()} for met in gaps.metric.unique()},
        "max_min": spreads,
        "tests": tests.to_dict(orient="records"),
        "verdicts": {met: {r["group"]: r["verdict"] for _, r in tests[tests.metric == met].iterrows()}
                     for met in _TESTED},
        "paper_rule": paper, "notes": notes,
        "tables": {"table8": t8.to_dict(orient="records")},
    }
    tables = {"fairness_groups": table.reset_index(), "fairness_table8": t8, "fairness_gaps": gaps,
              "fairness_tests": tests}
    return SectionResult(json_safe(section), tables)


def _prefixed(prefix: str, interval: dict) -> dict:
    return {f"{prefix}_{k}": v for k, v in interval.items()}


def _reasons(row) -> dict:
    return {m: UNDEFINED_REASONS[m] for m in RATE_METRICS if not np.isfinite(row[m])}


def _delong_pair(y, s, g_arr, g, ref, alpha) -> dict:
    a, b = g_arr == g, g_arr == ref
    return delong_unpaired(y[a], s[a], y[b], s[b], alpha=alpha)


def _test_row(tab, y, s, g_arr, g, ref, met, gap_row, perm, alpha, power, z, primary) -> dict:
    """One contrast: analytic test and interval where one exists, else permutation / bootstrap."""
    n1, n2 = int(tab.loc[g, "n_pos"]), int(tab.loc[ref, "n_pos"])
    row = {"metric": met, "group": g, "reference": ref, "difference": gap_row["difference"],
           "family": "primary" if met in primary else "exploratory", "correction": None,
           "n_pos_group": n1, "n_pos_reference": n2, "p_permutation": perm["p_value"]}
    if met in _PROPORTIONS:
        k, nn = _PROPORTIONS[met]
        pt = proportion_test(tab.loc[g, k], tab.loc[g, nn], tab.loc[ref, k], tab.loc[ref, nn])
        row.update(test=pt["method"], p_value=pt["p_value"], ci_low=gap_row["analytic_low"],
                   ci_high=gap_row["analytic_high"], ci_method="newcombe",
                   mdd=min_detectable_difference(float(tab.loc[ref, met]), int(tab.loc[ref, nn]), int(tab.loc[g, nn]),
                                                 alpha=alpha, power=power))
    elif met == "auc":
        dl = _delong_pair(y, s, g_arr, g, ref, alpha)
        mdd = (z + float(_st.norm.ppf(power))) * dl["se"]
        row.update(test="delong_unpaired_z", p_value=dl["p_value"], ci_low=dl["ci"][0], ci_high=dl["ci"][1],
                   ci_method="delong", mdd=mdd)
    else:
        row.update(test="permutation", p_value=perm["p_value"], ci_low=gap_row["boot_low"],
                   ci_high=gap_row["boot_high"], ci_method="bootstrap_percentile", mdd=float("nan"))
    return row


def _interval_notes(group_out, gap_rows, spreads, alpha) -> list[str]:
    """A note when a bootstrap percentile interval does not contain its own estimate."""
    def outside(est, low, high):
        return all(np.isfinite([est, low, high])) and not low <= est <= high

    missed = [f"{met} of '{g}'" for g, out in group_out.items() for met, c in out["ci"].items()
              if met in out and outside(out[met], c["bootstrap"]["low"], c["bootstrap"]["high"])]
    missed += [f"{r['metric']} gap '{r['group']}' - '{r['reference']}'" for r in gap_rows
               if outside(r["difference"], r["boot_low"], r["boot_high"])]
    missed += [f"{met} max - min" for met, r in spreads.items() if outside(r["value"], r["boot_low"], r["boot_high"])]
    if not missed:
        return []
    return [f"{len(missed)} bootstrap percentile interval(s) do not contain their own estimate ({preview(missed, 3)}): "
            f"a percentile interval is the middle {1 - alpha:.0%} of the bootstrap replicates, and for a skewed or "
            "biased statistic (a max - min gap, a rate near 0 or 1 in a small group) it can lie beside the estimate; "
            "read it as the spread of the replicates, not as bounds round the estimate"]


def _notes(tab, names, min_positives, boot, col) -> list[str]:
    notes = []
    for g in names:
        k = int(tab.loc[g, "n_pos"])
        if k < min_positives:
            notes.append(f"ITA group '{g}' has only {k} malignant cases (floor {min_positives}): its contrasts are "
                         "reported as insufficient data, with the smallest difference the data could detect")
    for met in ("precision", "f1"):
        for g in names:
            bad = int(np.isnan(boot["values"][met][:, col[g]]).sum())
            if bad:
                notes.append(f"{met} of group '{g}' is undefined in {bad} of {boot['n_boot']} bootstrap replicates; "
                             "its interval is conditional on the defined replicates")
    notes.append("intervals: Wilson (proportions), DeLong (AUC), Newcombe (differences of proportions), "
                 "percentile bootstrap stratified by group x label (every metric and gap)")
    return notes


# -------------------------------------------------------------------------- recalibration
def threshold_change(y_true, y_score, groups, *, before: float, after: float) -> dict:
    """What moving one global threshold from ``before`` to ``after`` does, per group.

    Returns
    -------
    dict
        ``before, after, fn_before, fn_after, fp_before, fp_after, recall_gap_before,
        recall_gap_after, recall_gap_change_pct, recall_before, recall_after, precision_before,
        precision_after, per_group`` (records: ``group, n, n_pos, fn_before, fn_after, fp_before,
        fp_after, recall_before, recall_after, precision_before, precision_after, delta_fn,
        delta_fp``; the last record is ``all``). The recall gap is max - min recall over the groups;
        ``recall_gap_change_pct = 100 (after - before) / before`` (NaN when the gap was 0). With
        no groups (every case in the group ``all``) the gaps are NaN and ``per_group`` is ``all``.
    """
    y, s = check_labels_scores(y_true, y_score)
    b, a = check_threshold(before), check_threshold(after)
    return _compare(y, groups, (s >= b).astype(int), (s >= a).astype(int), {"before": b, "after": a})


def _compare(y, groups, pred_before, pred_after, extra: dict) -> dict:
    eb = evaluate_thresholds(y, pred_before, groups).set_index("group")
    ea = evaluate_thresholds(y, pred_after, groups).set_index("group")
    grp = [g for g in eb.index if g != "all"]
    if grp:
        gb, ga = (max_min(e.loc[grp, "recall"].to_numpy(dtype=float)) for e in (eb, ea))
    else:  # data without groups: no gap between groups to report
        gb = ga = float("nan")
    per_group = _before_after(eb, ea)
    out = dict(extra)
    out.update(fn_before=int(eb.loc["all", "fn"]), fn_after=int(ea.loc["all", "fn"]),
               fp_before=int(eb.loc["all", "fp"]), fp_after=int(ea.loc["all", "fp"]),
               recall_before=float(eb.loc["all", "recall"]), recall_after=float(ea.loc["all", "recall"]),
               precision_before=float(eb.loc["all", "precision"]), precision_after=float(ea.loc["all", "precision"]),
               recall_gap_before=gb, recall_gap_after=ga,
               recall_gap_change_pct=100.0 * gap(ga, gb) / gb if gb > 0 else float("nan"),
               per_group=per_group.to_dict(orient="records"))
    return out


def _before_after(eb: pd.DataFrame, ea: pd.DataFrame) -> pd.DataFrame:
    """Per group (and all): n_pos, fn, recall, precision, fp before and after, and the deltas."""
    rows = []
    for g in eb.index:
        r = {"group": g, "n": int(eb.loc[g, "n"]), "n_pos": int(eb.loc[g, "n_pos"])}
        for k in ("fn", "fp", "recall", "precision"):
            r[f"{k}_before"], r[f"{k}_after"] = eb.loc[g, k], ea.loc[g, k]
        r["delta_fn"] = int(ea.loc[g, "fn"] - eb.loc[g, "fn"])
        r["delta_fp"] = int(ea.loc[g, "fp"] - eb.loc[g, "fp"])
        rows.append(r)
    return pd.DataFrame(rows)


_METHODS = ("global", "per_group", "tpr_parity", "equalized_odds")


def recalibrate(cal_y, cal_score, cal_groups, test_y, test_score, test_groups, *, threshold: float,
                gamma: float = 0.85, step: float = 0.02, grid=None, methods=_METHODS,
                objective: str = "balanced_accuracy_score", n_boot: int = 1000, alpha: float = 0.05,
                random_state: int = 0) -> SectionResult:
    """Fit threshold searches on a calibration split; report their effect on the test split.

    Methods
    -------
    ``global``: one threshold, :class:`~skinaudit.thresholds.RecallConstrainedThreshold`
    (F1-max subject to recall >= gamma), with :func:`~skinaudit.thresholds.bootstrap_threshold`
    (``n_boot`` replicates) evaluated on the test split for the spread of t*.
    ``per_group``: :class:`~skinaudit.thresholds.GroupRecallThresholds`, one threshold per group
    reaching the same gamma (a test group with no calibration case gets the global threshold,
    stated in ``fallback``). ``tpr_parity`` / ``equalized_odds``: fairlearn's
    ThresholdOptimizer (randomised predictions; fixed by ``random_state``).

    Parameters
    ----------
    cal_y, cal_score, cal_groups : array-like, shape (n_cal,)
        Calibration split (fit only).
    test_y, test_score, test_groups : array-like, shape (n_test,)
        Test split (report only).
    threshold : float
        The audit threshold: the "before" of every comparison.
    gamma, step, grid : the recall-constrained search.
    methods : sequence of {"global", "per_group", "tpr_parity", "equalized_odds"}
    objective : fairlearn objective for the constrained methods.
    n_boot, alpha : bootstrap of the global search (replicates, interval level).
    random_state : int

    Returns
    -------
    SectionResult
        ``section``: ``threshold, gamma, step, n_cal, n_test, random_state, methods`` where
        ``methods.<name>`` holds ``status`` ("ok" / "not run"), ``reason``, ``thresholds``,
        ``feasible``, ``randomized`` and the fields of :func:`threshold_change` (``fn_before``,
        ``fn_after``, ``recall_gap_change_pct``, ``per_group`` ...), ``notes`` and ``tables``
        (``recalibration``: list of records); ``tables``:
        ``recalibration`` (one row per method x group) and ``threshold_curve`` (the global
        search's curve on the calibration split).
    """
    t = check_threshold(threshold)
    for name in methods:
        check_choice(name, "methods", _METHODS)
    cy, cs = check_labels_scores(cal_y, cal_score)
    ty, ts = check_labels_scores(test_y, test_score)
    cg = np.array([str(x) for x in np.asarray(cal_groups, dtype=object)])
    tg = np.array([str(x) for x in np.asarray(test_groups, dtype=object)])
    if cg.size != cy.size or tg.size != ty.size:
        raise DataError("every split needs one group per case")
    before = (ts >= t).astype(int)
    out, rows, curve = {}, [], None
    fair_seed, boot_seed = _seeds(random_state, 2)
    for name in methods:
        try:
            if name == "global":
                est = RecallConstrainedThreshold(gamma=gamma, step=step, grid=grid).fit(cy, cs)
                curve = est.curve_
                _, summ = bootstrap_threshold(cy, cs, gamma=gamma, step=step, grid=grid, n_boot=n_boot,
                                              random_state=boot_seed, alpha=alpha, eval_y=ty, eval_score=ts)
                info = {"thresholds": {"all": est.threshold_}, "feasible": est.feasible_,
                        "fallback": est.fallback_, "randomized": False, "bootstrap": summ}
                after = est.predict(ts)
            elif name == "per_group":
                est = GroupRecallThresholds(gamma=gamma, step=step, grid=grid).fit(cy, cs, cg)
                thr, feas, fall = dict(est.thresholds_), dict(est.feasible_), dict(est.fallback_)
                for u in sorted(set(tg) - set(thr)):   # a test group absent from calibration
                    thr[u], feas[u] = est.global_.threshold_, False
                    fall[u] = (f"group '{u}' has no calibration case; it gets the global threshold "
                               f"{est.global_.threshold_:g}")
                    log.warning(fall[u])
                info = {"thresholds": thr, "feasible": feas, "fallback": fall, "randomized": False}
                after = (ts >= np.array([thr[x] for x in tg], dtype=float)).astype(int)
            else:
                cons = "true_positive_rate_parity" if name == "tpr_parity" else "equalized_odds"
                est = FairlearnThresholds(constraints=cons, objective=objective, random_state=fair_seed).fit(cy, cs, cg)
                info = {"thresholds": est.thresholds_, "feasible": None, "fallback": None, "randomized": True,
                        "constraints": cons, "objective": objective,
                        "note": "fairlearn ThresholdOptimizer: randomised mixture of thresholds per group; "
                                "predictions fixed by random_state"}
                after = est.predict(ts, tg)
        except DataError as exc:
            log.warning("recalibration method %s not run: %s", name, exc)
            out[name] = {"status": "not run", "reason": str(exc)}
            continue
        res = _compare(ty, tg, before, after, {"before": t})
        out[name] = {"status": "ok", "reason": None, **info, **res}
        for r in res["per_group"]:
            rows.append({"method": name, **r})
    notes = [f"thresholds fitted on the calibration split ({cy.size} cases) and reported on the test split "
             f"({ty.size} cases); 'before' is the audit threshold {t:g}"]
    if any(out.get(k, {}).get("randomized") for k in ("tpr_parity", "equalized_odds")):
        notes.append("fairness-constrained thresholds (fairlearn ThresholdOptimizer) randomise between two "
                     "thresholds per group; the predictions shown are one draw fixed by random_state")
    notes += [f"{k}: not run ({v['reason']})" for k, v in out.items() if v["status"] != "ok"]
    section = {"threshold": t, "gamma": float(gamma), "step": float(step), "n_cal": int(cy.size),
               "n_test": int(ty.size), "random_state": int(random_state), "fitted_on": "calibration split",
               "reported_on": "test split", "methods": out, "notes": notes,
               "tables": {"recalibration": rows}}
    tables = {"recalibration": pd.DataFrame(rows)}
    if curve is not None:
        tables["threshold_curve"] = curve
    return SectionResult(json_safe(section), tables)
