"""Threshold search, its bootstrap, group thresholds and the estimator contract, with known
answers (recalibration, built from them, is tested in test_fairness.py)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from sklearn.base import clone

from skinaudit.errors import ConfigError, DataError, NotFittedError
from skinaudit.thresholds import (FairlearnThresholds, GroupRecallThresholds, RecallConstrainedThreshold,
                                  bootstrap_threshold, calibration_split, search_threshold, threshold_curve,
                                  threshold_grid)


def hand_made():
    """10 malignant (8 at 0.8, 2 at 0.3), 10 benign (7 at 0.1, 3 at 0.5).

    t in (0.5, 0.8]: TP 8, FP 0 -> recall 0.8, F1 16/18 = 0.889 (the unconstrained best);
    t in (0.3, 0.5]: TP 8, FP 3 -> recall 0.8, F1 16/21;
    t in (0.1, 0.3]: TP 10, FP 3 -> recall 1.0, F1 20/23 = 0.870;
    t <= 0.1: everything flagged. So gamma = 0.8 gives t* = 0.80 (highest of the tied grid points)
    and gamma = 0.9 gives t* = 0.30.
    """
    y = np.r_[np.ones(10), np.zeros(10)].astype(int)
    s = np.r_[np.full(8, 0.8), np.full(2, 0.3), np.full(7, 0.1), np.full(3, 0.5)]
    return y, s


def test_grid_is_step_to_one_without_zero():
    g = threshold_grid(0.02)
    assert g[0] == 0.02 and g[-1] == 1.0 and g.size == 50 and 0.46 in g and 0.38 in g
    assert list(threshold_grid(0.3)) == [0.3, 0.6, 0.9]
    assert list(threshold_grid(grid=[0.5, 0.1, 0.5])) == [0.1, 0.5]


def test_hand_made_known_answer():
    y, s = hand_made()
    est = RecallConstrainedThreshold(gamma=0.9, step=0.02).fit(y, s)
    assert est.threshold_ == 0.3 and est.feasible_ and est.fallback_ is None
    row = est.curve_.iloc[est.index_]
    assert (row["tp"], row["fp"], row["fn"]) == (10, 3, 0) and row["f1"] == pytest.approx(20 / 23)
    assert list(est.curve_.columns[:6]) == ["threshold", "recall", "precision", "f1", "tp", "fp"]
    assert {"fn", "tn", "feasible"} <= set(est.curve_.columns)
    np.testing.assert_array_equal(est.predict(s), (s >= 0.3).astype(int))


def test_ties_go_to_the_highest_threshold():
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.5, 0.4, 0.7, 0.9])
    est = RecallConstrainedThreshold(gamma=0.8).fit(y, s)
    curve = est.curve_.set_index("threshold")
    tied = curve[(curve.f1 == curve.f1[curve.feasible].max()) & curve.feasible].index
    assert len(tied) > 1 and est.threshold_ == tied.max() == 0.4


def test_gamma_changes_the_answer():
    y, s = hand_made()
    assert RecallConstrainedThreshold(gamma=0.8).fit(y, s).threshold_ == 0.8
    assert RecallConstrainedThreshold(gamma=0.5).fit(y, s).threshold_ == 0.8
    assert RecallConstrainedThreshold(gamma=1.0).fit(y, s).threshold_ == 0.3
    assert RecallConstrainedThreshold(gamma=0.9, step=0.25).fit(y, s).threshold_ == 0.25


def test_infeasible_target_is_explicit(caplog):
    y = np.array([1, 1, 1, 0, 0])
    s = np.array([0.9, 0.5, 0.01, 0.3, 0.2])   # one malignant below every grid threshold
    with caplog.at_level(logging.WARNING, logger="skinaudit.thresholds"):
        est = RecallConstrainedThreshold(gamma=0.9).fit(y, s)
    assert est.feasible_ is False and not est.curve_["feasible"].any()
    # the fallback: highest threshold reaching the best recall the grid allows (2/3 for t <= 0.5)
    assert est.threshold_ == 0.5 and "no grid threshold reaches recall >= 0.9" in est.fallback_
    assert "infeasible" in caplog.text
    out = search_threshold(y, s, gamma=0.9)
    assert out["feasible"] is False and out["threshold"] == 0.5 and out["recall"] == pytest.approx(2 / 3)
    json.dumps(out, allow_nan=False)


def test_predict_before_fit_and_bad_parameters():
    with pytest.raises(NotFittedError, match="fit"):
        RecallConstrainedThreshold().predict([0.2])
    with pytest.raises(ConfigError, match="gamma"):
        RecallConstrainedThreshold(gamma=1.5).fit([0, 1], [0.1, 0.9])
    with pytest.raises(ConfigError, match="step"):
        RecallConstrainedThreshold(step=0).fit([0, 1], [0.1, 0.9])
    with pytest.raises(ConfigError, match="grid"):
        RecallConstrainedThreshold(grid=[0.2, 1.2]).fit([0, 1], [0.1, 0.9])
    with pytest.raises(DataError, match="no malignant"):
        RecallConstrainedThreshold().fit([0, 0], [0.1, 0.9])
    with pytest.raises(NotFittedError):
        GroupRecallThresholds().predict([0.2], ["a"])
    with pytest.raises(NotFittedError):
        FairlearnThresholds().predict([0.2], ["a"])


def test_curve_counts_match_direct_counting():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 2)   # scores on grid values: the >= boundary matters
    c = threshold_curve(y, s, step=0.02)
    for _, r in c.iloc[::7].iterrows():
        pred = s >= r["threshold"]
        assert r["tp"] == (pred & (y == 1)).sum() and r["fp"] == (pred & (y == 0)).sum()


def scenario(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    g = np.where(rng.random(n) < 0.55, "light", "dark")
    s = np.clip(rng.normal(0.35 + 0.3 * y - 0.08 * y * (g == "dark"), 0.15), 0, 1)
    return y, s, g


def test_bootstrap_threshold_spread_seed_and_n_boot():
    y, s, g = scenario(600)
    reps, summ = bootstrap_threshold(y, s, gamma=0.85, n_boot=200, random_state=1)
    assert len(reps) == 200 and summ["n_boot"] == 200 and summ["evaluated_on"].startswith("out-of-bag")
    assert summ["threshold_ci"][0] <= summ["threshold_median"] <= summ["threshold_ci"][1]
    assert summ["threshold_ci"][1] > summ["threshold_ci"][0]   # t* varies between resamples
    point = RecallConstrainedThreshold(gamma=0.85).fit(y, s).threshold_
    assert summ["threshold_ci"][0] <= point <= summ["threshold_ci"][1]
    same, _ = bootstrap_threshold(y, s, gamma=0.85, n_boot=200, random_state=1)
    other, _ = bootstrap_threshold(y, s, gamma=0.85, n_boot=200, random_state=2)
    assert same.equals(reps) and not other.equals(reps)
    # each replicate's t* is exactly what the estimator picks on that resample: check one by hand
    rng = np.random.default_rng(1)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    dp = pos[rng.integers(0, pos.size, (200, pos.size))]   # draw order: malignant, then benign
    dn = neg[rng.integers(0, neg.size, (200, neg.size))]
    idx = np.concatenate([dp[0], dn[0]])
    assert RecallConstrainedThreshold(gamma=0.85).fit(y[idx], s[idx]).threshold_ == reps["threshold"].iloc[0]


def test_bootstrap_threshold_on_an_evaluation_split():
    y, s, g = scenario(800)
    cal = calibration_split(y, g, fraction=0.5, random_state=0)
    reps, summ = bootstrap_threshold(y[cal], s[cal], gamma=0.9, n_boot=100, random_state=0,
                                     eval_y=y[~cal], eval_score=s[~cal])
    assert summ["evaluated_on"] == "evaluation split" and summ["recall_undefined"] == 0
    t = reps["threshold"].iloc[5]
    exp = ((s[~cal] >= t) & (y[~cal] == 1)).sum() / (y[~cal] == 1).sum()
    assert reps["recall"].iloc[5] == pytest.approx(exp)


def test_calibration_split_is_stratified_and_seeded():
    y, s, g = scenario(1000)
    m = calibration_split(y, g, fraction=0.3, random_state=4)
    for name in ("light", "dark"):
        for lab in (0, 1):
            k = ((g == name) & (y == lab)).sum()
            assert (m & (g == name) & (y == lab)).sum() == round(0.3 * k)
    assert np.array_equal(m, calibration_split(y, g, fraction=0.3, random_state=4))
    assert not np.array_equal(m, calibration_split(y, g, fraction=0.3, random_state=5))
    tiny = calibration_split([1, 0, 0], ["a", "b", "b"], fraction=0.5)
    assert tiny.dtype == bool and tiny.size == 3
    with pytest.raises(ConfigError, match="fraction"):
        calibration_split(y, fraction=1.0)


def test_group_thresholds_reach_the_target_in_each_group():
    y, s, g = scenario(1500)
    est = GroupRecallThresholds(gamma=0.85).fit(y, s, g)
    assert set(est.thresholds_) == {"light", "dark"} and all(est.feasible_.values())
    for name, t in est.thresholds_.items():
        m = (g == name) & (y == 1)
        assert (s[m] >= t).mean() >= 0.85
        assert t == RecallConstrainedThreshold(gamma=0.85).fit(y[g == name], s[g == name]).threshold_
    assert est.thresholds_["dark"] < est.thresholds_["light"]   # dark malignant scores are lower
    pred = est.predict(s, g)
    np.testing.assert_array_equal(pred, (s >= np.where(g == "dark", est.thresholds_["dark"],
                                                           est.thresholds_["light"])).astype(int))
    with pytest.raises(DataError, match="not in the calibration data"):
        est.predict([0.3], ["medium"])


def test_group_without_positives_gets_the_global_threshold_with_a_reason():
    y, s, g = scenario(400)
    y2, s2, g2 = np.r_[y, [0, 0, 0]], np.r_[s, [0.1, 0.2, 0.3]], np.r_[g, ["rare"] * 3]
    est = GroupRecallThresholds(gamma=0.85).fit(y2, s2, g2)
    assert est.thresholds_["rare"] == est.global_.threshold_ and est.feasible_["rare"] is False
    assert "no malignant calibration case" in est.fallback_["rare"]


def test_fairlearn_thresholds_are_seeded_and_validated():
    y, s, g = scenario(1000)
    est = FairlearnThresholds(constraints="true_positive_rate_parity", random_state=3).fit(y, s, g)
    a = est.predict(s, g)
    assert np.array_equal(a, est.predict(s, g)) and est.randomized
    other = FairlearnThresholds(constraints="true_positive_rate_parity", random_state=4).fit(y, s, g).predict(s, g)
    assert not np.array_equal(a, other)
    assert set(est.thresholds_) == {"light", "dark"}
    with pytest.raises(ConfigError, match="constraints"):
        FairlearnThresholds(constraints="demographic_parity").fit(y, s, g)
    with pytest.raises(DataError, match="both benign and malignant"):
        FairlearnThresholds().fit(np.append(y, 0), np.append(s, 0.2), np.append(g, "solo"))


def test_fairlearn_infinite_thresholds_survive_json():
    from skinaudit.thresholds import _describe_interp

    class Op:
        def __init__(self, t):
            self.threshold, self.operator = t, ">"

    d = _describe_interp({"p0": 0.2, "operation0": Op(-np.inf), "p1": 0.8, "operation1": Op(0.4)})
    assert d["operation0"]["threshold"] == "-inf" and d["operation1"]["threshold"] == 0.4
    json.dumps(d, allow_nan=False)


def test_curve_can_start_at_zero():
    y, s = hand_made()
    c = threshold_curve(y, s, step=0.25, include_zero=True)
    assert list(c["threshold"]) == [0.0, 0.25, 0.5, 0.75, 1.0]
    first = c.iloc[0]
    assert (first["tp"], first["fp"], first["recall"]) == (10, 10, 1.0)
    assert list(threshold_curve(y, s, step=0.25)["threshold"]) == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("step,ok", [(0.5, True), (0.02, True), (0.6, False), (0.0, False), (-0.1, False)])
def test_step_has_one_set_of_bounds(step, ok):
    y, s = hand_made()
    if ok:
        RecallConstrainedThreshold(step=step).fit(y, s)
        return
    msg = rf"the 'step' parameter must be in \(0, 0\.5\]; got {step}"
    for call in (lambda: threshold_grid(step), lambda: RecallConstrainedThreshold(step=step).fit(y, s),
                 lambda: bootstrap_threshold(y, s, step=step, n_boot=5),
                 lambda: GroupRecallThresholds(step=step).fit(y, s, ["a"] * y.size)):
        with pytest.raises(ConfigError, match=msg):
            call()


# --------------------------------------------------------------------- estimator contract
ESTIMATORS = [
    (RecallConstrainedThreshold, {"gamma": 0.9, "step": 0.05, "grid": None}),
    (GroupRecallThresholds, {"gamma": 0.8, "step": 0.04, "grid": [0.2, 0.4, 0.6]}),
    (FairlearnThresholds, {"constraints": "equalized_odds", "objective": "accuracy_score", "grid_size": 200,
                           "random_state": 3}),
]


def _fit(est, y, s, g):
    return est.fit(y, s) if isinstance(est, RecallConstrainedThreshold) else est.fit(y, s, g)


@pytest.mark.parametrize("cls,params", ESTIMATORS)
def test_estimators_follow_the_scikit_learn_contract(cls, params):
    from sklearn.base import BaseEstimator

    y, s, g = scenario(600, seed=4)
    est = cls(**params)
    assert isinstance(est, BaseEstimator) and est.get_params() == params
    with pytest.raises(TypeError):
        cls(*params.values())                     # keyword-only parameters
    with pytest.raises(NotFittedError, match="fit"):
        est.predict(s) if cls is RecallConstrainedThreshold else est.predict(s, g)
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    assert _fit(est, y, s, g) is est              # fit returns self
    learned = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    assert learned and not any(k.endswith("_") for k in vars(twin))   # clone is unfitted
    fresh = clone(est)
    assert not hasattr(fresh, learned[0]) and fresh.get_params() == params
    args = (s,) if cls is RecallConstrainedThreshold else (s, g)
    np.testing.assert_array_equal(_fit(fresh, y, s, g).predict(*args), est.predict(*args))
    first = next(iter(params))
    assert est.set_params(**{first: params[first]}) is est


def test_parameters_are_checked_in_fit_not_in_init():
    est = RecallConstrainedThreshold(gamma=5.0, step=-1)   # constructing stores, never validates
    assert est.get_params()["gamma"] == 5.0
    with pytest.raises(ConfigError, match="gamma"):
        est.fit([0, 1], [0.1, 0.9])
    est.set_params(gamma=0.8)
    with pytest.raises(ConfigError, match="step"):
        est.fit([0, 1], [0.1, 0.9])
    assert est.set_params(step=0.1).fit([0, 1], [0.1, 0.9]).threshold_ == 0.9
    with pytest.raises(ConfigError, match="grid_size"):
        FairlearnThresholds(grid_size=0).fit(*scenario(200))

