"""Per-image uncertainty of ITA: a bootstrap over skin patches, then an interval and group
probabilities after the dataset-level cast step.

Two steps, because the cast step (:func:`~skinaudit.skintone.correct_cast`) shifts b* after the
per-image rows are made (and cached):

1. Per image (:func:`patch_bootstrap`): the skin sample is cut into square patches of
   ``patch_size`` working-size pixels (neighbouring pixels are correlated, so pixels are not
   resampled one by one); patches are drawn with replacement ``n_boot`` times and the robust L*
   and b* recomputed. The row keeps their standard errors ``L_se``, ``b_se`` and correlation
   ``Lb_corr``. The statistic is recomputed on the pixels kept by the full sample's trimming
   window (the window itself is not re-estimated per resample: that is what keeps it cheap).
2. Per dataset (:func:`add_uncertainty`), after the cast step: ``(L*, b*)`` is drawn from the
   bivariate normal with those errors around the (corrected) estimate, with one fixed set of
   standard-normal draws for every image, and ITA computed per draw as the angle
   ``degrees(arctan2(L* - 50, b*))`` clipped to [-90, 90] (the continuous extension of the ITA
   formula: a draw with b* <= 0 reads as ITA 90 on the light side, -90 on the dark side, never
   as a sign flip). ``ita_low``, ``ita_high``: the 2.5% and 97.5% quantiles of the draws;
   ``p_<label>``: the share of draws in each bin of the scheme (they sum to 1).

Deterministic: the bootstrap seed and the draws are fixed (``ItaParams.random_state``), so one
image's numbers depend only on its pixels, never on its id or its place in the dataset.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .schemes import get_scheme

__all__ = ["patch_bootstrap", "add_uncertainty", "straddle_counts", "probability_columns"]

#: Draws from the bivariate normal per image behind ``ita_low``, ``ita_high`` and ``p_<label>``.
N_DRAWS = 2000
#: Histogram bins over the kept pixels' range in :func:`patch_bootstrap` (the resampled median is
#: interpolated inside a bin of 1/N_BINS of that range: about 0.05 L* units on real skin).
N_BINS = 64
#: Fewer patches than this: no bootstrap (NaN errors), the resamples would not vary enough.
MIN_PATCHES = 5


def patch_bootstrap(lab, rows, cols, kept, *, statistic="trimmed_median", n_boot=100, patch_size=8,
                    random_state=0):
    """Bootstrap standard errors of the skin's robust L* and b* over patches of the skin sample.

    Parameters
    ----------
    lab : ndarray of float, shape (n, 3)
        CIELAB of the skin pixels.
    rows, cols : ndarray of int, shape (n,)
        Their positions in the working image (pixels).
    kept : ndarray of bool, shape (n,)
        Pixels inside the statistic's trimming window (all True for ``median``).
    statistic : {'trimmed_median', 'median', 'trimmed_mean'}
        Medians (weighted lower median) or means of the kept pixels.
    n_boot : int, >= 0
        Resamples; 0 returns NaN.
    patch_size : int, >= 1
        Patch side in pixels.
    random_state : int
        Seed of the resampling.

    Returns
    -------
    (float, float, float)
        ``L_se, b_se`` (CIELAB units) and the correlation of the resampled L* and b* (0 when an
        error is 0); NaN when ``n_boot`` is 0 or the kept pixels lie in fewer than
        :data:`MIN_PATCHES` patches.
    """
    nan = (float("nan"),) * 3
    lab = np.asarray(lab, dtype=float)[kept]
    if n_boot <= 0 or len(lab) == 0:
        return nan
    r = np.asarray(rows)[kept] // patch_size
    c = np.asarray(cols)[kept] // patch_size
    _, pid = np.unique(r * (int(c.max()) + 1) + c, return_inverse=True)
    n_patch = int(pid.max()) + 1
    if n_patch < MIN_PATCHES:
        return nan
    rng = np.random.default_rng(random_state)
    # integer counts: numpy's own integer matmul, not a (multi-threaded) BLAS call that would
    # compete with the worker processes for the cores
    draws = rng.integers(0, n_patch, size=(int(n_boot), n_patch))  # patches drawn with replacement
    flat = (draws + np.arange(int(n_boot))[:, None] * n_patch).ravel()
    weights = np.bincount(flat, minlength=int(n_boot) * n_patch).reshape(int(n_boot), n_patch).astype(np.int32)
    est = []
    for ch in (0, 2):
        x = lab[:, ch]
        if statistic == "trimmed_mean":
            sums = np.bincount(pid, weights=x, minlength=n_patch)
            counts = np.bincount(pid, minlength=n_patch)
            est.append((weights @ sums) / np.maximum(weights @ counts, 1e-12))
            continue
        # weighted median of the resampled pixels from a histogram of N_BINS bins per patch,
        # (n_boot x patches) @ (patches x bins), interpolated inside the median's bin
        lo, hi = float(x.min()), float(x.max())
        step = max((hi - lo) / N_BINS, 1e-9)
        k = np.minimum(((x - lo) / step).astype(np.int64), N_BINS - 1)
        hist = np.bincount(pid * N_BINS + k, minlength=n_patch * N_BINS).reshape(n_patch, N_BINS).astype(np.int32)
        counts = weights @ hist
        cs = np.cumsum(counts, axis=1)
        half = cs[:, -1] / 2.0
        idx = np.minimum((cs < half[:, None]).sum(axis=1), N_BINS - 1)
        rows_ = np.arange(len(idx))
        below = cs[rows_, idx] - counts[rows_, idx]
        frac = (half - below) / np.maximum(counts[rows_, idx], 1)
        est.append(lo + (idx + frac) * step)
    # a uniform sample resamples to the same value: its error is 0, not rounding noise
    L_se, b_se = (float(np.std(e, ddof=1)) if np.ptp(e) > 1e-9 else 0.0 for e in est)
    corr = float(np.corrcoef(est[0], est[1])[0, 1]) if L_se > 0 and b_se > 0 else 0.0
    return L_se, b_se, corr


def probability_columns(scheme) -> list[str]:
    """``p_<label>`` per bin of the scheme, darkest first."""
    return [f"p_{lab}" for lab in get_scheme(scheme).labels]


def _draws(random_state: int) -> np.ndarray:
    return np.random.default_rng(random_state).standard_normal((2, N_DRAWS))


def add_uncertainty(table: pd.DataFrame, scheme="binary", *, level: float = 0.95, random_state: int = 0,
                    b_column: str | None = None) -> pd.DataFrame:
    """``ita_low``, ``ita_high`` and ``p_<label>`` per row from ``L``, b*, ``L_se``, ``b_se``, ``Lb_corr``.

    Parameters
    ----------
    table : DataFrame, n rows
        Per-image rows (:func:`~skinaudit.skintone.inspect_dataset`), after the cast step when
        there is one. Rows get values only where ``ita`` is finite, the errors are finite and
        the ITA was estimated (not given by the dataset).
    scheme : str, sequence or Scheme
    level : float, in (0, 1)
        Coverage of the interval (default 0.95).
    random_state : int
        Seed of the fixed standard-normal draws shared by every row.
    b_column : str, optional
        The b* column; default ``b_corrected`` when present, else ``b``.

    Returns
    -------
    DataFrame
        A copy with ``ita_low, ita_high`` (degrees, NaN where not computed) and one
        ``p_<label>`` column per bin of the scheme (summing to 1 where computed, NaN elsewhere).
    """
    sch = get_scheme(scheme)
    out = table.copy()
    n = len(out)
    b_col = b_column or ("b_corrected" if "b_corrected" in out else "b")

    def num(col):
        return pd.to_numeric(out[col], errors="coerce").to_numpy(float) if col in out else np.full(n, np.nan)

    L, b, ita = num("L"), num(b_col), num("ita")
    L_se, b_se, rho = num("L_se"), num("b_se"), np.nan_to_num(num("Lb_corr"))
    ok = np.isfinite(ita) & np.isfinite(L) & np.isfinite(b) & np.isfinite(L_se) & np.isfinite(b_se)
    if "method" in out:
        ok &= ~out["method"].astype(str).str.startswith("given").to_numpy()
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    probs = np.full((n, len(sch.labels)), np.nan)
    z1, z2 = _draws(random_state)
    cuts = np.asarray(sch.cuts)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    for start in range(0, n, 256):
        sel = np.flatnonzero(ok[start:start + 256]) + start
        if not len(sel):
            continue
        r = np.clip(rho[sel], -1, 1)[:, None]
        Ld = L[sel, None] + L_se[sel, None] * z1[None]
        bd = b[sel, None] + b_se[sel, None] * (r * z1[None] + np.sqrt(1 - r ** 2) * z2[None])
        d = np.clip(np.degrees(np.arctan2(Ld - 50.0, bd)), -90.0, 90.0)
        low[sel], high[sel] = np.percentile(d, q, axis=1)
        idx = np.searchsorted(cuts, d, side="left")  # the half-open bins of assign_groups
        probs[sel] = np.stack([(idx == k).mean(axis=1) for k in range(len(sch.labels))], axis=1)
    out["ita_low"], out["ita_high"] = low, high
    for k, col in enumerate(probability_columns(sch)):
        out[col] = probs[:, k]
    return out


def straddle_counts(table: pd.DataFrame, scheme="binary") -> dict:
    """Images whose ITA interval contains a cut point of the scheme.

    Returns
    -------
    dict
        ``n_with_interval``, ``n_straddling`` (interval contains at least one cut point),
        ``by_cut`` (cut point text -> images whose interval contains it) and
        ``median_width`` (degrees; None without intervals).
    """
    sch = get_scheme(scheme)
    low = pd.to_numeric(table.get("ita_low", pd.Series(np.nan, index=table.index)), errors="coerce").to_numpy(float)
    high = pd.to_numeric(table.get("ita_high", pd.Series(np.nan, index=table.index)), errors="coerce").to_numpy(float)
    has = np.isfinite(low) & np.isfinite(high)
    by_cut = {f"{c:g}": int(np.sum(has & (low <= c) & (high > c))) for c in sch.cuts}
    any_cut = np.zeros(len(low), dtype=bool)
    for c in sch.cuts:
        any_cut |= has & (low <= c) & (high > c)
    return {"n_with_interval": int(has.sum()), "n_straddling": int(any_cut.sum()), "by_cut": by_cut,
            "median_width": float(np.median(high[has] - low[has])) if has.any() else None}

