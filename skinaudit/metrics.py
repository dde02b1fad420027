"""Classification metrics at a stated threshold.

A case is predicted malignant when ``score >= threshold``. Undefined values (a ratio whose
denominator is zero, an AUC with one class) are NaN, never 0.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError, DataError

__all__ = ["confusion_counts", "metrics_from_counts", "binary_metrics", "check_threshold"]


def check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not math.isfinite(t) or not 0.0 <= t <= 1.0:
        raise ConfigError(f"the 'threshold' parameter must be in [0, 1]; got {threshold}")
    return t


def _as_binary(y_true, y_score):
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise DataError(f"labels and scores must be 1-D of the same length; got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0 (benign) or 1 (malignant)")
    if not np.all(np.isfinite(s)) or (s.size and (s.min() < 0 or s.max() > 1)):
        raise DataError("scores must be finite probabilities in [0, 1]")
    return y.astype(int), s


def confusion_counts(y_true, y_score, *, threshold: float = 0.5) -> dict:
    """``tp, fn, tn, fp`` with positives predicted where ``score >= threshold``."""
    y, s = _as_binary(y_true, y_score)
    pred = s >= check_threshold(threshold)
    return {"tp": int(np.sum(pred & (y == 1))), "fn": int(np.sum(~pred & (y == 1))),
            "tn": int(np.sum(~pred & (y == 0))), "fp": int(np.sum(pred & (y == 0)))}


def _ratio(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def metrics_from_counts(tp: int, fn: int, tn: int, fp: int) -> dict:
    """Recall (sensitivity), precision (PPV), F1, accuracy, specificity, FNR from counts.

    F1 = 2 TP / (2 TP + FP + FN). NaN where a denominator is zero.
    """
    n = tp + fn + tn + fp
    return {
        "n": int(n), "recall": _ratio(tp, tp + fn), "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn), "accuracy": _ratio(tp + tn, n),
        "specificity": _ratio(tn, tn + fp), "fnr": _ratio(fn, tp + fn),
        "tp": int(tp), "fn": int(fn), "tn": int(tn), "fp": int(fp),
    }


def auc_score(y_true, y_score) -> float:
    """ROC AUC (scikit-learn); NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, s = _as_binary(y_true, y_score)
    if y.min(initial=0) == y.max(initial=0):
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
