"""Test-retest reliability of a per-image skin-tone measure and agreement between its variants.

Repeated photographs of one lesion (or one patient) share one skin: a skin-tone measure that is
a property of the skin should give them (nearly) the same value. This module measures how far
that holds, from plain arrays:

- :func:`icc1`: the one-way random-effects intraclass correlation ICC(1) of a continuous
  measure (single measurement), with unequal numbers of images per lesion;
- :func:`icc1_interval`: its lesion-level percentile bootstrap interval (lesions resampled with
  replacement through :func:`skinaudit.stats.resample_indices`);
- :func:`flip_rate`: the share of repeat pairs whose group label differs;
- :func:`fleiss_kappa_labels`: Fleiss' kappa of several estimator variants' group labels on the
  same images (statsmodels);
- :func:`icc_reading`: the plain-language band of Koo & Li (2016).

Choices and measured values: docs/skintone.md, section "Reliability".
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..validation import check_int, check_param

__all__ = ["icc1", "icc1_interval", "flip_rate", "fleiss_kappa_labels", "icc_reading", "reliability_summary",
           "ICC_BANDS"]

#: Koo & Li 2016 (J Chiropr Med 15:155): poor < 0.5 <= moderate < 0.75 <= good < 0.9 <= excellent.
ICC_BANDS = ((0.5, "poor"), (0.75, "moderate"), (0.9, "good"), (np.inf, "excellent"))


def _repeated(values, clusters):
    """Finite values of clusters with >= 2 of them: (values float, cluster codes 0..a-1)."""
    v = np.asarray(values, dtype=float).ravel()
    c = pd.Series(np.asarray(clusters, dtype=object).ravel())
    if v.size != c.size:
        raise ConfigError(f"values and clusters must have the same length; got {v.size} and {c.size}")
    ok = np.isfinite(v) & c.notna().to_numpy()
    v, c = v[ok], c[ok]
    sizes = c.map(c.value_counts())
    keep = (sizes >= 2).to_numpy()
    codes = pd.factorize(c[keep], sort=True)[0]
    return v[keep], codes


def _icc_stats(counts, n_i, s_i, q_i):
    """ICC(1) for each row of ``counts`` (lesion multiplicities, shape (B, a))."""
    counts = np.atleast_2d(counts).astype(float)
    a = counts.sum(axis=1)
    n = counts @ n_i
    s = counts @ s_i
    ssw = counts @ (q_i - s_i ** 2 / n_i)
    sst = counts @ q_i - s ** 2 / n
    ssb = sst - ssw
    with np.errstate(divide="ignore", invalid="ignore"):
        msb = ssb / (a - 1)
        msw = ssw / (n - a)
        k0 = (n - (counts @ n_i ** 2) / n) / (a - 1)
        icc = (msb - msw) / (msb + (k0 - 1) * msw)
    icc[~np.isfinite(icc)] = np.nan
    return icc, msb, msw, k0


def _lesion_sums(values, codes):
    centred = values - values.mean() if values.size else values
    a = int(codes.max()) + 1 if codes.size else 0
    n_i = np.bincount(codes, minlength=a).astype(float)
    s_i = np.bincount(codes, weights=centred, minlength=a)
    q_i = np.bincount(codes, weights=centred ** 2, minlength=a)
    return n_i, s_i, q_i


def icc1(values, clusters) -> dict:
    """One-way random-effects intraclass correlation ICC(1) of a single measurement.

    With a lesions, n_i images of lesion i and N = sum n_i images (only lesions with at least
    two finite values count),

        MSB = sum_i n_i (mean_i - mean)^2 / (a - 1),   MSW = sum_ij (x_ij - mean_i)^2 / (N - a),
        k0 = (N - sum_i n_i^2 / N) / (a - 1),          ICC(1) = (MSB - MSW) / (MSB + (k0 - 1) MSW)

    (Shrout & Fleiss 1979, case 1; k0 for unequal group sizes as in Donner 1986). Its expectation
    is sigma_lesion^2 / (sigma_lesion^2 + sigma_error^2). Negative estimates are kept (they mean
    less agreement than chance), not clipped.

    Parameters
    ----------
    values : array_like of float, shape (n,)
        The measure per image (e.g. ITA in degrees); NaN values are left out.
    clusters : array_like, shape (n,)
        Lesion (or patient) id per image; missing ids are left out.

    Returns
    -------
    dict
        ``icc`` (NaN with ``reason`` when fewer than two lesions have two values or all values
        are equal), ``n_lesions``, ``n_images``, ``msb``, ``msw``, ``k0``.
    """
    v, codes = _repeated(values, clusters)
    n_i, s_i, q_i = _lesion_sums(v, codes)
    out = {"icc": float("nan"), "n_lesions": int(n_i.size), "n_images": int(v.size), "msb": float("nan"),
           "msw": float("nan"), "k0": float("nan")}
    if n_i.size < 2:
        out["reason"] = f"fewer than two lesions with two or more values (found {n_i.size})"
        return out
    icc, msb, msw, k0 = _icc_stats(np.ones((1, n_i.size)), n_i, s_i, q_i)
    out.update(icc=float(icc[0]), msb=float(msb[0]), msw=float(msw[0]), k0=float(k0[0]))
    if not np.isfinite(icc[0]):
        out["reason"] = "every value is equal (no variance)"
    return out


def icc1_interval(values, clusters, *, n_boot: int = 2000, alpha: float = 0.05, random_state=0) -> dict:
    """Percentile bootstrap interval of :func:`icc1`, resampling lesions with replacement.

    Each replicate draws a lesions (of those with two or more values) with replacement and keeps
    all their images; a lesion drawn twice counts as two lesions. Draws come from
    :func:`skinaudit.stats.resample_indices` with the lesions as one stratum.

    Returns
    -------
    dict
        ``low, high, n_defined, n_undefined`` (:func:`skinaudit.stats.percentile_interval`).
    """
    from ..stats import percentile_interval, resample_indices

    n_boot = check_int(n_boot, "n_boot", low=1)
    alpha = check_param(alpha, "alpha")
    v, codes = _repeated(values, clusters)
    n_i, s_i, q_i = _lesion_sums(v, codes)
    a = n_i.size
    if a < 2:
        return percentile_interval(np.full(n_boot, np.nan), alpha=alpha)
    reps = np.empty(n_boot)
    for rows, (draw,) in resample_indices([np.arange(a)], n_boot=n_boot, random_state=random_state):
        k = draw.shape[0]
        counts = np.bincount((draw + a * np.arange(k)[:, None]).ravel(), minlength=k * a).reshape(k, a)
        reps[rows] = _icc_stats(counts, n_i, s_i, q_i)[0]
    return percentile_interval(reps, alpha=alpha)


def flip_rate(groups, clusters, *, unknown: str = "unknown") -> dict:
    """Share of repeat pairs (two images of one lesion) whose group labels differ.

    Every unordered pair of images within a lesion counts once; a lesion of m images gives
    m (m - 1) / 2 pairs. Pairs with an ``unknown`` (or missing) label are counted apart.

    Returns
    -------
    dict
        ``flip_rate`` (NaN when no pair has two known labels), ``n_pairs`` (pairs with two known
        labels), ``n_flips``, ``n_pairs_unknown``.
    """
    g = pd.Series(np.asarray(groups, dtype=object).ravel())
    c = pd.Series(np.asarray(clusters, dtype=object).ravel())
    if g.size != c.size:
        raise ConfigError(f"groups and clusters must have the same length; got {g.size} and {c.size}")
    known = g.notna() & (g.astype(str) != unknown)
    frame = pd.DataFrame({"g": g.where(known), "c": c})[c.notna()]
    n_pairs = n_flips = n_unknown = 0
    for _, labels in frame.groupby("c", sort=False)["g"]:
        m = len(labels)
        if m < 2:
            continue
        k = labels.dropna()
        counts = k.value_counts().to_numpy()
        pairs_known = len(k) * (len(k) - 1) // 2
        n_pairs += pairs_known
        n_flips += pairs_known - int((counts * (counts - 1) // 2).sum())
        n_unknown += m * (m - 1) // 2 - pairs_known
    return {"flip_rate": n_flips / n_pairs if n_pairs else float("nan"), "n_pairs": n_pairs, "n_flips": n_flips,
            "n_pairs_unknown": n_unknown}


def fleiss_kappa_labels(labels: pd.DataFrame, *, unknown: str = "unknown") -> dict:
    """Fleiss' kappa of group labels given by several raters (estimator variants) to the same images.

    Parameters
    ----------
    labels : DataFrame, shape (n_images, n_variants)
        One column of group labels per variant. Images where any variant is ``unknown`` or
        missing are left out (Fleiss' kappa needs every image rated by every variant).

    Returns
    -------
    dict
        ``kappa`` (statsmodels ``fleiss_kappa``; NaN with ``reason`` when fewer than two variants
        or images remain, or every label is the same), ``n_images``, ``n_variants``,
        ``n_images_unknown`` (left out).
    """
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    frame = labels.astype(object)
    known = frame.notna().all(axis=1) & (frame.astype(str) != unknown).all(axis=1)
    out = {"kappa": float("nan"), "n_images": int(known.sum()), "n_variants": int(frame.shape[1]),
           "n_images_unknown": int((~known).sum())}
    if frame.shape[1] < 2 or known.sum() < 2:
        out["reason"] = "fewer than two variants or two images with a known group under every variant"
        return out
    codes = np.column_stack([pd.Categorical(frame.loc[known, col].astype(str),
                                            categories=sorted(set(frame[known].astype(str).to_numpy().ravel())))
                             .codes for col in frame.columns])
    table, _ = aggregate_raters(codes)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = float(fleiss_kappa(table, method="fleiss"))
    if not np.isfinite(kappa):
        out["reason"] = "every variant gives every image the same group (kappa undefined)"
        return out
    out["kappa"] = kappa
    return out


def icc_reading(icc: float) -> str:
    """Plain reading of an ICC (Koo & Li 2016): ``poor`` (< 0.5), ``moderate`` (< 0.75), ``good``
    (< 0.9) or ``excellent``; ``undefined`` for NaN."""
    if icc is None or not np.isfinite(icc):
        return "undefined"
    return next(name for upper, name in ICC_BANDS if icc < upper)


def reliability_summary(ita, groups, clusters, *, column: str, n_boot: int, alpha: float, random_state,
                        variant_labels: pd.DataFrame | None = None, unknown: str = "unknown") -> dict:
    """The ``skintone.reliability`` section: ICC(1) of ``ita`` over repeats with its interval,
    group flips between repeats, and Fleiss' kappa of the estimator variants (when given).

    Parameters
    ----------
    ita : array_like of float, shape (n,)
        ITA in degrees per image (NaN: no value).
    groups : array_like of str, shape (n,)
        ITA group per image.
    clusters : array_like, shape (n,)
        Lesion or patient id per image (the repeat column).
    column : str
        Name of the repeat column (recorded).
    n_boot, alpha, random_state
        Bootstrap replicates, level and seed of the ICC interval.
    variant_labels : DataFrame, optional
        Group labels per image (rows) and estimator variant (columns) for
        :func:`fleiss_kappa_labels`.
    """
    est = icc1(ita, clusters)
    ci = icc1_interval(ita, clusters, n_boot=n_boot, alpha=alpha, random_state=random_state)
    flips = flip_rate(groups, clusters, unknown=unknown)
    clusters_s = pd.Series(np.asarray(clusters, dtype=object).ravel())
    sizes = clusters_s.map(clusters_s.value_counts())
    out = {"repeat_column": column, "n_lesions_with_repeats": int(clusters_s[sizes >= 2].nunique()),
           "icc": est["icc"], "icc_ci": [ci["low"], ci["high"]], "icc_ci_level": 1 - alpha,
           "n_boot": int(n_boot), "n_lesions": est["n_lesions"], "n_images": est["n_images"],
           "reading": icc_reading(est["icc"]), "flip_rate": flips["flip_rate"], "n_pairs": flips["n_pairs"],
           "n_pairs_unknown": flips["n_pairs_unknown"],
           "method": "ICC(1): one-way random effects, single measurement (Shrout & Fleiss 1979), over lesions "
                     "with two or more images with an ITA value; percentile bootstrap over lesions. Reading "
                     "after Koo & Li 2016: poor < 0.5 <= moderate < 0.75 <= good < 0.9 <= excellent."}
    if "reason" in est:
        out["reason"] = est["reason"]
    if variant_labels is not None:
        kap = fleiss_kappa_labels(variant_labels, unknown=unknown)
        out.update(variant_kappa=kap["kappa"], variant_kappa_n_images=kap["n_images"],
                   variant_kappa_variants=[str(c) for c in variant_labels.columns])
    return out
