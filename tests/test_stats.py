"""Intervals, tests and the resampling engine, checked against independent computations
(the fairness section built from them is tested in test_fairness.py)."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import roc_auc_score

from skinaudit import stats
from skinaudit.errors import ConfigError
from skinaudit.stats import (adjust_pvalues, delong_auc, delong_unpaired, min_detectable_difference,
                             newcombe_interval, percentile_interval, permutation_test, proportion_test,
                             resample_indices, row_blocks, stratified_bootstrap, verdict, wilson_interval)


def wilson_by_hand(k, n, z):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def synthetic(n=600, seed=1, shift=0.05):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    g = np.where(rng.random(n) < 0.6, "light", "dark")
    s = np.round(np.clip(rng.normal(0.35 + 0.3 * y - shift * (g == "dark"), 0.2), 0, 1), 3)
    return y, s, g


# ----------------------------------------------------------------------------- proportions
@pytest.mark.parametrize("k,n", [(116, 143), (0, 7), (7, 7), (3, 10)])
@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_wilson_matches_the_closed_form(k, n, alpha):
    lo, hi = wilson_interval(k, n, alpha=alpha)
    elo, ehi = wilson_by_hand(k, n, st.norm.ppf(1 - alpha / 2))
    assert lo == pytest.approx(max(elo, 0), abs=1e-12) and hi == pytest.approx(min(ehi, 1), abs=1e-12)


def test_wilson_of_empty_group_is_nan():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize("c", [(116, 143, 113, 145), (0, 7, 3, 9), (5, 5, 2, 6)])
def test_newcombe_hybrid_score_interval(c):
    k1, n1, k2, n2 = c
    z = st.norm.ppf(0.975)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_by_hand(k1, n1, z)
    l2, u2 = wilson_by_hand(k2, n2, z)
    d, lo, hi = newcombe_interval(k1, n1, k2, n2, alpha=0.05)
    assert d == pytest.approx(p1 - p2)
    assert lo == pytest.approx(p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), abs=1e-9)
    assert hi == pytest.approx(p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2), abs=1e-9)


def test_proportion_test_uses_fisher_for_small_counts():
    small = proportion_test(2, 7, 20, 27)
    assert small["method"] == "fisher_exact"
    assert small["p_value"] == pytest.approx(st.fisher_exact([[2, 5], [20, 7]]).pvalue)
    large = proportion_test(116, 143, 113, 145)
    assert large["method"] == "score" and 0.4 < large["p_value"] < 0.6
    degenerate = proportion_test(40, 40, 40, 40)
    assert degenerate["method"] == "fisher_exact" and degenerate["p_value"] == 1.0


# --------------------------------------------------------------------------------- DeLong
def delong_brute_force(y, s):
    """Independent implementation: the Mann-Whitney kernel matrix, O(m n)."""
    x, z = s[y == 1], s[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    return psi.mean(), v10.var(ddof=1) / x.size + v01.var(ddof=1) / z.size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 150)
    s = np.round(rng.random(150) * 0.7 + 0.3 * y, 1)  # many ties
    auc, var = delong_auc(y, s)
    ref_auc, ref_var = delong_brute_force(y, s)
    assert auc == pytest.approx(ref_auc, abs=1e-12) == pytest.approx(roc_auc_score(y, s))
    assert var == pytest.approx(ref_var, rel=1e-10)


def test_delong_on_hanley_mcneil_1982_ratings():
    # Hanley & McNeil (Radiology 1982) Table 1: 58 normal, 51 abnormal, five-point ratings; AUC 0.893,
    # SE 0.032 by their exponential approximation (DeLong's nonparametric SE is close to it)
    neg, pos = [33, 6, 6, 11, 2], [3, 2, 2, 11, 33]
    s = np.r_[np.repeat(np.arange(1, 6), neg), np.repeat(np.arange(1, 6), pos)] / 5.0
    y = np.r_[np.zeros(58), np.ones(51)].astype(int)
    auc, var = delong_auc(y, s)
    assert round(auc, 3) == 0.893
    assert math.sqrt(var) == pytest.approx(0.032, abs=0.003)


def test_delong_unpaired_z_test():
    y, s, g = synthetic(800, seed=4, shift=0.1)
    a, b = g == "dark", g == "light"
    r = delong_unpaired(y[a], s[a], y[b], s[b], alpha=0.05)
    (a1, v1), (a2, v2) = delong_brute_force(y[a], s[a]), delong_brute_force(y[b], s[b])
    z = (a1 - a2) / math.sqrt(v1 + v2)
    assert r["z"] == pytest.approx(z) and r["p_value"] == pytest.approx(2 * st.norm.sf(abs(z)))
    assert r["ci"][1] - r["ci"][0] == pytest.approx(2 * 1.959964 * math.sqrt(v1 + v2), rel=1e-5)
    wider = delong_unpaired(y[a], s[a], y[b], s[b], alpha=0.01)
    assert wider["ci"][1] - wider["ci"][0] > r["ci"][1] - r["ci"][0]


def test_delong_single_positive_has_no_variance():
    auc, var = delong_auc([0, 0, 1], [0.1, 0.5, 0.7])
    assert auc == 1.0 and math.isnan(var)


# ------------------------------------------------------------------------------ bootstrap
def _auc_stat(a, b, axis=-1):
    return ((a[..., :, None] > b[..., None, :]).mean((-1, -2)) + 0.5 * (a[..., :, None] == b[..., None, :]).mean((-1, -2)))


def test_bootstrap_equals_scipy_bootstrap_on_the_same_resampling():
    y, s, g = synthetic(300, seed=2)
    pred = (s >= 0.46).astype(float)
    B, seed = 300, 11
    ours = stratified_bootstrap(y, s, g, threshold=0.46, n_boot=B, random_state=seed)
    assert ours["groups"] == ["dark", "light"]
    samples = []
    for name in ours["groups"]:   # draw order: groups by name, positives then benign
        m = g == name
        samples += [np.c_[s[m & (y == 1)], pred[m & (y == 1)]].T, np.c_[s[m & (y == 0)], pred[m & (y == 0)]].T]
    scores = [smp[0] for smp in samples]

    def stat(dp, dn, lp, ln, axis=-1):   # AUC gap light - dark, recall of light
        return _auc_stat(lp, ln) - _auc_stat(dp, dn)

    res = st.bootstrap(scores, stat, n_resamples=B, rng=np.random.default_rng(seed), method="percentile",
                       vectorized=True)
    gap = ours["values"]["auc"][:, 1] - ours["values"]["auc"][:, 0]
    np.testing.assert_allclose(gap, res.bootstrap_distribution, atol=1e-12)
    ci = percentile_interval(gap, alpha=0.05)
    assert (ci["low"], ci["high"]) == pytest.approx(tuple(res.confidence_interval), abs=1e-12)

    preds = [smp[1] for smp in samples]
    res_r = st.bootstrap(preds, lambda dp, dn, lp, ln, axis=-1: lp.mean(axis), n_resamples=B,
                         rng=np.random.default_rng(seed), method="percentile", vectorized=True)
    np.testing.assert_allclose(ours["values"]["recall"][:, 1], res_r.bootstrap_distribution, atol=1e-12)


def test_bootstrap_keeps_strata_and_overall_column():
    y, s, g = synthetic(400, seed=5)
    r = stratified_bootstrap(y, s, g, threshold=0.5, n_boot=50, random_state=0)
    v = r["values"]
    n_pos = [(y[g == name] == 1).sum() for name in r["groups"]]
    np.testing.assert_array_equal(v["tp"][:, :2] + v["fn"][:, :2], np.tile(n_pos, (50, 1)))
    np.testing.assert_array_equal(v["tp"][:, 2], v["tp"][:, 0] + v["tp"][:, 1])
    assert np.all(np.isfinite(v["auc"]))


def test_bootstrap_counts_undefined_replicates():
    # group "rare": 3 malignant, one predicted malignant, no false positive -> no predicted positive
    # in about (2/3)^3 of the replicates: precision undefined there, counted
    y = np.r_[1, 1, 1, 0, 0, 0, 0, np.tile([0, 1], 20)]
    s = np.r_[0.9, 0.2, 0.1, 0.1, 0.2, 0.3, 0.1, np.tile([0.2, 0.8], 20)]
    g = np.r_[["rare"] * 7, ["big"] * 40]
    r = stratified_bootstrap(y, s, g, threshold=0.5, n_boot=1000, random_state=3)
    prec = r["values"]["precision"][:, r["groups"].index("rare")]
    undefined = (r["values"]["tp"][:, 1] + r["values"]["fp"][:, 1]) == 0
    np.testing.assert_array_equal(np.isnan(prec), undefined)
    ci = percentile_interval(prec)
    assert ci["n_undefined"] == undefined.sum() and 200 < ci["n_undefined"] < 400
    assert ci["n_defined"] + ci["n_undefined"] == 1000


def test_bootstrap_seed_and_n_boot_reach_the_draws():
    y, s, g = synthetic(200, seed=6)
    a = stratified_bootstrap(y, s, g, threshold=0.5, n_boot=40, random_state=1)["values"]["auc"]
    b = stratified_bootstrap(y, s, g, threshold=0.5, n_boot=40, random_state=1)["values"]["auc"]
    c = stratified_bootstrap(y, s, g, threshold=0.5, n_boot=40, random_state=2)["values"]["auc"]
    assert a.shape == (40, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ConfigError, match="n_boot"):
        stratified_bootstrap(y, s, g, threshold=0.5, n_boot=0)


# ---------------------------------------------------------------------------- permutation
def test_permutation_recall_matches_exact_enumeration():
    # 5 and 6 malignant cases: all 462 ways to split them, enumerated by hand
    from itertools import combinations

    y = np.r_[np.ones(5), np.zeros(4), np.ones(6), np.zeros(4)].astype(int)
    s = np.r_[[0.9, 0.9, 0.9, 0.9, 0.1], [0.1] * 4, [0.9, 0.1, 0.1, 0.1, 0.1, 0.9], [0.1] * 4]
    g = np.r_[["a"] * 9, ["b"] * 10]
    ours = permutation_test(y, s, g, "a", "b", threshold=0.5, n_perm=20000, random_state=0)["recall"]
    hits = np.r_[(s[:5] >= 0.5), (s[9:15] >= 0.5)].astype(float)
    d_obs = hits[:5].mean() - hits[5:].mean()
    diffs = [hits[list(c)].mean() - np.delete(hits, list(c)).mean() for c in combinations(range(11), 5)]
    exact = np.mean(np.abs(diffs) >= abs(d_obs) - 1e-12)
    assert ours["difference"] == pytest.approx(d_obs) == pytest.approx(4 / 5 - 2 / 6)
    assert ours["p_value"] == pytest.approx(exact, abs=0.01)


def test_permutation_seed_and_n_perm_reach_the_computation():
    y, s, g = synthetic(300, seed=7, shift=0.0)
    a = permutation_test(y, s, g, "dark", "light", threshold=0.5, n_perm=99, random_state=0)
    c = permutation_test(y, s, g, "dark", "light", threshold=0.5, n_perm=999, random_state=0)
    assert a["auc"]["n_defined"] == 99 and c["auc"]["n_defined"] == 999
    ps = {permutation_test(y, s, g, "dark", "light", threshold=0.5, n_perm=99, random_state=k)["auc"]["p_value"]
          for k in range(5)}
    assert len(ps) > 1   # the seed changes the permutations
    assert a["auc"]["p_value"] * 100 == pytest.approx(round(a["auc"]["p_value"] * 100))   # (1 + k) / (1 + 99)


# ------------------------------------------------------------------------- multiplicity etc.
def test_adjust_pvalues_holm_and_bh_keep_nan():
    p = np.array([0.01, np.nan, 0.04, 0.03])
    holm = adjust_pvalues(p, method="holm")
    assert np.isnan(holm[1])
    np.testing.assert_allclose(holm[[0, 2, 3]], [0.03, 0.06, 0.06])
    bh = adjust_pvalues(p, method="fdr_bh")
    np.testing.assert_allclose(bh[[0, 2, 3]], [0.03, 0.04, 0.04])
    with pytest.raises(ConfigError, match="holm"):
        adjust_pvalues(p, method="hs")


def test_min_detectable_difference_round_trip():
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    mdd = min_detectable_difference(0.81, 143, 145, alpha=0.05, power=0.8)
    powers = [NormalIndPower().power(proportion_effectsize(0.81, p2), nobs1=143, alpha=0.05, ratio=145 / 143)
              for p2 in (0.81 - mdd, 0.81 + mdd) if 0 <= p2 <= 1]
    assert max(powers) == pytest.approx(0.8, abs=1e-6)   # the smaller of the two directions
    assert min_detectable_difference(0.81, 143, 7) > mdd > min_detectable_difference(0.81, 1000, 1000)
    assert min_detectable_difference(0.81, 143, 145, alpha=0.01) > mdd
    assert math.isnan(min_detectable_difference(0.81, 143, 0))


@pytest.mark.parametrize("p,ci,npos,expected", [
    (0.01, (0.02, 0.10), (50, 60), "significant"),
    (0.01, (-0.01, 0.10), (50, 60), "not significant"),
    (0.20, (0.01, 0.10), (50, 60), "not significant"),
    (0.01, (0.02, 0.10), (7, 60), "insufficient data"),
    (0.01, (0.02, 0.50), (50, 60), "insufficient data"),
    (float("nan"), (0.02, 0.1), (50, 60), "insufficient data"),
])
def test_verdict_rule(p, ci, npos, expected):
    v, reason = verdict(p, ci, alpha=0.05, n_positives=npos, min_positives=10, max_ci_width=0.3)
    assert v == expected and reason


def test_numeric_core_imports_no_torch_or_jinja2():
    import subprocess
    import sys

    code = ("import sys, skinaudit.metrics, skinaudit.stats, skinaudit.thresholds, skinaudit.fairness; "
            "print(sorted(m for m in ('torch', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_count_based_auc_equals_the_kernel_on_expanded_data():
    # the bootstrap engine's AUC from per-score counts == the Mann-Whitney kernel on the cases
    # those counts stand for (score u repeated P_u times as malignant, N_u times as benign)
    from hypothesis import given, settings
    from hypothesis import strategies as hs

    from skinaudit.stats import _auc_from_counts

    @settings(max_examples=30, deadline=None, database=None)
    @given(hs.lists(hs.tuples(hs.integers(0, 3), hs.integers(0, 3)), min_size=2, max_size=12))
    def check(cells):
        P = np.array([[c[0] for c in cells]])
        N = np.array([[c[1] for c in cells]])
        got = _auc_from_counts(P, N)[0]
        if P.sum() == 0 or N.sum() == 0:
            assert np.isnan(got)
            return
        u = np.arange(len(cells), dtype=float)
        x, z = np.repeat(u, P[0]), np.repeat(u, N[0])
        expected = ((x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])).mean()
        assert got == pytest.approx(expected)

    check()


# ---------------------------------------------------------------------- resampling engine
def _frozen_stratified_bootstrap_draws(pairs, n_boot, random_state, n_cases):
    """Frozen copy of the draw loop of stratified_bootstrap before the engine existed."""
    rng = np.random.default_rng(random_state)
    block = max(1, min(n_boot, stats._CHUNK_CELLS // max(n_cases, 1)))
    gens = []
    for pair in pairs:
        pair_gens = []
        for idx in pair:
            pair_gens.append(copy.deepcopy(rng))
            for start in range(0, n_boot, block):
                if idx.size:
                    rng.integers(0, idx.size, (min(block, n_boot - start), idx.size))
        gens.append(pair_gens)
    out = []
    for start in range(0, n_boot, block):
        m = min(start + block, n_boot) - start
        draws = []
        for pair, pair_gens in zip(pairs, gens):
            draws += [idx[g.integers(0, idx.size, (m, idx.size))] if idx.size else np.empty((m, 0), dtype=np.int64)
                      for idx, g in zip(pair, pair_gens)]
        out.append((slice(start, start + m), draws))
    return out


def _frozen_bootstrap_threshold_draws(y, n_boot, random_state, width):
    """Frozen copy of the draw loop of thresholds.bootstrap_threshold before the engine existed."""
    rng = np.random.default_rng(random_state)
    block = max(1, min(n_boot, stats._CHUNK_CELLS // max(width, 1)))
    label_rngs = {}
    for lab in (1, 0):
        k = int((y == lab).sum())
        label_rngs[lab] = copy.deepcopy(rng)
        for b0 in range(0, n_boot, block):
            if k:
                rng.integers(0, k, (min(block, n_boot - b0), k))
    out = []
    for b0 in range(0, n_boot, block):
        m = min(block, n_boot - b0)
        draws = []
        for lab in (1, 0):
            idx = np.flatnonzero(y == lab)
            draws.append(idx[label_rngs[lab].integers(0, idx.size, (m, idx.size))] if idx.size
                         else np.empty((m, 0), dtype=np.int64))
        out.append((slice(b0, b0 + m), draws))
    return out


def _same_draws(a, b):
    assert len(a) == len(b)
    for (rows_a, da), (rows_b, db) in zip(a, b):
        assert rows_a == rows_b and len(da) == len(db)
        for x, z in zip(da, db):
            assert x.dtype == z.dtype and x.shape == z.shape and np.array_equal(x, z)


@pytest.mark.parametrize("cells", [1, 97, 5_000, 1 << 16])
@pytest.mark.parametrize("n_boot", [1, 7, 300])
def test_engine_reproduces_the_old_stratified_bootstrap_draws(monkeypatch, cells, n_boot):
    monkeypatch.setattr(stats, "_CHUNK_CELLS", cells)
    y, s, g = synthetic(150, seed=12)
    g = g.astype(object)
    g[y == 1] = np.where(g[y == 1] == "dark", "light", g[y == 1])   # "dark" has no malignant case
    g[:5], y[:5] = "rare", 1                                         # "rare" has no benign case
    names = sorted(set(g))
    pairs = [[np.flatnonzero((g == name) & (y == lab)) for lab in (1, 0)] for name in names]
    assert any(idx.size == 0 for pair in pairs for idx in pair)
    old = _frozen_stratified_bootstrap_draws(pairs, n_boot, 21, y.size)
    new = list(resample_indices([idx for pair in pairs for idx in pair], n_boot=n_boot, random_state=21))
    _same_draws(old, new)


@pytest.mark.parametrize("cells", [1, 97, 1 << 16])
@pytest.mark.parametrize("n_eval", [0, 250])
def test_engine_reproduces_the_old_bootstrap_threshold_draws(monkeypatch, cells, n_eval):
    monkeypatch.setattr(stats, "_CHUNK_CELLS", cells)
    y = (np.random.default_rng(3).random(120) < 0.3).astype(int)
    width = y.size + (n_eval or y.size)     # calibration + evaluation cases (out-of-bag: the same cases)
    old = _frozen_bootstrap_threshold_draws(y, 50, 8, width)
    new = list(resample_indices([np.flatnonzero(y == 1), np.flatnonzero(y == 0)], n_boot=50, random_state=8,
                                width=width))
    _same_draws(old, new)


def test_engine_blocks_equal_the_one_shot_draw(monkeypatch):
    strata = [np.arange(5), np.array([], dtype=int), np.arange(10, 17), np.array([3])]
    rng = np.random.default_rng(5)
    one_shot = [idx[rng.integers(0, idx.size, (40, idx.size))] if idx.size else np.empty((40, 0), int)
                for idx in strata]
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 30)   # blocks of 2 rows
    got = list(resample_indices(strata, n_boot=40, random_state=5))
    assert len(got) == 20 and got[0][0] == slice(0, 2)
    for i, full in enumerate(one_shot):
        np.testing.assert_array_equal(np.concatenate([d[i] for _, d in got]), full)


def test_engine_is_the_localisation_loop_too():
    # explain.localisation_by_group draws x[rng.integers(0, len(x), (n_boot, len(x)))] per group and
    # column from one generator: the engine with one stratum per (group, column) gives the same means
    xs = [np.linspace(0, 1, 9), np.linspace(0.2, 0.7, 4), np.linspace(0, 1, 13)]
    rng = np.random.default_rng(17)
    expected = [x[rng.integers(0, len(x), size=(500, len(x)))].mean(axis=1) for x in xs]
    blocks = list(resample_indices([np.arange(len(x)) for x in xs], n_boot=500, random_state=17))
    got = [np.concatenate([xs[i][d[i]].mean(axis=1) for _, d in blocks]) for i in range(len(xs))]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_engine_advances_a_given_generator_and_validates():
    gen = np.random.default_rng(1)
    list(resample_indices([np.arange(4)], n_boot=3, random_state=gen))
    ref = np.random.default_rng(1)
    ref.integers(0, 4, (3, 4))
    assert gen.integers(0, 1000) == ref.integers(0, 1000)
    with pytest.raises(ConfigError, match="n_boot"):
        resample_indices([np.arange(4)], n_boot=0)


def test_row_blocks_cover_the_rows(monkeypatch):
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 100)
    assert row_blocks(7, 30) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert row_blocks(7, 0) == [slice(0, 7)] == row_blocks(7, 5)
    assert row_blocks(5, 1000) == [slice(i, i + 1) for i in range(5)]
    assert row_blocks(0, 10) == []

