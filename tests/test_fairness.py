"""The fairness and recalibration sections (skinaudit.fairness): per-group tables with
intervals, tests and verdicts, and threshold recalibration fitted on one split and reported on
another, with known answers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as st

from skinaudit.errors import ConfigError
from skinaudit.fairness import PAPER_RULE_LABEL, fairness_report, recalibrate, threshold_change
from skinaudit.metrics import gap, max_min
from skinaudit.thresholds import RecallConstrainedThreshold, bootstrap_threshold, calibration_split

# tests/ is on sys.path (pytest rootdir import)
from test_metrics import block, table8_data
from test_stats import synthetic, wilson_by_hand
from test_thresholds import scenario


# -------------------------------------------------------------------------- fairness report
def test_fairness_report_on_table8_data():
    y, s, g = table8_data()
    rep = fairness_report(y, s, g, threshold=0.46, n_boot=300, random_state=0)
    sec = rep.section
    json.dumps(sec, allow_nan=False)
    assert sec["reference"] == "light"
    assert sec["groups"]["light"]["fn"] == 27 and sec["groups"]["dark"]["fn"] == 32
    assert round(sec["groups"]["dark"]["recall"], 4) == 0.7793
    gap = sec["gaps"]["recall"]["dark"]
    assert round(gap["difference"], 4) == -0.0319
    assert sec["paper_rule"]["flags"]["recall"]["dark"] is False and sec["paper_rule"]["label"] == PAPER_RULE_LABEL
    assert sec["verdicts"]["recall"]["dark"] == "not significant"
    test = [t for t in sec["tests"] if t["metric"] == "recall"][0]
    assert test["ci_method"] == "newcombe" and test["ci_low"] < 0 < test["ci_high"]
    assert test["correction"] == "holm" and test["family"] == "primary" and test["mdd"] > 0.0319
    lo, hi = sec["groups"]["dark"]["ci"]["recall"]["wilson"]
    assert (lo, hi) == pytest.approx(wilson_by_hand(113, 145, st.norm.ppf(0.975)))
    assert set(rep.tables) == {"fairness_groups", "fairness_table8", "fairness_gaps", "fairness_tests"}


def test_fairness_small_group_is_insufficient_data():
    # ISIC-like: a dark group with 7 malignant cases
    big = block(120, 30, 600, 150, "light")
    small = block(3, 4, 20, 7, "dark")
    y, s, g = (np.r_[big[i], small[i]] for i in range(3))
    sec = fairness_report(y, s, g, threshold=0.5, n_boot=200).section
    assert all(v == "insufficient data" for v in sec["verdicts"]["recall"].values())
    t = [t for t in sec["tests"] if t["metric"] == "recall"][0]
    assert "7 malignant cases" in t["reason"] and t["mdd"] > 0.3
    assert any("only 7 malignant" in n for n in sec["notes"])
    relaxed = fairness_report(y, s, g, threshold=0.5, n_boot=200, min_positives=5, max_ci_width=1.0).section
    assert relaxed["verdicts"]["recall"]["dark"] != "insufficient data"


def test_fairness_group_without_positives_reports_reasons():
    y = np.r_[np.tile([0, 1], 30), np.zeros(10, int)]
    s = np.r_[np.tile([0.2, 0.8], 30), np.linspace(0.1, 0.6, 10)]
    g = np.r_[["a"] * 60, ["b"] * 10]
    sec = fairness_report(y, s, g, threshold=0.5, n_boot=100).section
    json.dumps(sec, allow_nan=False)
    assert sec["groups"]["b"]["recall"] is None and "no malignant case" in sec["groups"]["b"]["undefined"]["recall"]
    assert sec["verdicts"]["recall"]["b"] == "insufficient data"


def _recall_test(sec):
    return [t for t in sec["tests"] if t["metric"] == "recall"][0]


def test_alpha_n_boot_seed_and_reference_reach_the_computation():
    y, s, g = synthetic(700, seed=8, shift=0.08)
    base = fairness_report(y, s, g, threshold=0.46, n_boot=200, random_state=0).section
    ci = lambda sec: sec["groups"]["dark"]["ci"]["auc"]["bootstrap"]  # noqa: E731
    same = fairness_report(y, s, g, threshold=0.46, n_boot=200, random_state=0).section
    assert ci(same) == ci(base)
    other_seed = fairness_report(y, s, g, threshold=0.46, n_boot=200, random_state=1).section
    assert ci(other_seed) != ci(base)
    more = fairness_report(y, s, g, threshold=0.46, n_boot=300, random_state=0).section
    assert ci(more)["n_defined"] == 300 and ci(base)["n_defined"] == 200 and more["n_boot"] == 300
    perm = fairness_report(y, s, g, threshold=0.46, n_boot=200, n_perm=50, random_state=0).section
    assert _recall_test(perm)["p_permutation"] * 51 == pytest.approx(round(_recall_test(perm)["p_permutation"] * 51))
    strict = fairness_report(y, s, g, threshold=0.46, n_boot=200, alpha=0.01, random_state=0).section
    w = lambda sec: sec["groups"]["dark"]["ci"]["recall"]["wilson"]  # noqa: E731
    assert w(strict)[1] - w(strict)[0] > w(base)[1] - w(base)[0]
    t0, t1 = _recall_test(base), _recall_test(strict)
    assert t1["ci_high"] - t1["ci_low"] > t0["ci_high"] - t0["ci_low"] and strict["alpha"] == 0.01
    ref = fairness_report(y, s, g, threshold=0.46, n_boot=50, reference="dark").section
    assert ref["reference"] == "dark" and "light" in ref["gaps"]["recall"]


def test_alpha_flips_a_borderline_verdict():
    y, s, g = synthetic(1500, seed=9, shift=0.08)
    sec = {a: fairness_report(y, s, g, threshold=0.5, n_boot=100, alpha=a, max_ci_width=1.0).section
           for a in (0.05, 1e-6)}
    sig = [t for t in sec[0.05]["tests"] if t["verdict"] == "significant"]
    assert sig, "the synthetic shift should give at least one significant contrast at alpha 0.05"
    m = sig[0]["metric"]
    assert sec[1e-6]["verdicts"][m]["dark"] == "not significant"


def test_holm_for_primary_bh_for_exploratory():
    y, s, g = synthetic(500, seed=10)
    tests = fairness_report(y, s, g, threshold=0.5, n_boot=50, primary=("recall",)).tables["fairness_tests"]
    fam = dict(zip(tests.metric, tests.family))
    assert fam["recall"] == "primary" and fam["auc"] == "exploratory"
    assert set(tests[tests.family == "exploratory"].correction) == {"fdr_bh"}
    with pytest.raises(ConfigError, match="primary"):
        fairness_report(y, s, g, threshold=0.5, n_boot=50, primary=("sensitivity",))


def test_power_and_progress_reach_the_computation():
    y, s, g = synthetic(500, seed=11)
    calls = []

    def progress(iterable, total=None, desc=None):
        calls.append((total, desc))
        return iterable

    low = fairness_report(y, s, g, threshold=0.5, n_boot=50, power=0.5, progress=progress).section
    high = fairness_report(y, s, g, threshold=0.5, n_boot=50, power=0.9).section
    assert calls == [(1, "fairness tests")]
    assert _recall_test(high)["mdd"] > _recall_test(low)["mdd"] and high["power"] == 0.9


@pytest.mark.realdata
def test_real_isic_composition_gives_insufficient_data_for_the_dark_group(shared_data):
    # HAM10000 (= ISIC 2018 training) with Kinyanjui et al.'s published ITA: only 23 images at
    # ITA <= 28, 5 of them malignant. Whatever the scores, no honest verdict is possible there.
    import pandas as pd

    root = shared_data("ham10000-224")
    d = pd.read_csv(root / "HAM10000_metadata.csv").merge(pd.read_csv(root / "skin_tone_reference.csv"), on="image_id")
    d = d[d["kinyanjui_ita"].notna()]
    y = d["dx"].isin(["mel", "bcc", "akiec"]).to_numpy().astype(int)
    g = np.where(d["kinyanjui_ita"] <= 28, "dark", "light")
    assert (g == "dark").sum() == 23 and y[g == "dark"].sum() == 5
    s = np.clip(np.random.default_rng(0).normal(0.3 + 0.4 * y, 0.2), 0, 1)   # stand-in scores
    sec = fairness_report(y, s, g, threshold=0.5, n_boot=200, n_perm=200).section
    assert sec["reference"] == "light" and sec["verdicts"]["recall"]["dark"] == "insufficient data"
    assert _recall_test(sec)["mdd"] > 0.4


# -------------------------------------------------------------------------- recalibration
def test_threshold_change_reproduces_the_papers_recalibration_arithmetic():
    # Table 8 counts at 0.46 (light FN 27 / 143, dark 32 / 145); lowering to 0.38 catches 6 + 8
    # malignant cases scored 0.40 -> FN 59 -> 45 and the recall gap shrinks by about 42%
    def grp(name, n_pos, fn_after, fn_before, n_neg):
        s = np.r_[np.full(n_pos - fn_before, 0.9), np.full(fn_before - fn_after, 0.40), np.full(fn_after, 0.1),
                  np.full(n_neg, 0.1)]
        return np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int), s, np.full(n_pos + n_neg, name)

    parts = [grp("light", 143, 21, 27, 721), grp("dark", 145, 24, 32, 484)]
    y, s, g = (np.concatenate([p[i] for p in parts]) for i in range(3))
    out = threshold_change(y, s, g, before=0.46, after=0.38)
    assert (out["fn_before"], out["fn_after"]) == (59, 45)
    gap_before, gap_after = 116 / 143 - 113 / 145, 122 / 143 - 121 / 145
    assert out["recall_gap_before"] == pytest.approx(gap_before)
    assert out["recall_gap_change_pct"] == pytest.approx(100 * (gap_after - gap_before) / gap_before)
    assert round(out["recall_gap_change_pct"]) == -41
    per = {r["group"]: r for r in out["per_group"]}
    assert per["dark"]["delta_fn"] == -8 and per["light"]["recall_after"] == pytest.approx(122 / 143)


def test_recalibrate_fits_on_calibration_and_reports_on_test():
    y, s, g = scenario(1500, seed=2)
    cal = calibration_split(y, g, fraction=0.4, random_state=0)
    res = recalibrate(y[cal], s[cal], g[cal], y[~cal], s[~cal], g[~cal], threshold=0.5, gamma=0.85, n_boot=100)
    sec = res.section
    json.dumps(sec, allow_nan=False)
    assert set(sec["methods"]) == {"global", "per_group", "tpr_parity", "equalized_odds"}
    assert all(m["status"] == "ok" for m in sec["methods"].values())
    glob = sec["methods"]["global"]
    assert glob["thresholds"]["all"] == RecallConstrainedThreshold(gamma=0.85).fit(y[cal], s[cal]).threshold_
    assert glob["fn_after"] == int(((s[~cal] < glob["thresholds"]["all"]) & (y[~cal] == 1)).sum())
    assert glob["fn_before"] == int(((s[~cal] < 0.5) & (y[~cal] == 1)).sum())
    assert sec["methods"]["tpr_parity"]["randomized"] is True
    assert sec["methods"]["per_group"]["recall_gap_after"] < sec["methods"]["per_group"]["recall_gap_before"]
    table = res.tables["recalibration"]
    assert {"method", "group", "fn_before", "fn_after", "recall_before", "recall_after", "precision_after",
            "fp_after", "delta_fp"} <= set(table.columns)
    # thresholds come from the calibration split only: changing test labels changes no threshold
    flipped = recalibrate(y[cal], s[cal], g[cal], 1 - y[~cal], s[~cal], g[~cal], threshold=0.5, methods=("per_group",))
    assert flipped.section["methods"]["per_group"]["thresholds"] == sec["methods"]["per_group"]["thresholds"]


def test_recalibrate_records_a_method_that_cannot_run():
    y, s, g = scenario(600)
    g = g.astype(object)
    g[:3], y[:3] = "solo", 0
    res = recalibrate(y, s, g, y, s, g, threshold=0.5, methods=("tpr_parity",))
    m = res.section["methods"]["tpr_parity"]
    assert m["status"] == "not run" and "both benign and malignant" in m["reason"]
    with pytest.raises(ConfigError, match="methods"):
        recalibrate(y, s, g, y, s, g, threshold=0.5, methods=("magic",))


def test_recalibrate_gamma_step_and_seed_reach_the_search():
    y, s, g = scenario(1000, seed=3)
    cal = calibration_split(y, g, fraction=0.5, random_state=1)
    args = (y[cal], s[cal], g[cal], y[~cal], s[~cal], g[~cal])
    t = lambda **kw: recalibrate(*args, threshold=0.5, methods=("global",), n_boot=50, **kw).section  # noqa: E731
    base = t(gamma=0.8)
    assert t(gamma=0.95)["methods"]["global"]["thresholds"]["all"] < base["methods"]["global"]["thresholds"]["all"]
    coarse = t(gamma=0.8, step=0.25)["methods"]["global"]["thresholds"]["all"]
    assert coarse in (0.25, 0.5, 0.75, 1.0)
    assert t(gamma=0.8, random_state=1)["methods"]["global"]["bootstrap"] != base["methods"]["global"]["bootstrap"]
    _, narrow = bootstrap_threshold(y, s, n_boot=200, alpha=0.5)
    _, wide = bootstrap_threshold(y, s, n_boot=200, alpha=0.05)
    assert wide["recall_ci"][1] - wide["recall_ci"][0] > narrow["recall_ci"][1] - narrow["recall_ci"][0]


def test_per_group_recalibration_handles_a_group_missing_from_calibration():
    y, s, g = scenario(600)
    g = g.astype(object)
    g[:2] = "rare"
    cal = np.ones(y.size, bool)
    cal[:2] = False
    res = recalibrate(y[cal], s[cal], g[cal], y, s, g, threshold=0.5, methods=("global", "per_group"), n_boot=20)
    m = res.section["methods"]["per_group"]
    assert m["status"] == "ok" and m["thresholds"]["rare"] == res.section["methods"]["global"]["thresholds"]["all"]
    assert "no calibration case" in m["fallback"]["rare"] and m["feasible"]["rare"] is False


# ---------------------------------------------------------------------------- one gap function
def test_gaps_of_the_section_come_from_the_gap_function():
    y, s, g = synthetic(500, seed=13, shift=0.1)
    sec = fairness_report(y, s, g, threshold=0.5, n_boot=50, random_state=0).section
    groups = sec["groups"]
    for met in ("recall", "precision", "fn", "auc"):
        row = sec["gaps"][met]["dark"]
        assert row["difference"] == gap(groups["dark"][met], groups["light"][met])   # group - reference
        assert sec["max_min"][met]["value"] == max_min([groups["dark"][met], groups["light"][met]])
    assert sec["gaps"]["fn"]["dark"]["difference"] == groups["dark"]["fn"] - groups["light"]["fn"]


def test_recall_gap_change_is_a_gap_of_gaps():
    y, s, g = scenario(800, seed=5)
    out = threshold_change(y, s, g, before=0.5, after=0.4)
    rec = {r["group"]: r for r in out["per_group"]}
    for when in ("before", "after"):
        assert out[f"recall_gap_{when}"] == max_min([rec["dark"][f"recall_{when}"], rec["light"][f"recall_{when}"]])
    expected = 100 * gap(out["recall_gap_after"], out["recall_gap_before"]) / out["recall_gap_before"]
    assert out["recall_gap_change_pct"] == expected
