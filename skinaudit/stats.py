"""Intervals and tests for comparing a classifier across groups (numeric core: no torch).

Every function returns numbers (estimate, interval, p-value), never a verdict on its own;
:func:`verdict` turns them into one with a stated rule. Undefined values are NaN.

Contents
--------
- :func:`wilson_interval` - score interval of a proportion (statsmodels, Wilson 1927).
- :func:`newcombe_interval` - interval of a difference of two independent proportions
  (statsmodels ``method="newcomb"``, Newcombe 1998 method 10, hybrid Wilson).
- :func:`proportion_test` - Fisher's exact test when an expected cell count is small, otherwise
  the score test of the difference (statsmodels ``test_proportions_2indep(method="score")``).
- :func:`delong_auc`, :func:`delong_unpaired` - DeLong variance of an AUC from placement values
  (DeLong, DeLong and Clarke-Pearson 1988; Sun and Xu 2014) and the unpaired z-test for two
  AUCs measured on *disjoint* groups: ``z = (A1 - A2) / sqrt(V1 + V2)``. (The paired DeLong test
  compares two models on the same cases; it is not the right test between groups.)
- :func:`resample_indices`, :func:`row_blocks` - the resampling engine: stratified bootstrap
  index matrices drawn block by block (bounded memory), identical to one-shot draws. Every
  bootstrap of the package draws through it.
- :func:`stratified_bootstrap` - replicates of every metric per group, resampling within each
  group x label stratum (vectorised: integer index matrices, per-replicate rank counts for AUC).
- :func:`permutation_test` - group labels permuted within each label stratum.
- :func:`adjust_pvalues` - Holm (primary contrasts) or Benjamini-Hochberg (exploratory sweeps),
  statsmodels ``multipletests``.
- :func:`min_detectable_difference` - smallest difference of two proportions detectable at a
  given power (statsmodels ``NormalIndPower`` on Cohen's h).
- :func:`verdict` - "significant" / "not significant" / "insufficient data" with the reason.
"""
from __future__ import annotations

import copy
import math

import numpy as np
from scipy import stats as _st

from .errors import ConfigError, DataError
from .metrics import RATE_METRICS, check_threshold, rates_from_counts
from .validation import check_choice, check_int, check_labels_scores, check_param

__all__ = [
    "wilson_interval", "newcombe_interval", "proportion_test", "delong_auc", "delong_unpaired",
    "row_blocks", "resample_indices", "stratified_bootstrap", "percentile_interval", "permutation_test",
    "adjust_pvalues", "min_detectable_difference", "verdict", "BOOT_METRICS",
]

#: Metrics produced by :func:`stratified_bootstrap` and :func:`permutation_test`.
BOOT_METRICS = RATE_METRICS + ("tp", "fn", "tn", "fp")
_NAN = float("nan")


# ----------------------------------------------------------------------------- proportions
def wilson_interval(count, nobs, *, alpha: float = 0.05):
    """Wilson score interval of ``count / nobs``.

    Parameters
    ----------
    count, nobs : int or array-like of int
        Successes and trials (e.g. TP and TP+FN for recall).
    alpha : float in (0, 1)
        1 - confidence level.

    Returns
    -------
    (low, high) : floats or ndarrays
        NaN where ``nobs == 0``. statsmodels ``proportion_confint(method="wilson")``.
    """
    from statsmodels.stats.proportion import proportion_confint

    a = check_param(alpha, "alpha")
    c = np.asarray(count, dtype=float)
    n = np.asarray(nobs, dtype=float)
    ok = n > 0
    lo, hi = proportion_confint(np.where(ok, c, 0), np.where(ok, n, 1), alpha=a, method="wilson")
    lo, hi = np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def newcombe_interval(count1, nobs1, count2, nobs2, *, alpha: float = 0.05):
    """Difference ``p1 - p2`` of two independent proportions with Newcombe's hybrid Wilson interval.

    Returns
    -------
    (diff, low, high) : floats
        NaN when a group has no trials. statsmodels
        ``confint_proportions_2indep(method="newcomb", compare="diff")`` (Newcombe 1998).
    """
    from statsmodels.stats.proportion import confint_proportions_2indep

    a = check_param(alpha, "alpha")
    if nobs1 <= 0 or nobs2 <= 0:
        return _NAN, _NAN, _NAN
    lo, hi = confint_proportions_2indep(int(count1), int(nobs1), int(count2), int(nobs2),
                                        method="newcomb", compare="diff", alpha=a)
    return count1 / nobs1 - count2 / nobs2, float(lo), float(hi)


def proportion_test(count1, nobs1, count2, nobs2, *, min_expected: float = 5.0) -> dict:
    """Two-sided test of ``p1 = p2`` for two independent proportions.

    Fisher's exact test (scipy) when the smallest expected cell count of the 2x2 table is below
    ``min_expected`` or the score statistic is degenerate; otherwise the score test
    (statsmodels ``test_proportions_2indep(method="score")``).

    Returns
    -------
    dict
        ``p_value`` (NaN when a group has no trials), ``method`` ("fisher_exact" / "score").
    """
    if nobs1 <= 0 or nobs2 <= 0:
        return {"p_value": _NAN, "method": None}
    table = np.array([[count1, nobs1 - count1], [count2, nobs2 - count2]], dtype=float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    if expected.min() >= min_expected:
        from statsmodels.stats.proportion import test_proportions_2indep

        with np.errstate(divide="ignore", invalid="ignore"):  # an unused odds ratio at p = 0 or 1
            p = float(test_proportions_2indep(int(count1), int(nobs1), int(count2), int(nobs2),
                                              method="score", compare="diff").pvalue)
        if math.isfinite(p):
            return {"p_value": p, "method": "score"}
    return {"p_value": float(_st.fisher_exact(table.astype(int)).pvalue), "method": "fisher_exact"}


# --------------------------------------------------------------------------------- DeLong
def delong_auc(y_true, y_score) -> tuple[float, float]:
    """ROC AUC and its DeLong variance.

    With m positives X_i and n negatives Y_j, psi(x, y) = 1 if x > y, 1/2 if x = y, else 0;
    placement values V10_i = mean_j psi(X_i, Y_j), V01_j = mean_i psi(X_i, Y_j);
    AUC = mean(V10); Var = s2(V10)/m + s2(V01)/n with sample variances (ddof=1)
    (DeLong et al. 1988, Biometrics 44:837). Computed by sorting: O((m + n) log(m + n)).

    Returns
    -------
    (auc, variance) : floats
        AUC NaN with one class; variance NaN when m < 2 or n < 2.
    """
    y, s = check_labels_scores(y_true, y_score)
    x, z = s[y == 1], s[y == 0]
    m, n = x.size, z.size
    if m == 0 or n == 0:
        return _NAN, _NAN
    zs, xs = np.sort(z), np.sort(x)
    zl, zr = np.searchsorted(zs, x, "left"), np.searchsorted(zs, x, "right")
    v10 = (zl + 0.5 * (zr - zl)) / n
    xl, xr = np.searchsorted(xs, z, "left"), np.searchsorted(xs, z, "right")
    v01 = ((m - xr) + 0.5 * (xr - xl)) / m
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, _NAN
    return auc, float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


def delong_unpaired(y1, s1, y2, s2, *, alpha: float = 0.05) -> dict:
    """Unpaired comparison of the AUCs of two disjoint groups (DeLong variances).

    ``diff = A1 - A2``, ``se = sqrt(V1 + V2)``, ``z = diff / se``, two-sided normal p-value,
    interval ``diff +- z_{1-alpha/2} se``.

    Returns
    -------
    dict
        ``auc1, auc2, var1, var2, diff, se, z, p_value, ci`` (NaN where undefined).
    """
    a = check_param(alpha, "alpha")
    a1, v1 = delong_auc(y1, s1)
    a2, v2 = delong_auc(y2, s2)
    diff = a1 - a2
    se = math.sqrt(v1 + v2) if math.isfinite(v1 + v2) else _NAN
    if math.isfinite(se) and se > 0:
        z = diff / se
        p = float(2 * _st.norm.sf(abs(z)))
    else:
        z, p = _NAN, _NAN
    h = _st.norm.ppf(1 - a / 2) * se
    return {"auc1": a1, "auc2": a2, "var1": v1, "var2": v2, "diff": diff, "se": se, "z": z,
            "p_value": p, "ci": [float(diff - h), float(diff + h)]}


# ------------------------------------------------------------------------- resampling engine
def _strata(y: np.ndarray, codes: np.ndarray, n_groups: int):
    """Case indices of every (group, label) stratum, positives first: [(g, 1), (g, 0)] per g."""
    return [[np.flatnonzero((codes == g) & (y == lab)) for lab in (1, 0)] for g in range(n_groups)]


def _dense_rank(s: np.ndarray, members: np.ndarray):
    """Rank of each member's score among the members' distinct scores (others -1), and count."""
    rank = np.full(s.size, -1, dtype=np.int64)
    u, inv = np.unique(s[members], return_inverse=True)
    rank[members] = inv
    return rank, u.size


def _rank_counts(idx: np.ndarray, rank: np.ndarray, n_ranks: int) -> np.ndarray:
    """(B, n_ranks) counts of resampled cases per distinct score, from a (B, k) index matrix."""
    B = idx.shape[0]
    flat = (np.arange(B, dtype=np.int64)[:, None] * n_ranks + rank[idx]).ravel()
    return np.bincount(flat, minlength=B * n_ranks).reshape(B, n_ranks)


def _auc_from_counts(P: np.ndarray, N: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per row from (B, U) counts of positives / negatives per distinct score."""
    m, n = P.sum(1), N.sum(1)
    below2 = 2 * np.cumsum(N, axis=1) - N          # 2 * (#neg strictly below) + #neg tied
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((m > 0) & (n > 0), (P * below2).sum(1) / (2.0 * m * n), np.nan)


#: Cells (replicates x cases, or replicates x distinct scores) in one block of any resampling
#: matrix: about 0.5 MB per int64 / float64 matrix, whatever the number of cases (the measurement
#: behind the value is in docs/statistics.md, "Memory").
_CHUNK_CELLS = 1 << 16


def row_blocks(n_rows: int, width: int) -> list[slice]:
    """Blocks of rows of an ``(n_rows, width)`` matrix, small enough to hold one at a time.

    The one place where the resampling code decides its block sizes.

    Parameters
    ----------
    n_rows : int >= 0
        Rows of the full matrix (replicates, permutations).
    width : int >= 0
        Cells per row (resampled cases, distinct scores).

    Returns
    -------
    list of slice
        Consecutive slices covering ``range(n_rows)``, each of
        ``max(1, 65536 // max(width, 1))`` rows (the last one shorter).
    """
    step = max(1, _CHUNK_CELLS // max(int(width), 1))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def resample_indices(strata, *, n_boot: int, random_state=0, width: int | None = None):
    """The resampling engine: stratified bootstrap index matrices, drawn block by block.

    Every stratum (an array of case indices) is resampled with replacement to its own size in
    each of ``n_boot`` replicates. The draws are exactly those of the one-shot loop ::

        rng = numpy.random.default_rng(random_state)
        draws = [idx[rng.integers(0, idx.size, (n_boot, idx.size))] for idx in strata]

    (an empty stratum draws nothing), handed out in blocks of replicates so that memory stays
    flat in the number of cases: each stratum gets a copy of the generator positioned where the
    one-shot order starts it, and draws its rows block by block from that copy. Block sizes
    come from :func:`row_blocks`, so they never change a draw.

    Parameters
    ----------
    strata : sequence of array-like of int, each shape (k_i,)
        Case indices of each stratum, in draw order (e.g. groups by name, within a group
        malignant then benign). A stratum may be empty.
    n_boot : int >= 1
        Replicates B.
    random_state : int, numpy.random.SeedSequence or numpy.random.Generator
        Passed to ``numpy.random.default_rng``; a Generator is advanced past every draw.
    width : int, optional
        Cells per replicate that the caller holds at once, which sets the block size through
        :func:`row_blocks`; default ``sum(k_i)``.

    Returns
    -------
    iterator of (rows, draws)
        ``rows``: slice of replicate numbers; ``draws``: list with one int ndarray of shape
        ``(rows.stop - rows.start, k_i)`` of case indices per stratum, in the order of
        ``strata``. The generator is positioned when this function is called, before the
        first block is taken.
    """
    n_boot = check_int(n_boot, "n_boot", low=1)
    strata = [np.asarray(idx, dtype=np.intp).ravel() for idx in strata]
    blocks = row_blocks(n_boot, sum(idx.size for idx in strata) if width is None else width)
    rng = np.random.default_rng(random_state)
    gens = []
    for idx in strata:
        gens.append(copy.deepcopy(rng))
        if idx.size:
            for rows in blocks:   # advance past this stratum's rows, block by block as drawn below
                rng.integers(0, idx.size, (rows.stop - rows.start, idx.size))
    return _draw_blocks(strata, gens, blocks)


def _draw_blocks(strata, gens, blocks):
    for rows in blocks:
        m = rows.stop - rows.start
        yield rows, [idx[g.integers(0, idx.size, (m, idx.size))] if idx.size else np.empty((m, 0), dtype=np.intp)
                     for idx, g in zip(strata, gens)]


def _replicate_parts(pos_idx, neg_idx, pred, rank, n_ranks):
    """Per replicate: TP and FP counts (B,) and rank counts of positives / negatives (B, U)."""
    tp = pred[pos_idx].sum(1)
    fp = pred[neg_idx].sum(1)
    return tp, fp, _rank_counts(pos_idx, rank, n_ranks), _rank_counts(neg_idx, rank, n_ranks)


def _metrics_from_parts(tp, fp, P, N) -> dict:
    """Every metric of :data:`BOOT_METRICS` per replicate from :func:`_replicate_parts`."""
    fn = P.sum(1) - tp
    tn = N.sum(1) - fp
    out = rates_from_counts(tp, fn, tn, fp)
    out["auc"] = _auc_from_counts(P, N)
    out.update(tp=tp.astype(float), fn=fn.astype(float), tn=tn.astype(float), fp=fp.astype(float))
    return out


def _replicate_metrics(pos_idx, neg_idx, pred, rank, n_ranks) -> dict:
    """Every metric of :data:`BOOT_METRICS` per replicate, from (B, m) and (B, n) index matrices,
    computed in blocks of replicates so memory stays bounded."""
    blocks = [_metrics_from_parts(*_replicate_parts(pos_idx[sl], neg_idx[sl], pred, rank, n_ranks))
              for sl in row_blocks(pos_idx.shape[0], n_ranks)]
    return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}


def _prepare(y_true, y_score, groups, threshold):
    y, s = check_labels_scores(y_true, y_score)
    g = np.asarray(groups, dtype=object)
    if g.shape != y.shape:
        raise DataError(f"groups must have one entry per case; got {g.shape} for {y.size} cases")
    names, codes = np.unique(np.array([str(x) for x in g]), return_inverse=True)
    pred = (s >= check_threshold(threshold)).astype(np.int64)
    return y, s, [str(n) for n in names], codes, pred


def stratified_bootstrap(y_true, y_score, groups, *, threshold: float, n_boot: int = 2000,
                         random_state: int = 0) -> dict:
    """Bootstrap replicates of every metric per group and overall, stratified by group x label.

    Each replicate resamples, with replacement, every (group, label) stratum to its own size,
    so every replicate keeps each group's numbers of malignant and benign cases (a group with
    positives never loses them, which keeps recall and AUC defined). Draw order: groups sorted
    by name, within a group positives then benign, each stratum ``rng.integers(0, k, (B, k))``
    with ``rng = numpy.random.default_rng(random_state)`` - the same draws as
    ``scipy.stats.bootstrap`` given the strata as separate samples in that order. The draws
    come from :func:`resample_indices`, in blocks of replicates (memory flat in n).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n,)
    y_score : array-like of float in [0, 1], shape (n,)
    groups : array-like, shape (n,)
    threshold : float in [0, 1]
        Predicted malignant when ``score >= threshold``.
    n_boot : int >= 1
        Replicates B.
    random_state : int

    Returns
    -------
    dict
        ``groups`` (list of G names), ``n_boot``, ``random_state`` and ``values``: metric ->
        ndarray (B, G + 1), the last column the overall value on the union of the groups'
        resamples; metrics of :data:`BOOT_METRICS`; NaN where a replicate leaves a metric
        undefined (e.g. precision with nothing predicted malignant).
    """
    n_boot = check_int(n_boot, "n_boot", low=1)
    y, s, names, codes, pred = _prepare(y_true, y_score, groups, threshold)
    strata = [idx for pair in _strata(y, codes, len(names)) for idx in pair]   # (g, 1), (g, 0), ...
    ranks = [_dense_rank(s, codes == gi) for gi in range(len(names))]
    rank_all, u_all = _dense_rank(s, np.ones(y.size, bool))
    values = {k: np.empty((n_boot, len(names) + 1)) for k in BOOT_METRICS}
    for rows, draws in resample_indices(strata, n_boot=n_boot, random_state=random_state):
        pos, neg = draws[0::2], draws[1::2]
        for gi, (pi, ni) in enumerate(zip(pos, neg)):
            rank, u = ranks[gi]
            for k, v in _replicate_metrics(pi, ni, pred, rank, u).items():
                values[k][rows, gi] = v
        allp = np.concatenate(pos, axis=1)
        alln = np.concatenate(neg, axis=1)
        for k, v in _replicate_metrics(allp, alln, pred, rank_all, u_all).items():
            values[k][rows, -1] = v
    return {"groups": names, "n_boot": n_boot, "random_state": random_state, "values": values}


def percentile_interval(replicates, *, alpha: float = 0.05) -> dict:
    """Percentile interval of bootstrap replicates, counting undefined (NaN) replicates.

    The interval is computed over the defined replicates (``numpy.quantile``, linear
    interpolation, as scipy) and is therefore conditional on the metric being defined;
    ``n_undefined`` says how many replicates that excluded.

    Returns
    -------
    dict
        ``low, high, n_defined, n_undefined``; low/high NaN when no replicate is defined.
    """
    a = check_param(alpha, "alpha")
    r = np.asarray(replicates, dtype=float)
    ok = np.isfinite(r)
    if not ok.any():
        return {"low": _NAN, "high": _NAN, "n_defined": 0, "n_undefined": int(r.size)}
    lo, hi = np.quantile(r[ok], [a / 2, 1 - a / 2])
    return {"low": float(lo), "high": float(hi), "n_defined": int(ok.sum()), "n_undefined": int((~ok).sum())}


def permutation_test(y_true, y_score, groups, group, reference, *, threshold: float, n_perm: int = 2000,
                     random_state: int = 0, metrics=RATE_METRICS) -> dict:
    """Permutation p-values of ``metric(group) - metric(reference)`` for every metric.

    Null hypothesis: within each label, group membership is exchangeable. The cases of the two
    groups are pooled per label and their group labels permuted (each group keeps its numbers of
    malignant and benign cases); two-sided p = (1 + #{|d_b| >= |d_obs|}) / (1 + B)
    (Phipson and Smyth 2010), with a relative tolerance of 1e-12 on the comparison.

    Returns
    -------
    dict
        metric -> ``{"difference": d_obs, "p_value": p, "n_defined": k}`` (p NaN when the
        observed difference is undefined; replicates with an undefined difference are excluded
        and counted).
    """
    n_perm = check_int(n_perm, "n_perm", low=1)
    y, s, names, codes, pred = _prepare(y_true, y_score, groups, threshold)
    for name in (group, reference):
        if str(name) not in names:
            raise ConfigError(f"group {name!r} is not among the groups {names}")
    gi, ri = names.index(str(group)), names.index(str(reference))
    strata = _strata(y, codes, len(names))
    # one generator per label, so permutations can be drawn block by block (memory flat in n)
    label_rngs = [np.random.default_rng(seq) for seq in np.random.SeedSequence(random_state).spawn(2)]
    rank, u = _dense_rank(s, (codes == gi) | (codes == ri))
    # permute within each label; count only the smaller group, the other is the pool minus it
    small = gi if codes[codes == gi].size <= codes[codes == ri].size else ri
    pools = [np.concatenate([strata[gi][li], strata[ri][li]]) for li in (0, 1)]
    ks = [strata[small][li].size for li in (0, 1)]

    def permuted_side(li, m):
        if not pools[li].size:
            return np.empty((m, 0), np.int64)
        return label_rngs[li].permuted(np.tile(pools[li], (m, 1)), axis=1)[:, :ks[li]]

    pool_pos = pools[0][None, :]
    pool_neg = pools[1][None, :]
    parts_pool = _replicate_parts(pool_pos, pool_neg, pred, rank, u)
    diffs = {m: [] for m in metrics}
    for outer in row_blocks(n_perm, pools[0].size + pools[1].size):
        m_rows = outer.stop - outer.start
        side = {0: permuted_side(0, m_rows), 1: permuted_side(1, m_rows)}
        for sl in row_blocks(m_rows, u):
            parts_small = _replicate_parts(side[0][sl], side[1][sl], pred, rank, u)
            parts_other = tuple(a - b for a, b in zip(parts_pool, parts_small))
            rep_small, rep_other = _metrics_from_parts(*parts_small), _metrics_from_parts(*parts_other)
            rep_g, rep_r = (rep_small, rep_other) if small == gi else (rep_other, rep_small)
            for m in metrics:
                diffs[m].append(rep_g[m] - rep_r[m])
    obs_g = _replicate_metrics(strata[gi][0][None, :], strata[gi][1][None, :], pred, rank, u)
    obs_r = _replicate_metrics(strata[ri][0][None, :], strata[ri][1][None, :], pred, rank, u)
    out = {}
    for m in metrics:
        d_obs = float(obs_g[m][0] - obs_r[m][0])
        d = np.concatenate(diffs[m])
        ok = np.isfinite(d)
        if not math.isfinite(d_obs) or not ok.any():
            out[m] = {"difference": d_obs, "p_value": _NAN, "n_defined": int(ok.sum())}
            continue
        extreme = np.abs(d[ok]) >= abs(d_obs) * (1 - 1e-12) - 1e-15
        out[m] = {"difference": d_obs, "p_value": float((1 + extreme.sum()) / (1 + ok.sum())),
                  "n_defined": int(ok.sum())}
    return out


# ------------------------------------------------------------------------ multiplicity, power
def adjust_pvalues(p_values, *, method: str = "holm", alpha: float = 0.05) -> np.ndarray:
    """Adjusted p-values (statsmodels ``multipletests``), NaN entries left out and kept NaN.

    method : "holm" (family-wise error, for the primary contrasts) or "fdr_bh"
        (Benjamini-Hochberg false discovery rate, for exploratory sweeps).
    """
    from statsmodels.stats.multitest import multipletests

    check_choice(method, "method", ("holm", "fdr_bh"))
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=check_param(alpha, "alpha"), method=method)[1]
    return out


def min_detectable_difference(p_reference, n_reference, n_group, *, alpha: float = 0.05,
                              power: float = 0.8) -> float:
    """Smallest difference from ``p_reference`` that a two-sided test at ``alpha`` detects with
    probability ``power``, for two independent proportions with ``n_reference`` and ``n_group``
    trials (e.g. malignant cases, for recall).

    Solves Cohen's h with statsmodels ``NormalIndPower().solve_power`` and maps it back:
    h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p2)); returns the smaller of the detectable decrease and
    increase that stay inside [0, 1]; NaN when a group is empty, p_reference is NaN, or no
    difference within [0, 1] is detectable.
    """
    from statsmodels.stats.power import NormalIndPower

    a = check_param(alpha, "alpha")
    pw = check_param(power, "power")
    if not (n_reference > 0 and n_group > 0) or not math.isfinite(p_reference):
        return _NAN
    h = float(NormalIndPower().solve_power(effect_size=None, nobs1=n_reference, alpha=a, power=pw,
                                           ratio=n_group / n_reference, alternative="two-sided"))
    base = math.asin(math.sqrt(p_reference))
    cands = []
    if base - h / 2 >= 0:
        cands.append(p_reference - math.sin(base - h / 2) ** 2)
    if base + h / 2 <= math.pi / 2:
        cands.append(math.sin(base + h / 2) ** 2 - p_reference)
    return float(min(cands)) if cands else _NAN


def verdict(p_adjusted, ci, *, alpha: float, n_positives, min_positives: int, max_ci_width: float) -> tuple:
    """The verdict rule for one contrast.

    - "insufficient data" when a compared group has fewer than ``min_positives`` malignant cases,
      the difference or its p-value is undefined, or the interval is wider than ``max_ci_width``;
    - "significant" only when ``p_adjusted < alpha`` *and* the interval excludes 0;
    - "not significant" otherwise.

    Returns
    -------
    (verdict, reason) : (str, str)
    """
    a = check_param(alpha, "alpha")
    lo, hi = (float(ci[0]), float(ci[1]))
    few = min(n_positives)
    if few < min_positives:
        return "insufficient data", f"a compared group has {few} malignant cases, below the floor of {min_positives}"
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(p_adjusted)):
        return "insufficient data", "the difference, its interval or its p-value is undefined"
    if hi - lo > max_ci_width:
        return "insufficient data", f"the interval is {hi - lo:.3f} wide, wider than the tolerance {max_ci_width:g}"
    excludes = lo > 0 or hi < 0
    if p_adjusted < a and excludes:
        return "significant", f"adjusted p = {p_adjusted:.3g} < {a:g} and the interval excludes 0"
    if p_adjusted < a:
        return "not significant", f"adjusted p = {p_adjusted:.3g} < {a:g} but the interval includes 0"
    return "not significant", f"adjusted p = {p_adjusted:.3g} >= {a:g}"
