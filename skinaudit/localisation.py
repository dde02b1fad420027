"""Sharpened maps, overlays and localisation scores of explanation maps: numeric, no torch.

A class-activation map (from :func:`skinaudit.explain.compute_cams` or any other method) is a
plain ``(H, W)`` array of non-negative values at the image's size. This module turns maps into
pictures (the paper's top-25% sharpening, overlays and original / raw heatmap / sharpened
overlay triptychs of TP, TN, FN and FP cases, its Fig. 8) and *measures* them against the
lesion mask (Quantus definitions):

* relevance mass  = sum(cam * mask) / sum(cam)                 (Arras et al. 2022)
* pointing game   = mask[argmax(cam)]                          (Zhang et al. 2018)
* top-k IoU       = |keep & mask| / |keep | mask|, keep = cam >= quantile(cam, 1 - keep_top)

and summarises the scores per skin-tone group with intervals (:func:`localisation_by_group`).
Numeric core: numpy, pandas, statsmodels and matplotlib (figures only), imported where used; no
torch. See docs/explanations.md.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .validation import check_bounded, check_int, check_param

__all__ = [
    "KINDS",
    "LOCALISATION_COLUMNS",
    "sharpen",
    "overlay",
    "triptych_cases",
    "save_triptych",
    "localisation_scores",
    "localisation_table",
    "localisation_by_group",
]


# ----------------------------------------------------------------------------------------
# sharpening, overlays, triptychs
# ----------------------------------------------------------------------------------------

def _as_cam(cam) -> np.ndarray:
    c = np.asarray(cam, dtype=np.float32)
    if c.ndim not in (2, 3) or c.size == 0:
        raise DataError(f"a CAM must be an (H, W) or (n, H, W) array; got shape {c.shape}")
    if not np.all(np.isfinite(c)) or c.min() < 0:
        raise DataError("a CAM must hold finite values >= 0")
    return c


def _keep_region(cam2d: np.ndarray, keep_top: float) -> np.ndarray:
    """Pixels at or above the (1 - keep_top) quantile of a map, excluding zeros."""
    q = np.quantile(cam2d, 1.0 - keep_top)
    return (cam2d >= q) & (cam2d > 0)


def sharpen(cam, *, keep_top: float = 0.25) -> np.ndarray:
    """Keep the top ``keep_top`` fraction of activations of each map, zero the rest.

    ``keep = cam >= quantile(cam, 1 - keep_top) and cam > 0`` per map (the paper's top 25%);
    kept values are unchanged. Ties at the quantile are kept, so slightly more than
    ``keep_top`` of the pixels can survive on a map with plateaus.

    Parameters
    ----------
    cam : (H, W) or (n, H, W) array of finite values >= 0
        One map or a stack of maps (any float or integer dtype).
    keep_top : float in (0, 1]
        Fraction of each map's pixels to keep (0.25: the paper's top 25%).

    Returns
    -------
    ndarray, float32, same shape as ``cam``
        The kept values, zeros elsewhere; an all-zero map stays all zero.
    """
    c = _as_cam(cam)
    k = check_param(keep_top, "keep_top")
    maps = c[None] if c.ndim == 2 else c
    out = np.stack([np.where(_keep_region(m, k), m, 0.0) for m in maps]).astype(np.float32)
    return out[0] if c.ndim == 2 else out


def overlay(image, cam, *, alpha: float = 0.5, cmap: str = "jet", skip_zero: bool = False) -> np.ndarray:
    """Blend a heatmap onto an image: ``(1 - alpha) * image + alpha * cmap(cam)``, RGB uint8.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB
    cam : (H, W) array in [0, 1] (same size as the image)
    alpha : float in [0, 1]
        Heatmap weight.
    cmap : str
        A matplotlib colormap name (RGB order; never OpenCV's BGR).
    skip_zero : bool
        Leave pixels where ``cam == 0`` untouched (for sharpened maps).

    Returns
    -------
    (H, W, 3) uint8 RGB array
        ``clip(round((1 - w) * image + w * 255 * cmap(cam)), 0, 255)`` with ``w = alpha``
        (0 where skipped).
    """
    from matplotlib import colormaps

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"the image must be an (H, W, 3) uint8 RGB array; got {img.shape} {img.dtype}")
    c = _as_cam(cam)
    if c.shape != img.shape[:2]:
        raise DataError(f"the CAM's shape {c.shape} differs from the image's {img.shape[:2]}")
    alpha = check_bounded(alpha, "alpha", 0.0, 1.0)
    if cmap not in colormaps:
        raise ConfigError(f"unknown matplotlib colormap {cmap!r}")
    heat = colormaps[cmap](np.clip(c, 0, 1))[..., :3] * 255.0
    w = np.full(c.shape, float(alpha))
    if skip_zero:
        w[c <= 0] = 0.0
    out = (1.0 - w[..., None]) * img.astype(np.float64) + w[..., None] * heat
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


#: Case kinds of the triptychs, in display order.
KINDS = ("TP", "TN", "FN", "FP")


def triptych_cases(y_true, y_pred, scores, *, per_kind: int = 2, ids=None) -> dict[str, list]:
    """A deterministic choice of TP, TN, FN and FP cases to show (the paper's Fig. 8).

    Per kind, the most confident cases first: TP and FP by decreasing score, TN and FN by
    increasing score (an FN with the lowest score is the most confidently missed); ties keep
    the dataset order.

    Parameters
    ----------
    y_true, y_pred : (n,) arrays of 0 (benign) / 1 (malignant)
        Labels and thresholded predictions.
    scores : (n,) float array
        P(malignant) per case, the ranking key.
    per_kind : int >= 0
        Cases to pick per kind.
    ids : sequence of length n, optional
        Case identifiers to return instead of positions.

    Returns
    -------
    dict kind -> list of ``ids`` (or positions when ``ids`` is None), at most ``per_kind``
    each, for kinds ``"TP", "TN", "FN", "FP"`` (a kind with no case gets an empty list).
    """
    y = np.asarray(y_true)
    p = np.asarray(y_pred)
    s = np.asarray(scores, dtype=float)
    if not (y.shape == p.shape == s.shape) or y.ndim != 1:
        raise DataError(f"y_true, y_pred and scores must be 1-D of one length; got {y.shape}, {p.shape}, {s.shape}")
    if not (np.isin(y, (0, 1)).all() and np.isin(p, (0, 1)).all()):
        raise DataError("y_true and y_pred must hold 0 (benign) or 1 (malignant)")
    per_kind = check_int(per_kind, "per_kind", low=0)
    labels = np.arange(len(y)) if ids is None else np.asarray(list(ids), dtype=object)
    if len(labels) != len(y):
        raise DataError(f"{len(labels)} ids for {len(y)} cases")
    sel = {"TP": (y == 1) & (p == 1), "TN": (y == 0) & (p == 0), "FN": (y == 1) & (p == 0), "FP": (y == 0) & (p == 1)}
    out = {}
    for kind in KINDS:
        where = np.flatnonzero(sel[kind])
        key = -s[where] if kind in ("TP", "FP") else s[where]
        chosen = where[np.argsort(key, kind="stable")[:per_kind]]
        out[kind] = [labels[i].item() if hasattr(labels[i], "item") else labels[i] for i in chosen]
    return out


def save_triptych(rows, path, *, keep_top: float = 0.25, alpha: float = 0.5, cmap: str = "jet",
                  dpi: int = 120) -> Path:
    """Write a PNG with one row per case: original, raw heatmap, sharpened overlay.

    Parameters
    ----------
    rows : sequence of (label, image, cam)
        ``label`` a row title (e.g. ``"FN  ISIC_0000123  p=0.21"``), ``image`` (H, W, 3) uint8
        RGB, ``cam`` (H, W) in [0, 1].
    path : str or Path
        Output PNG (parent folders are created).
    keep_top, alpha, cmap : as in :func:`sharpen` and :func:`overlay`.
    dpi : int
        Resolution of the PNG (a row is 9 x 3 inches).

    Returns
    -------
    Path of the written file.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = list(rows)
    if not rows:
        raise DataError("save_triptych needs at least one (label, image, cam) row")
    fig = Figure(figsize=(9, 3 * len(rows)), dpi=dpi)
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, (label, image, cam) in enumerate(rows):
        panels = [(np.asarray(image), "original"), (overlay(image, cam, alpha=1.0, cmap=cmap), "raw heatmap"),
                  (overlay(image, sharpen(cam, keep_top=keep_top), alpha=alpha, cmap=cmap, skip_zero=True),
                   f"top {keep_top:.0%} overlay")]
        for c, (panel, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title if r == 0 else "", fontsize=9)
        axes[r, 0].set_ylabel(str(label), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


# ----------------------------------------------------------------------------------------
# localisation against the lesion mask
# ----------------------------------------------------------------------------------------

#: Columns of :func:`localisation_table` after ``image_id``.
LOCALISATION_COLUMNS = ("relevance_mass", "pointing_game", "iou_top", "lesion_area_frac", "reason")


def localisation_scores(cam, lesion_mask, *, keep_top: float = 0.25) -> dict:
    """How much of a map falls on the lesion (Quantus definitions).

    * ``relevance_mass = sum(cam * mask) / sum(cam)`` in [0, 1]; a map that ignores the lesion
      scores about ``lesion_area_frac``.
    * ``pointing_game = mask[argmax(cam)]`` (first maximum in row-major order), 1.0 or 0.0.
    * ``iou_top = |keep & mask| / |keep | mask|`` with ``keep`` the :func:`sharpen` region.

    Parameters
    ----------
    cam : (H, W) array >= 0
    lesion_mask : (H, W) bool (given or estimated), same size
    keep_top : float in (0, 1]

    Returns
    -------
    dict with ``relevance_mass``, ``pointing_game``, ``iou_top`` (floats; NaN when undefined),
    ``lesion_area_frac`` and ``reason`` ("" or why the scores are NaN: an all-zero map, an
    empty mask).
    """
    c = _as_cam(cam)
    m = np.asarray(lesion_mask).astype(bool)
    if c.ndim != 2 or c.shape != m.shape:
        raise DataError(f"the CAM {c.shape} and the lesion mask {m.shape} must be 2-D of one shape")
    k = check_param(keep_top, "keep_top")
    area = float(m.mean())
    nan = {"relevance_mass": np.nan, "pointing_game": np.nan, "iou_top": np.nan, "lesion_area_frac": area}
    if not m.any():
        return {**nan, "reason": "empty lesion mask"}
    total = float(c.sum(dtype=np.float64))
    if total <= 0:
        return {**nan, "reason": "all-zero CAM (no positive evidence at the target layer)"}
    keep = _keep_region(c, k)
    return {
        "relevance_mass": float(c[m].sum(dtype=np.float64) / total),
        "pointing_game": float(m.flat[int(np.argmax(c))]),
        "iou_top": float((keep & m).sum() / (keep | m).sum()),
        "lesion_area_frac": area,
        "reason": "",
    }


def localisation_table(cams, lesion_masks, *, ids=None, keep_top: float = 0.25) -> pd.DataFrame:
    """:func:`localisation_scores` for many images.

    Parameters
    ----------
    cams : sequence of (H_i, W_i) arrays >= 0
    lesion_masks : sequence of (H_i, W_i) bool arrays, aligned with ``cams``
    ids : sequence, optional
        Image identifiers (default: positions).
    keep_top : float in (0, 1]

    Returns
    -------
    DataFrame
        One row per image: ``image_id`` then :data:`LOCALISATION_COLUMNS`.
    """
    cams, lesion_masks = list(cams), list(lesion_masks)
    if len(cams) != len(lesion_masks):
        raise DataError(f"{len(cams)} CAMs for {len(lesion_masks)} lesion masks")
    ids = list(range(len(cams))) if ids is None else list(ids)
    if len(ids) != len(cams):
        raise DataError(f"{len(ids)} ids for {len(cams)} CAMs")
    rows = [{"image_id": i, **localisation_scores(c, m, keep_top=keep_top)} for i, c, m in zip(ids, cams, lesion_masks)]
    return pd.DataFrame(rows, columns=["image_id", *LOCALISATION_COLUMNS])


def _bootstrap_means(x: np.ndarray, *, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples of ``x`` drawn with replacement, shape ``(n_boot,)``, through
    the package's one resampling engine (:func:`skinaudit.stats.resample_indices`); ``rng`` is
    advanced past the draws, so successive calls continue one random stream."""
    from .stats import resample_indices

    out = np.empty(n_boot)
    for rows, (draws,) in resample_indices([np.arange(len(x))], n_boot=n_boot, random_state=rng):
        out[rows] = x[draws].mean(axis=1)
    return out


def localisation_by_group(df: pd.DataFrame, groups, *, reference=None, alpha: float = 0.05, n_boot: int = 2000,
                          random_state=0) -> pd.DataFrame:
    """Localisation per skin-tone group, with intervals, and each group's gap to a reference.

    Parameters
    ----------
    df : DataFrame
        Output of :func:`localisation_table` (``relevance_mass``, ``pointing_game``, ``iou_top``).
    groups : str or array-like
        A column of ``df`` or one group label per row (e.g. the ITA group). Rows whose group
        is missing are left out of the group rows but counted in ``"all"``. The label
        ``"all"`` is the overall row's: given to every row it yields that row alone; mixed
        with other labels it is refused.
    reference : optional
        The group the others are compared with; default the group with the most valid rows.
    alpha : float in (0, 1)
        1 - confidence level of the intervals.
    n_boot : int
        Bootstrap resamples for the means and their differences (percentile intervals).
    random_state : int or numpy Generator

    Returns
    -------
    DataFrame, one row per group then ``"all"``:

    * ``group, n, n_valid`` (``n_valid``: rows with defined scores);
    * ``pointing_game, pointing_game_lo, pointing_game_hi``: hit rate, Wilson interval;
    * ``relevance_mass, iou_top`` (+ ``_lo``, ``_hi``): means, percentile bootstrap;
    * ``reference``; ``pointing_game_diff`` (+ ``_lo``, ``_hi``): group rate minus the
      reference's, Newcombe hybrid-score interval (statsmodels ``confint_proportions_2indep``);
      ``relevance_mass_diff`` (+ ``_lo``, ``_hi``): difference of means, groups resampled
      independently. NaN on the reference and ``"all"`` rows;
    * ``reason``: "" or why a value is NaN.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

    need = {"relevance_mass", "pointing_game", "iou_top"}
    if not isinstance(df, pd.DataFrame) or not need <= set(df.columns):
        raise DataError(f"localisation_by_group needs a DataFrame with columns {sorted(need)}")
    g = df[groups] if isinstance(groups, str) and groups in df.columns else pd.Series(np.asarray(groups, dtype=object))
    if len(g) != len(df):
        raise DataError(f"{len(g)} group labels for {len(df)} rows")
    alpha = check_param(alpha, "alpha")
    n_boot = check_int(n_boot, "n_boot", low=100)
    rng = np.random.default_rng(random_state)
    g = pd.Series(g.to_numpy(), index=df.index)
    names = list(pd.unique(g.dropna()))
    try:
        names = sorted(names)
    except TypeError:
        pass
    if names == ["all"]:                 # one label for every row: only the overall row
        names = []
    elif "all" in names:
        raise ConfigError("a group may not be named 'all', the name of the overall row; rename it")
    cols = ["relevance_mass", "pointing_game", "iou_top"]
    valid = {name: df[g == name].dropna(subset=cols) for name in names}
    valid["all"] = df.dropna(subset=cols)
    if reference is None and names:
        reference = max(names, key=lambda k: len(valid[k]))
    elif reference is not None and reference not in names:
        raise ConfigError(f"the 'reference' group {reference!r} is not among the groups: {names}")
    q = (alpha / 2, 1 - alpha / 2)
    boots: dict = {}

    def boot_means(name, col):  # drawn on first use, so the generator's draws keep their order
        if (name, col) not in boots:
            boots[(name, col)] = _bootstrap_means(valid[name][col].to_numpy(float), n_boot=n_boot, rng=rng)
        return boots[(name, col)]

    rows = []
    for name in [*names, "all"]:
        v = valid[name]
        n_valid = len(v)
        row = {"group": name, "n": int(len(df) if name == "all" else (g == name).sum()), "n_valid": n_valid,
               "reference": reference}
        for col in ("pointing_game", "relevance_mass", "iou_top"):
            row.update({col: np.nan, f"{col}_lo": np.nan, f"{col}_hi": np.nan})
        for col in ("pointing_game_diff", "relevance_mass_diff"):
            row.update({col: np.nan, f"{col}_lo": np.nan, f"{col}_hi": np.nan})
        reasons = []
        if n_valid == 0:
            row["reason"] = "no image with a defined localisation score"
            rows.append(row)
            continue
        hits = int(v["pointing_game"].sum())
        lo, hi = proportion_confint(hits, n_valid, alpha=alpha, method="wilson")
        row.update({"pointing_game": hits / n_valid, "pointing_game_lo": float(lo), "pointing_game_hi": float(hi)})
        for col in ("relevance_mass", "iou_top"):
            lo, hi = np.quantile(boot_means(name, col), q)
            row.update({col: float(v[col].mean()), f"{col}_lo": float(lo), f"{col}_hi": float(hi)})
        if n_valid == 1:
            reasons.append("one image: the bootstrap interval is degenerate")
        ref = valid.get(reference) if reference is not None else None
        if name in ("all", reference):
            reasons.append("the reference group" if name == reference else "all groups together")
        elif ref is None or len(ref) == 0:
            reasons.append("no reference group with defined scores")
        else:
            ref_hits = int(ref["pointing_game"].sum())
            lo, hi = confint_proportions_2indep(hits, n_valid, ref_hits, len(ref), method="newcomb", compare="diff",
                                                alpha=alpha)
            diffs = boot_means(name, "relevance_mass") - boot_means(reference, "relevance_mass")
            dlo, dhi = np.quantile(diffs, q)
            row.update({"pointing_game_diff": hits / n_valid - ref_hits / len(ref), "pointing_game_diff_lo": float(lo),
                        "pointing_game_diff_hi": float(hi),
                        "relevance_mass_diff": float(v["relevance_mass"].mean() - ref["relevance_mass"].mean()),
                        "relevance_mass_diff_lo": float(dlo), "relevance_mass_diff_hi": float(dhi)})
        row["reason"] = "; ".join(r for r in reasons if r.startswith("one image") or r.startswith("no reference"))
        rows.append(row)
    return pd.DataFrame(rows)
