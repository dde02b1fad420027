"""Classification metrics at a stated threshold, overall and per group.

A case is predicted malignant when ``score >= threshold``. Undefined values (a ratio whose
denominator is zero, an AUC with one class) are NaN, never 0, and per-group tables carry the
reason in an ``undefined`` column.

Per-group tables are computed with fairlearn's ``MetricFrame`` (counts and AUC per group);
every rate is then derived from the counts by :func:`rates_from_counts`, the single place
where the formulas live:

    recall = TP/(TP+FN)     precision = TP/(TP+FP)     F1 = 2TP/(2TP+FP+FN)
    specificity = TN/(TN+FP)     FNR = FN/(TP+FN)     accuracy = (TP+TN)/n

Every gap between groups comes from :func:`gap` (``group - reference``: positive when the
group's metric is higher) and every range over groups from :func:`max_min`.

The paper's "significance" rule (Rumale et al. 2026, Table 8) is a fixed threshold on the gap
between two groups: |gap| > 0.02 for AUC, > 0.05 for every other metric. It is a heuristic,
not a statistical test; :data:`PAPER_GAP_RULE` holds it as data and every output that uses it
says "paper heuristic". Real intervals and tests live in :mod:`skinaudit.stats`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .validation import check_labels_scores, check_param

__all__ = ["confusion_counts", "metrics_from_counts", "binary_metrics", "check_threshold", "auc_score",
           "rates_from_counts", "group_metrics", "choose_reference", "gap", "max_min", "metric_gaps",
           "paper_rule", "paper_table", "PAPER_GAP_RULE", "RATE_METRICS", "COUNT_COLUMNS", "UNDEFINED_REASONS"]

#: The paper's fixed-gap heuristic (not a statistical test): |gap| > value flags a gap.
PAPER_GAP_RULE = {"auc": 0.02, "other": 0.05}
#: Rates reported per group, in table order.
RATE_METRICS = ("auc", "recall", "precision", "f1", "specificity", "fnr", "accuracy")
#: Confusion counts reported per group.
COUNT_COLUMNS = ("tp", "fn", "tn", "fp")
#: Why each rate can be undefined (NaN), one sentence per metric.
UNDEFINED_REASONS = {
    "auc": "AUC is undefined: the group has only one class",
    "recall": "recall is undefined: the group has no malignant case",
    "fnr": "FNR is undefined: the group has no malignant case",
    "precision": "precision is undefined: no case of the group is predicted malignant",
    "specificity": "specificity is undefined: the group has no benign case",
    "f1": "F1 is undefined: the group has no malignant case and none predicted malignant",
    "accuracy": "accuracy is undefined: the group is empty",
}


def check_threshold(threshold) -> float:
    """The decision threshold as a float in [0, 1]
    (:func:`skinaudit.validation.check_param` with ``name="threshold"``)."""
    return check_param(threshold, "threshold")


def confusion_counts(y_true, y_score, *, threshold: float = 0.5) -> dict:
    """``tp, fn, tn, fp`` with positives predicted where ``score >= threshold``."""
    y, s = check_labels_scores(y_true, y_score)
    pred = s >= check_threshold(threshold)
    return {"tp": int(np.sum(pred & (y == 1))), "fn": int(np.sum(~pred & (y == 1))),
            "tn": int(np.sum(~pred & (y == 0))), "fp": int(np.sum(pred & (y == 0)))}


def _ratio(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def rates_from_counts(tp, fn, tn, fp) -> dict:
    """Rates from confusion counts, vectorised (scalars or arrays of any common shape).

    Parameters
    ----------
    tp, fn, tn, fp : int or array-like of int
        True positives, false negatives, true negatives, false positives.

    Returns
    -------
    dict of ndarray (float, same shape as the inputs)
        ``recall = TP/(TP+FN)``, ``precision = TP/(TP+FP)``, ``f1 = 2TP/(2TP+FP+FN)``,
        ``accuracy = (TP+TN)/n``, ``specificity = TN/(TN+FP)``, ``fnr = FN/(TP+FN)``;
        NaN where a denominator is zero.
    """
    tp, fn, tn, fp = (np.asarray(x, dtype=float) for x in (tp, fn, tn, fp))
    return {"recall": _ratio(tp, tp + fn), "precision": _ratio(tp, tp + fp),
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "accuracy": _ratio(tp + tn, tp + fn + tn + fp),
            "specificity": _ratio(tn, tn + fp), "fnr": _ratio(fn, tp + fn)}


def metrics_from_counts(tp: int, fn: int, tn: int, fp: int) -> dict:
    """Recall (sensitivity), precision (PPV), F1, accuracy, specificity, FNR from counts.

    F1 = 2 TP / (2 TP + FP + FN). NaN where a denominator is zero.
    """
    rates = {k: float(v) for k, v in rates_from_counts(tp, fn, tn, fp).items()}
    return {"n": int(tp + fn + tn + fp), **rates, "tp": int(tp), "fn": int(fn), "tn": int(tn), "fp": int(fp)}


def auc_score(y_true, y_score) -> float:
    """ROC AUC (scikit-learn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, s = check_labels_scores(y_true, y_score)
    if y.size == 0 or y.min() == y.max():  # one class: AUC undefined
        return float("nan")
    return float(roc_auc_score(y, s))


def binary_metrics(y_true, y_score, *, threshold: float = 0.5) -> dict:
    """The paper's Table 3 at ``threshold``: ``n, auc, recall, precision, f1, accuracy,
    specificity, fnr, tp, fn, tn, fp, threshold``."""
    counts = confusion_counts(y_true, y_score, threshold=threshold)
    out = {"n": None, "auc": auc_score(y_true, y_score)}
    out.update(metrics_from_counts(**counts))
    out["threshold"] = check_threshold(threshold)
    return out


# ---------------------------------------------------------------------------- per-group tables
def _group_order(groups) -> list[str]:
    """Category order for a pandas Categorical, otherwise sorted names."""
    if isinstance(groups, pd.Categorical) or isinstance(getattr(groups, "dtype", None), pd.CategoricalDtype):
        cats = pd.Categorical(groups).categories
        present = set(pd.Series(np.asarray(groups, dtype=object)).dropna().astype(str))
        return [str(c) for c in cats if str(c) in present]
    return sorted(set(str(x) for x in np.asarray(groups, dtype=object)))


def group_metrics(y_true, y_score, groups, *, threshold: float, overall: str = "all") -> pd.DataFrame:
    """Per-group metrics at ``threshold`` (fairlearn ``MetricFrame`` underneath).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n,)
        1 = malignant.
    y_score : array-like of float in [0, 1], shape (n,)
        P(malignant); predicted malignant when ``score >= threshold``.
    groups : array-like, shape (n,)
        Group name per case (e.g. ITA group). A pandas Categorical keeps its category order;
        otherwise groups are sorted by name. Missing values raise DataError.
    threshold : float in [0, 1]
        The audit threshold.
    overall : str, default "all"
        Name of the extra row computed on all cases; must not be a group name.

    Returns
    -------
    DataFrame indexed by group (then ``overall``)
        ``n, n_pos, n_neg, auc, recall, precision, f1, specificity, fnr, accuracy, tp, fn, tn,
        fp, undefined``; rates NaN where undefined, ``undefined`` the reasons joined by "; "
        ("" when all are defined).
    """
    from fairlearn.metrics import MetricFrame

    t = check_threshold(threshold)
    y, s = check_labels_scores(y_true, y_score)
    g = np.asarray(groups, dtype=object)
    if g.shape != y.shape:
        raise DataError(f"groups must have one entry per case; got {g.shape} for {y.shape[0]} cases")
    if pd.isna(g).any():
        raise DataError("groups contain missing values; drop or label those cases before the audit")
    order = _group_order(groups)
    if overall in order:
        raise ConfigError(f"the 'overall' row name {overall!r} is also a group name; choose another")
    g = np.array([str(x) for x in g], dtype=object)

    def count(label, predicted):
        return lambda yt, ys: int(np.sum((np.asarray(yt) == label) & ((np.asarray(ys) >= t) == predicted)))

    funcs = {"n": lambda yt, ys: int(len(yt)), "n_pos": lambda yt, ys: int(np.sum(np.asarray(yt) == 1)),
             "tp": count(1, True), "fn": count(1, False), "tn": count(0, False), "fp": count(0, True),
             "auc": lambda yt, ys: auc_score(np.asarray(yt), np.asarray(ys))}
    mf = MetricFrame(metrics=funcs, y_true=y, y_pred=s, sensitive_features=pd.Series(g, name="group"))
    table = mf.by_group.reindex(order)
    table.loc[overall] = mf.overall
    table.index.name = "group"
    return _finish_table(table)


def _finish_table(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    for c in ("n", "n_pos"):
        out[c] = table[c].astype(int)
    out["n_neg"] = out["n"] - out["n_pos"]
    out["auc"] = table["auc"].astype(float)
    rates = rates_from_counts(*(table[c].to_numpy(dtype=float) for c in COUNT_COLUMNS))
    for k in RATE_METRICS[1:]:
        out[k] = rates[k]
    for c in COUNT_COLUMNS:
        out[c] = table[c].astype(int)
    out["undefined"] = ["; ".join(UNDEFINED_REASONS[k] for k in RATE_METRICS if not np.isfinite(row[k]))
                        for _, row in out.iterrows()]
    return out


def choose_reference(table: pd.DataFrame, reference=None, *, overall: str = "all") -> str:
    """The reference group: ``reference`` if given (must be a row), else the largest group
    (most cases; ties go to the first in table order)."""
    groups = [str(i) for i in table.index if str(i) != overall]
    if not groups:
        raise DataError("the table has no group rows")
    if reference is not None:
        if str(reference) not in groups:
            raise ConfigError(f"the reference group {reference!r} is not among the groups {groups}")
        return str(reference)
    sizes = table.loc[groups, "n"].to_numpy()
    return groups[int(np.argmax(sizes))]


def gap(value, reference):
    """Gap of a group against the reference group: ``value - reference``.

    The one place a gap is computed (per-group tables, fairness section, bootstrap
    replicates of a gap, the change of a gap by recalibration).

    Parameters
    ----------
    value : float or ndarray of float
        The group's metric (e.g. its recall), or its bootstrap replicates, shape (B,).
    reference : float or ndarray of float
        The reference group's metric, broadcast against ``value``.

    Returns
    -------
    float (scalar inputs) or ndarray of float64
        ``value - reference``, in the metric's units. **Sign convention**: positive when the
        group's metric is *higher* than the reference's (recall: the group catches more
        melanomas; FNR or FN: the group misses more). NaN when either side is undefined.
    """
    d = np.subtract(np.asarray(value, dtype=float), np.asarray(reference, dtype=float))
    return float(d) if d.ndim == 0 else d


def max_min(values, *, axis: int = -1):
    """Spread of a metric over the groups: ``max - min`` along ``axis``.

    Parameters
    ----------
    values : array-like of float, shape (G,) or (B, G)
        One value per group (or per replicate and group); at least one group.
    axis : int
        The group axis.

    Returns
    -------
    float (1-D input) or ndarray of float64 (one per row)
        ``max - min`` >= 0, NaN where any group's value is undefined (the range of the
        defined groups alone would understate it).
    """
    v = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        d = np.where(np.isfinite(v).all(axis=axis), v.max(axis=axis) - v.min(axis=axis), np.nan)
    return float(d) if d.ndim == 0 else d


def paper_rule(metric: str, gap: float) -> bool:
    """The paper's heuristic (not a test): ``|gap| > 0.02`` for AUC, ``> 0.05`` otherwise.

    NaN gaps give False. See :data:`PAPER_GAP_RULE`.
    """
    limit = PAPER_GAP_RULE["auc"] if metric == "auc" else PAPER_GAP_RULE["other"]
    return bool(np.isfinite(gap) and abs(gap) > limit)


def metric_gaps(table: pd.DataFrame, *, reference=None, metrics=RATE_METRICS + ("fn", "fp"),
                overall: str = "all") -> pd.DataFrame:
    """Gaps of every metric against the reference group, and max-min over the groups.

    Parameters
    ----------
    table : DataFrame from :func:`group_metrics`
    reference : str, optional
        Reference group (default: the largest, see :func:`choose_reference`).
    metrics : sequence of str
        Columns of ``table`` to compare.

    Returns
    -------
    DataFrame
        One row per (metric, group != reference): ``metric, group, reference, value,
        reference_value, difference`` (= value - reference_value), ``abs_difference``,
        ``paper_flag`` (the paper heuristic on ``abs_difference``); plus one row per metric with
        ``group="max-min"`` where ``difference`` = max - min over the groups (NaN when a group's
        value is undefined).
    """
    ref = choose_reference(table, reference, overall=overall)
    groups = [str(i) for i in table.index if str(i) != overall]
    rows = []
    for m in metrics:
        rv = float(table.loc[ref, m])
        for g in groups:
            if g == ref:
                continue
            v = float(table.loc[g, m])
            d = gap(v, rv)
            rows.append({"metric": m, "group": g, "reference": ref, "value": v, "reference_value": rv,
                         "difference": d, "abs_difference": abs(d),
                         "paper_flag": None if m in COUNT_COLUMNS else paper_rule(m, d)})
        mm = max_min(table.loc[groups, m].to_numpy(dtype=float))
        rows.append({"metric": m, "group": "max-min", "reference": ref, "value": float("nan"),
                     "reference_value": float("nan"), "difference": mm, "abs_difference": abs(mm),
                     "paper_flag": None if m in COUNT_COLUMNS else paper_rule(m, mm)})
    return pd.DataFrame(rows)


def paper_table(table: pd.DataFrame, *, reference=None, metrics=("auc", "recall", "precision", "f1", "fn", "fnr"),
                overall: str = "all", descriptive=()) -> pd.DataFrame:
    """The layout of the paper's Table 8: rows metric; columns ``all``, each group (reference
    first), ``gap`` and ``significant_paper_rule``.

    With two groups ``gap = |reference - other|`` (as printed in the paper); with more groups
    ``gap`` is max - min over the groups. ``significant_paper_rule`` applies the paper's fixed
    heuristic (0.02 for AUC, 0.05 otherwise; never for counts such as FN, where it is None).
    ``descriptive`` groups (e.g. ``unknown``) get their column, after the compared ones, but
    take no part in ``gap``.
    """
    shown_only = [str(d) for d in descriptive if str(d) in {str(i) for i in table.index}]
    ref = choose_reference(table.drop(index=shown_only), reference, overall=overall)
    groups = [ref] + [str(i) for i in table.index if str(i) not in (overall, ref, *shown_only)]
    rows = []
    for m in metrics:
        vals = table.loc[groups, m].to_numpy(dtype=float)
        spread = max_min(vals)
        vals = np.r_[vals, table.loc[shown_only, m].to_numpy(dtype=float)]
        groups_shown = groups + shown_only
        row = {"metric": m, overall: float(table.loc[overall, m])}
        row.update({g: float(v) for g, v in zip(groups_shown, vals)})
        row["gap"] = spread
        row["significant_paper_rule"] = None if m in COUNT_COLUMNS else paper_rule(m, spread)
        rows.append(row)
    return pd.DataFrame(rows)
