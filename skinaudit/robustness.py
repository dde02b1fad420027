"""Does a fairness finding survive the uncertainty of the skin-tone measurement itself?

A group gap is computed from images assigned to ITA groups; the assignment is uncertain (an
image's ITA has an interval, and a different ITA estimator puts some images in another group).
:func:`measurement_robustness` repeats each primary contrast

- over ``n_draws`` group assignments drawn from the per-image group probabilities (multiple
  imputation of the group: every image is drawn into a group with its probability of being
  there, independently), and
- over every ITA estimator variant of the sensitivity table (on the images it was run on),

and says whether the gap's sign and its significance hold. Significance in a draw is the
analytic interval (Newcombe for recall, DeLong for AUC) at level ``alpha / k`` with ``k`` the
number of primary contrasts: a Bonferroni stand-in for the audit's Holm-adjusted permutation
tests, which are too costly to repeat per draw (see docs/statistics.md).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .metrics import gap
from .stats import delong_unpaired, newcombe_interval

__all__ = ["measurement_robustness", "HOLD_SHARE"]

#: Share of draws in which the sign (and the significance status) must agree for a finding to hold.
HOLD_SHARE = 0.95


def _contrast(y, s, groups, g, ref, metric, threshold, alpha) -> tuple[float, bool | None]:
    """(gap, significant) of ``metric`` between groups ``g`` and ``ref``; NaN / None when undefined."""
    a, b = groups == g, groups == ref
    if metric == "recall":
        pa, pb = a & (y == 1), b & (y == 1)
        tp_a, tp_b = int((s[pa] >= threshold).sum()), int((s[pb] >= threshold).sum())
        if not pa.any() or not pb.any():
            return float("nan"), None
        d, lo, hi = newcombe_interval(tp_a, int(pa.sum()), tp_b, int(pb.sum()), alpha=alpha)
        d = gap(tp_a / pa.sum(), tp_b / pb.sum())
    else:  # auc
        res = delong_unpaired(y[a], s[a], y[b], s[b], alpha=alpha)
        d, (lo, hi) = res["diff"], res["ci"]
    if not np.isfinite(d):
        return float("nan"), None
    significant = None if not (np.isfinite(lo) and np.isfinite(hi)) else bool(lo > 0 or hi < 0)
    return float(d), significant


def measurement_robustness(y_true, y_score, groups, probabilities: pd.DataFrame | None, *, reference: str,
                           threshold: float, alpha: float, observed: dict, variants: dict | None = None,
                           primary=("recall", "auc"), n_draws: int = 200, random_state: int = 0) -> dict:
    """Whether each primary contrast's sign and significance hold across group-assignment draws
    and ITA estimator variants.

    Parameters
    ----------
    y_true, y_score, groups : array-like, shape (n,)
        The compared images (known groups only).
    probabilities : DataFrame, shape (n, G), optional
        Per-image probability of each group (columns: group names; rows sum to 1). None: no
        draws (only the variants are checked).
    reference : str
        The reference group of the audit's fairness section.
    observed : dict
        ``{metric: {group: verdict}}``: the audit's own verdicts for the contrasts
        (``"significant"``, ``"not significant"``, ``"insufficient data"``; a bool means
        significant or not).
    variants : dict, optional
        ``{variant name: (y, s, groups)}``: the same contrast under another ITA estimator.
    n_draws : int
        Group-assignment draws.

    Returns
    -------
    dict
        ``method, n_draws, hold_share, alpha_per_contrast, contrasts: {metric: {group: {gap,
        observed_significant, same_sign, same_significance, variants, holds}}}, summary`` (list of
        sentences).
    """
    y, s = np.asarray(y_true, int), np.asarray(y_score, float)
    g_obs = np.asarray(groups, dtype=object).astype(str)
    others = [str(g) for g in pd.unique(g_obs) if str(g) != str(reference)]
    k = max(1, len(others) * len(primary))
    a_k = alpha / k
    draws = []
    if probabilities is not None and len(probabilities.columns):
        rng = np.random.default_rng(random_state)
        p = probabilities.to_numpy(dtype=float)
        p = np.where(np.isfinite(p), p, 0.0)
        total = p.sum(axis=1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1), 0.0)
        names = np.array([str(c) for c in probabilities.columns], dtype=object)
        cum = np.cumsum(p, axis=1)
        for _ in range(n_draws):
            u = rng.random((len(y), 1))
            idx = np.minimum((u > cum).sum(axis=1), len(names) - 1)
            drawn = names[idx].astype(str)
            drawn = np.where(total[:, 0] > 0, drawn, g_obs)  # no probabilities: the observed group
            draws.append(drawn)
    contrasts, summary = {}, []
    for met in primary:
        contrasts[met] = {}
        for g in others:
            d_obs, sig_obs = _contrast(y, s, g_obs, g, reference, met, threshold, a_k)
            verdict = (observed.get(met) or {}).get(g, bool(sig_obs))
            observed_sig = verdict == "significant" if isinstance(verdict, str) else bool(verdict)
            results = [_contrast(y, s, dg, g, reference, met, threshold, a_k) for dg in draws]
            defined = [(d, sg) for d, sg in results if np.isfinite(d)]
            same_sign = (float(np.mean([np.sign(d) == np.sign(d_obs) for d, _ in defined]))
                         if defined and np.isfinite(d_obs) else None)
            same_sig = (float(np.mean([bool(sg) == observed_sig for _, sg in defined if sg is not None]))
                        if any(sg is not None for _, sg in defined) else None)
            var_out = {}
            for name, (vy, vs, vg) in (variants or {}).items():
                dv, sv = _contrast(np.asarray(vy, int), np.asarray(vs, float),
                                   np.asarray(vg, dtype=object).astype(str), g, reference, met, threshold, a_k)
                var_out[name] = {"gap": dv, "significant": sv,
                                 "same_sign": None if not (np.isfinite(dv) and np.isfinite(d_obs))
                                 else bool(np.sign(dv) == np.sign(d_obs))}
            checks = [x for x in (same_sign, same_sig) if x is not None]
            var_signs = [v["same_sign"] for v in var_out.values() if v["same_sign"] is not None]
            holds = None if not (checks or var_signs) else bool(all(x >= HOLD_SHARE for x in checks)
                                                                and all(var_signs))
            contrasts[met][g] = {"gap": d_obs, "observed_significant": observed_sig,
                                 "verdict": verdict if isinstance(verdict, str) else None,
                                 "n_draws_defined": len(defined), "same_sign": same_sign,
                                 "same_significance": same_sig, "variants": var_out, "holds": holds}
            summary.append(_sentence(met, g, reference, contrasts[met][g], len(draws)))
    return {"method": "group-assignment draws from the per-image group probabilities, and the ITA estimator "
                      "variants of the sensitivity table",
            "n_draws": len(draws), "hold_share": HOLD_SHARE, "alpha_per_contrast": a_k,
            "contrasts": contrasts, "summary": summary}


def _sentence(met: str, g: str, ref: str, c: dict, n_draws: int) -> str:
    d = c["gap"]
    if not np.isfinite(d):
        return f"{met} {g} vs {ref}: undefined gap, nothing to check."
    direction = "lower" if d < 0 else "higher"
    verdict = f" (audit verdict: {c['verdict']})" if c.get("verdict") else ""
    parts = [f"{met} of '{g}' is {abs(d):.3f} {direction} than '{ref}'{verdict}"]
    if c["same_sign"] is not None:
        parts.append(f"keeps its direction in {c['same_sign']:.0%} of {n_draws} group-assignment draws")
    if c["same_significance"] is not None:
        status = "significant" if c["observed_significant"] else "not significant"
        parts.append(f"stays {status} in {c['same_significance']:.0%}")
    var = [v["same_sign"] for v in c["variants"].values() if v["same_sign"] is not None]
    if var:
        parts.append(f"keeps its direction under {sum(var)} of {len(var)} other ITA estimator variants")
    undefined = len(c["variants"]) - len(var)
    if undefined:
        parts.append(f"{undefined} variant(s) leave too few images in a group to compute it")
    verdict = ("nothing to check it against" if c["holds"] is None else
               "the finding holds under measurement uncertainty" if c["holds"] else
               "the finding does NOT hold under measurement uncertainty")
    return "; ".join(parts) + f": {verdict}."
