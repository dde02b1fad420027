"""One validator per kind of value: bounds, messages, and every entry point that uses them."""
from __future__ import annotations

import math

import numpy as np
import pytest

from skinaudit import fairness, figures, metrics, stats, thresholds
from skinaudit.errors import ConfigError, DataError
from skinaudit.validation import (BOUNDS, check_bounded, check_choice, check_int, check_labels_scores,
                                  check_param)

Y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
S = np.array([0.1, 0.8, 0.3, 0.6, 0.9, 0.2, 0.4, 0.7])
G = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])


# ------------------------------------------------------------------------------ the checkers
@pytest.mark.parametrize("name,value,match", [
    ("threshold", 1.7, r"the 'threshold' parameter must be in \[0, 1\]; got 1.7"),
    ("threshold", -0.01, r"'threshold' parameter must be in \[0, 1\]"),
    ("alpha", 0.0, r"the 'alpha' parameter must be in \(0, 0.5\]; got 0.0: it is the significance level"),
    ("alpha", 1, r"'alpha' parameter must be in \(0, 0.5\]; got 1"),
    ("alpha", 0.999, r"'alpha' parameter must be in \(0, 0.5\]; got 0.999"),
    ("gamma", 0.0, r"the 'gamma' parameter must be in \(0, 1\]; got 0.0"),
    ("gamma", 1.01, r"'gamma' parameter must be in \(0, 1\]"),
    ("step", 0.7, r"the 'step' parameter must be in \(0, 0.5\]; got 0.7"),
    ("step", 0, r"'step' parameter must be in \(0, 0.5\]"),
    ("keep_top", 0.0, r"'keep_top' parameter must be in \(0, 1\]"),
    ("calibration_fraction", 1.0, r"'calibration_fraction' parameter must be in \(0, 1\)"),
    ("power", 1.0, r"'power' parameter must be in \(0, 1\)"),
    ("alpha", float("nan"), "'alpha' parameter must be a finite number"),
    ("step", math.inf, "'step' parameter must be a finite number"),
    ("threshold", "0.5", "'threshold' parameter must be a number; got '0.5'"),
    ("threshold", True, "'threshold' parameter must be a number"),
    ("gamma", None, "'gamma' parameter must be a number"),
])
def test_check_param_refuses(name, value, match):
    with pytest.raises(ConfigError, match=match):
        check_param(value, name)


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_check_param_accepts_the_closed_ends_only(name):
    low, high, low_open, high_open = BOUNDS[name]
    mid = (low + high) / 2
    assert check_param(np.float64(mid), name) == mid and type(check_param(mid, name)) is float
    for end, is_open in ((low, low_open), (high, high_open)):
        if is_open:
            with pytest.raises(ConfigError, match=name):
                check_param(end, name)
        else:
            assert check_param(end, name) == end


def test_check_param_label_and_unbounded_sides():
    with pytest.raises(ConfigError, match=r"the 'fraction' parameter must be in \(0, 1\); got 1.5"):
        check_param(1.5, "calibration_fraction", label="fraction")
    with pytest.raises(ConfigError, match=r"the 'width' parameter must be in \(0, inf\); got -1"):
        check_bounded(-1, "width", 0, math.inf, low_open=True, high_open=True)
    assert check_bounded(1e9, "width", 0, math.inf, low_open=True, high_open=True) == 1e9


@pytest.mark.parametrize("value,low,match", [
    (0, 1, r"the 'n' parameter must be an integer >= 1; got 0"),
    (2.5, 0, r"'n' parameter must be an integer >= 0; got 2.5"),
    (-1, 0, r"integer >= 0; got -1"),
    ("3", 0, r"integer >= 0; got '3'"),
    (True, 0, r"integer >= 0; got True"),
    (float("nan"), 0, r"integer >= 0; got nan"),
])
def test_check_int_refuses(value, low, match):
    with pytest.raises(ConfigError, match=match):
        check_int(value, "n", low=low)


def test_check_int_and_choice_accept():
    assert check_int(np.int64(3), "n") == 3 and check_int(4.0, "n", low=4) == 4
    assert check_choice("holm", "method", ("holm", "fdr_bh")) == "holm"
    with pytest.raises(ConfigError, match=r"the 'method' parameter must be one of holm, fdr_bh; got 'hs'"):
        check_choice("hs", "method", ("holm", "fdr_bh"))


@pytest.mark.parametrize("y,s,match", [
    ([0, 1], [0.1], "1-D of the same length"),
    ([[0, 1]], [[0.1, 0.2]], "1-D of the same length"),
    ([0, 2], [0.1, 0.2], "labels must be 0"),
    ([0, 1], [0.1, 1.2], "finite probabilities"),
    ([0, 1], [0.1, np.nan], "finite probabilities"),
])
def test_check_labels_scores_refuses(y, s, match):
    with pytest.raises(DataError, match=match):
        check_labels_scores(y, s)


def test_check_labels_scores_returns_ints_and_floats():
    y, s = check_labels_scores([True, False], [1, 0])
    assert y.dtype.kind == "i" and s.dtype == np.float64 and list(y) == [1, 0]


# ------------------------------------------------------- every entry point uses the checkers
@pytest.mark.parametrize("call,match", [
    (lambda: metrics.check_threshold(1.5), r"'threshold' parameter must be in \[0, 1\]; got 1.5"),
    (lambda: metrics.binary_metrics(Y, S, threshold=-1), "'threshold' parameter"),
    (lambda: metrics.group_metrics(Y, S, G, threshold=2), "'threshold' parameter"),
    (lambda: stats.wilson_interval(3, 10, alpha=1.0), r"'alpha' parameter must be in \(0, 0.5\]"),
    (lambda: stats.newcombe_interval(3, 10, 4, 10, alpha=0), "'alpha' parameter"),
    (lambda: stats.delong_unpaired(Y, S, Y, S, alpha=2), "'alpha' parameter"),
    (lambda: stats.percentile_interval([0.1, 0.2], alpha=-0.1), "'alpha' parameter"),
    (lambda: stats.stratified_bootstrap(Y, S, G, threshold=0.5, n_boot=0), "'n_boot' parameter must be an integer >= 1"),
    (lambda: stats.stratified_bootstrap(Y, S, G, threshold=0.5, n_boot=2.5), "'n_boot' parameter"),
    (lambda: stats.stratified_bootstrap(Y, S, G, threshold=1.2), "'threshold' parameter"),
    (lambda: stats.permutation_test(Y, S, G, "a", "b", threshold=0.5, n_perm=0), "'n_perm' parameter"),
    (lambda: stats.adjust_pvalues([0.1], method="bonferroni"), "'method' parameter must be one of holm"),
    (lambda: stats.min_detectable_difference(0.8, 50, 50, power=1.0), r"'power' parameter must be in \(0, 1\)"),
    (lambda: stats.verdict(0.1, (0, 1), alpha=0, n_positives=(5, 5), min_positives=1, max_ci_width=1),
     "'alpha' parameter"),
    (lambda: thresholds.threshold_grid(0.6), r"'step' parameter must be in \(0, 0.5\]; got 0.6"),
    (lambda: thresholds.threshold_curve(Y, S, step=0), "'step' parameter"),
    (lambda: thresholds.search_threshold(Y, S, gamma=0), r"'gamma' parameter must be in \(0, 1\]"),
    (lambda: thresholds.bootstrap_threshold(Y, S, n_boot=0), "'n_boot' parameter"),
    (lambda: thresholds.bootstrap_threshold(Y, S, alpha=1), "'alpha' parameter"),
    (lambda: thresholds.bootstrap_threshold(Y, S, gamma=1.5), "'gamma' parameter"),
    (lambda: thresholds.calibration_split(Y, fraction=0), r"'fraction' parameter must be in \(0, 1\)"),
    (lambda: thresholds.FairlearnThresholds(constraints="demographic_parity").fit(Y, S, G),
     "'constraints' parameter must be one of"),
    (lambda: thresholds.FairlearnThresholds(grid_size=0).fit(Y, S, G), "'grid_size' parameter"),
    (lambda: fairness.fairness_report(Y, S, G, threshold=0.5, alpha=0), "'alpha' parameter"),
    (lambda: fairness.fairness_report(Y, S, G, threshold=0.5, n_boot=-3), "'n_boot' parameter"),
    (lambda: fairness.fairness_report(Y, S, G, threshold=0.5, n_perm=0), "'n_perm' parameter"),
    (lambda: fairness.fairness_report(Y, S, G, threshold=0.5, min_positives=-1), "'min_positives' parameter"),
    (lambda: fairness.fairness_report(Y, S, G, threshold=0.5, max_ci_width=0), "'max_ci_width' parameter"),
    (lambda: fairness.fairness_report(Y, S, G, threshold=0.5, random_state=-1), "'random_state' parameter"),
    (lambda: fairness.fairness_report(Y, S, G, threshold=0.5, primary=("sensitivity",)),
     "'primary' parameter must be one of"),
    (lambda: fairness.recalibrate(Y, S, G, Y, S, G, threshold=0.5, methods=("magic",)),
     "'methods' parameter must be one of"),
    (lambda: fairness.recalibrate(Y, S, G, Y, S, G, threshold=0.5, methods=("global",), step=0.9),
     "'step' parameter"),
    (lambda: fairness.threshold_change(Y, S, G, before=0.5, after=1.5), "'threshold' parameter"),
    (lambda: figures.threshold_sweep(Y, S, step=0.75), r"'step' parameter must be in \(0, 0.5\]; got 0.75"),
    (lambda: figures.ita_histogram_png([1.0, 2.0], "unused.png", bins=1), "'bins' parameter must be an integer >= 2"),
    (lambda: figures.roc_png(Y, S, "unused.png", threshold=1.5), "'threshold' parameter"),
])
def test_entry_points_refuse_bad_options(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
