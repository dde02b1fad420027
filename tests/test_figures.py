"""Figures: the threshold sweep behind the metric-vs-threshold curves is the package's one
sweep (skinaudit.thresholds.threshold_curve), with the numbers the figures always drew.

The drawing tests (deterministic PNGs, input validation, the sweep's known answer) live in
test_report.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from skinaudit import figures as F
from skinaudit.errors import ConfigError, DataError
from skinaudit.thresholds import threshold_curve


def frozen_sweep(y, s, step):
    """Frozen copy of figures.threshold_sweep before it called thresholds.threshold_curve."""
    grid = np.round(np.arange(0, 1 + step / 2, step), 10)
    pred = s[None, :] >= grid[:, None]
    pos = y[None, :] == 1
    tp = (pred & pos).sum(1).astype(float)
    fp = (pred & ~pos).sum(1).astype(float)
    fn = (~pred & pos).sum(1).astype(float)
    tn = (~pred & ~pos).sum(1).astype(float)

    def ratio(a, b):
        out = np.full(a.shape, np.nan)
        np.divide(a, b, out=out, where=b > 0)
        return out

    return {"threshold": grid, "recall": ratio(tp, tp + fn), "precision": ratio(tp, tp + fp),
            "f1": ratio(2 * tp, 2 * tp + fp + fn), "specificity": ratio(tn, tn + fp)}


@pytest.mark.parametrize("step", [0.01, 0.02, 0.05, 0.1, 0.125, 0.2, 0.25, 0.5, 0.3, 0.001])
@pytest.mark.parametrize("n,only_benign", [(1, False), (40, False), (500, False), (60, True)])
def test_sweep_is_bit_identical_to_the_old_sweep(step, n, only_benign):
    rng = np.random.default_rng(n)
    y = np.zeros(n, int) if only_benign else rng.integers(0, 2, n)
    s = np.round(rng.random(n), 2)                         # scores on grid values: >= matters
    old, new = frozen_sweep(y, s, step), F.threshold_sweep(y, s, step=step)
    assert list(new) == list(old)
    for k in old:
        assert new[k].dtype == old[k].dtype and np.array_equal(new[k], old[k], equal_nan=True), k


def test_sweep_stops_at_one():
    # the old grid ran past 1 when the step does not divide 1 (0.35 -> ..., 0.7, 1.05)
    assert list(F.threshold_sweep([0, 1], [0.2, 0.8], step=0.35)["threshold"]) == [0.0, 0.35, 0.7]


def test_sweep_is_the_thresholds_curve_from_zero():
    rng = np.random.default_rng(2)
    y, s = rng.integers(0, 2, 300), rng.random(300)
    sw = F.threshold_sweep(y, s, step=0.02)
    curve = threshold_curve(y, s, step=0.02, include_zero=True)
    for k in ("threshold", "recall", "precision", "f1"):
        np.testing.assert_array_equal(sw[k], curve[k].to_numpy())
    np.testing.assert_array_equal(sw["specificity"], curve["tn"] / (curve["tn"] + curve["fp"]))


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"step": 0.6}, ConfigError, r"'step' parameter must be in \(0, 0.5\]"),
    ({"step": "0.1"}, ConfigError, "'step' parameter must be a number"),
    ({"y_true": [], "y_score": []}, DataError, "at least one scored image"),
    ({"y_true": [0, 1, 1], "y_score": [0.1, 0.2]}, DataError, "same length"),
])
def test_sweep_validates(kwargs, exc, match):
    args = {"y_true": [0, 1], "y_score": [0.2, 0.8], **kwargs}
    with pytest.raises(exc, match=match):
        F.threshold_sweep(args.pop("y_true"), args.pop("y_score"), **args)
