"""Per-image uncertainty of ITA: a bootstrap over skin patches, then an interval and group
probabilities after the dataset-level cast step.

Two steps, because the cast step (:func:`~skinaudit.skintone.correct_cast`) shifts b* after the
per-image rows are made (and cached):

1. Per image (:func:`patch_bootstrap`): the skin sample is cut into square patches of
   ``patch_size`` working-size pixels (neighbouring pixels are correlated, so pixels are not
   resampled one by one); patches are drawn with replacement ``n_boot`` times and the robust L*
   and b* recomputed. The row keeps their standard errors ``L_se``, ``b_se`` and correlation
   ``Lb_corr``. The trimming window is re-estimated per resample, per channel (a fixed window
   underestimated the error by about half on real images: docs/skintone.md).
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
#: Histogram bins in :func:`patch_bootstrap`, over the sample's median +- HIST_SD standard
#: deviations (a bin is 0.09 SD wide; the resampled statistic is interpolated inside it).
N_BINS = 64
HIST_SD = 3.0
#: Fewer patches than this: no bootstrap (NaN errors), the resamples would not vary enough.
MIN_PATCHES = 5


def _weighted_quantile_at(cs, counts, level, lo, step):
    """Per row of the cumulative bin counts ``cs`` (B, bins), the value where the count reaches
    ``level`` (B,), interpolated inside its bin (bins of width ``step`` from ``lo``)."""
    n_bins = cs.shape[1]
    idx = np.minimum((cs < level[:, None]).sum(axis=1), n_bins - 1)
    rows = np.arange(len(idx))
    below = cs[rows, idx] - counts[rows, idx]
    frac = np.clip((level - below) / np.maximum(counts[rows, idx], 1), 0.0, 1.0)
    return lo + (idx + frac) * step


def patch_bootstrap(lab, rows, cols, *, statistic="trimmed_median", trim_sd=1.0, n_boot=100, patch_size=8,
                    random_state=0):
    """Bootstrap standard errors of the skin's robust L* and b* over patches of the skin sample.

    Each resample draws the sample's patches with replacement and recomputes the statistic on
    each channel from per-patch histograms of ``N_BINS`` bins (interpolated inside a bin):
    ``median``; ``trimmed_median``: the median of the values within ``trim_sd`` SD of the
    resample's median, the window re-estimated per resample on that channel (the image's
    statistic trims on L* and b* jointly; per channel is what keeps this cheap);
    ``trimmed_mean``: the same with the mean.

    Parameters
    ----------
    lab : ndarray of float, shape (n, 3)
        CIELAB of the skin pixels.
    rows, cols : ndarray of int, shape (n,)
        Their positions in the working image (pixels).
    statistic : {'trimmed_median', 'median', 'trimmed_mean'}
    trim_sd : float, > 0
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
        error is 0); NaN when ``n_boot`` is 0 or the pixels lie in fewer than
        :data:`MIN_PATCHES` patches.
    """
    nan = (float("nan"),) * 3
    lab = np.asarray(lab, dtype=float)
    if n_boot <= 0 or len(lab) == 0:
        return nan
    r = np.asarray(rows) // patch_size
    c = np.asarray(cols) // patch_size
    _, pid = np.unique(r * (int(c.max()) + 1) + c, return_inverse=True)
    n_patch = int(pid.max()) + 1
    if n_patch < MIN_PATCHES:
        return nan
    n_boot = int(n_boot)
    rng = np.random.default_rng(random_state)
    draws = rng.integers(0, n_patch, size=(n_boot, n_patch))  # patches drawn with replacement
    flat = (draws + np.arange(n_boot)[:, None] * n_patch).ravel()
    # float32 products: integer counts stay exact (< 2**24) and the small single-precision
    # products run in well under a millisecond (double precision let BLAS start threads that
    # competed with the worker processes: about 20x slower on 2 cores)
    weights = np.bincount(flat, minlength=n_boot * n_patch).reshape(n_boot, n_patch).astype(np.float32)
    n_pix = (weights @ np.bincount(pid, minlength=n_patch).astype(np.float32)).astype(float)
    est = []
    for ch in (0, 2):
        origin = float(np.median(lab[:, ch]))
        x = lab[:, ch] - origin  # centred, so that single-precision sums of x and x**2 stay exact enough
        mean = (weights @ np.bincount(pid, weights=x, minlength=n_patch).astype(np.float32)) / n_pix
        sq = weights @ np.bincount(pid, weights=x * x, minlength=n_patch).astype(np.float32)
        sd = np.sqrt(np.maximum(sq / n_pix - mean ** 2, 0.0))
        # bins over the sample's median +- HIST_SD SD (the tails go to the end bins: they count
        # towards every quantile but never hold the median or a trimming edge)
        half_range = HIST_SD * max(float(x.std()), 1e-6)
        lo = -half_range
        step = 2.0 * half_range / N_BINS
        k = np.clip(np.floor((x - lo) / step), 0, N_BINS - 1).astype(np.int64)
        hist = np.bincount(pid * N_BINS + k, minlength=n_patch * N_BINS).reshape(n_patch, N_BINS)
        counts = (weights @ hist.astype(np.float32)).astype(float)
        cs = np.cumsum(counts, axis=1)
        centre = mean if statistic == "trimmed_mean" else _weighted_quantile_at(cs, counts, n_pix / 2.0, lo, step)
        if statistic == "median":
            est.append(centre + origin)
            continue
        if statistic == "trimmed_mean":
            centres = lo + (np.arange(N_BINS) + 0.5) * step
            inside = (centres[None] >= centre[:, None] - trim_sd * sd[:, None]) & \
                     (centres[None] <= centre[:, None] + trim_sd * sd[:, None])
            est.append(origin + (counts * inside * centres).sum(axis=1) / np.maximum((counts * inside).sum(axis=1), 1))
            continue
        # the resample's window [centre - trim_sd sd, centre + trim_sd sd] in cumulative counts
        edges = [np.clip((centre + s * trim_sd * sd - lo) / step, 0.0, N_BINS) for s in (-1.0, 1.0)]
        cs0 = np.concatenate([np.zeros((n_boot, 1)), cs], axis=1)  # counts below each bin edge
        cum = []
        for e in edges:
            i = np.minimum(np.floor(e).astype(np.int64), N_BINS - 1)
            at = cs0[np.arange(n_boot), i]
            cum.append(at + (e - i) * (cs0[np.arange(n_boot), i + 1] - at))
        cum = np.stack(cum, axis=1)
        est.append(origin + _weighted_quantile_at(cs, counts, (cum[:, 0] + cum[:, 1]) / 2.0, lo, step))
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

