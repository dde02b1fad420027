"""Report figures: ROC curves, confusion matrix, ITA histogram, metric-vs-threshold curves.

Every function takes plain arrays, draws one figure with matplotlib's Agg renderer
(imported lazily, no pyplot and no global state), writes one PNG and returns its path.
Figures are deterministic: a fixed size (:data:`FIGSIZE`), a fixed resolution
(:data:`DPI`), matplotlib's default style whatever the user's ``matplotlibrc`` says, and
no ``Software`` metadata, so the same inputs give the same PNG bytes.

A case is predicted malignant when ``score >= threshold`` (as in :mod:`skinaudit.metrics`);
the metric-vs-threshold curves come from :func:`skinaudit.thresholds.threshold_curve`.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError
from .metrics import check_threshold, rates_from_counts
from .thresholds import threshold_curve
from .validation import check_int, check_labels_scores

__all__ = ["DPI", "FIGSIZE", "roc_png", "confusion_png", "ita_histogram_png", "threshold_curves_png",
           "roc_points", "threshold_sweep"]

#: Resolution of every figure, dots per inch.
DPI = 110
#: Size of every figure, inches (width, height): 6.4 x 4.0 in = 704 x 440 px at :data:`DPI`.
FIGSIZE = (6.4, 4.0)
_RC = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
       "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
       "svg.hashsalt": "skinaudit", "path.simplify": False}
# A colour-blind-safe palette (Okabe and Ito 2008), one colour per group, cycled.
_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


@contextlib.contextmanager
def _figure(size=FIGSIZE):
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
        fig = Figure(figsize=size, dpi=DPI)
        FigureCanvasAgg(fig)
        yield fig


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _labels_scores(y_true, y_score):
    y, s = check_labels_scores(y_true, y_score)
    if y.size == 0:
        raise DataError("a figure needs at least one scored image; got none")
    return y, s


def _groups(groups, n):
    if groups is None:
        return None
    g = np.asarray(groups, dtype=object)
    if g.shape != (n,):
        raise DataError(f"groups must be 1-D with one entry per image ({n}); got shape {g.shape}")
    return np.array(["missing" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in g],
                    dtype=object)


def _plain(text) -> str:
    """Text from data, safe for matplotlib: '$' would start mathtext (and can fail to parse),
    a leading '_' hides a legend entry; both are neutralised."""
    text = str(text).replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text


def _group_order(g) -> list:
    """Groups in order of first appearance after sorting by name (stable, deterministic)."""
    return sorted(set(g.tolist()))


def roc_points(y_true, y_score) -> tuple[np.ndarray, np.ndarray, float]:
    """ROC curve of one set of cases.

    Returns ``(fpr, tpr, auc)``: false-positive and true-positive rates, shape (k,), from
    scikit-learn's ``roc_curve``, and the area under it; ``auc`` is NaN (and the rates are
    empty) when only one class is present, because the curve is then undefined.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    y, s = _labels_scores(y_true, y_score)
    if y.min() == y.max():
        return np.empty(0), np.empty(0), float("nan")
    fpr, tpr, _ = roc_curve(y, s)
    return fpr, tpr, float(roc_auc_score(y, s))


def roc_png(y_true, y_score, path, *, threshold: float, groups=None, title: str = "ROC curve") -> Path:
    """Draw the ROC curve (one curve, or one per group) and mark the operating point.

    Parameters
    ----------
    y_true : array of int, shape (n,)
        1 = malignant, 0 = benign.
    y_score : array of float, shape (n,)
        P(malignant) in [0, 1].
    path : path-like
        The PNG to write.
    threshold : float
        Decision threshold in [0, 1]; its operating point (FPR = FP / (FP + TN),
        TPR = TP / (TP + FN)) is marked on each curve.
    groups : array, shape (n,), optional
        Group label per image (e.g. the ITA group). One curve per group; a group with one
        class only has no curve and is listed in the legend as "AUC undefined".
    title : str

    Returns
    -------
    Path of the PNG.
    """
    y, s = _labels_scores(y_true, y_score)
    t = check_threshold(threshold)
    g = _groups(groups, y.size)
    subsets = [("all", np.ones(y.size, bool))] if g is None else [(k, g == k) for k in _group_order(g)]
    with _figure() as fig:
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":", label="chance")
        for i, (name, sel) in enumerate(subsets):
            colour = _PALETTE[i % len(_PALETTE)]
            fpr, tpr, auc = roc_points(y[sel], s[sel])
            n_pos = int(y[sel].sum())
            if np.isnan(auc):
                ax.plot([], [], color=colour, label=f"{_plain(name)} (n={int(sel.sum())}, malignant={n_pos}): AUC undefined")
                continue
            ax.plot(fpr, tpr, color=colour, lw=1.6,
                    label=f"{_plain(name)} (n={int(sel.sum())}, malignant={n_pos}): AUC {auc:.3f}")
            pred = s[sel] >= t
            yy = y[sel]
            ax.plot([np.mean(pred[yy == 0])], [np.mean(pred[yy == 1])], "o", color=colour, ms=5, mec="black", mew=0.6)
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="false-positive rate (1 - specificity)",
               ylabel="true-positive rate (recall)", title=f"{_plain(title)} (dots: threshold {t:g})")
        ax.legend(loc="lower right")
        fig.tight_layout()
        return _save(fig, path)


def confusion_png(tp: int, fn: int, tn: int, fp: int, path, *, threshold: float) -> Path:
    """Draw the 2 x 2 confusion matrix (rows: true class, columns: predicted class) with
    counts and row shares, at the stated ``threshold``.

    Parameters
    ----------
    tp, fn, tn, fp : int
        Non-negative counts.
    path : path-like
    threshold : float
        Decision threshold shown in the title.
    """
    counts = np.array([[tn, fp], [fn, tp]])
    if np.any(counts < 0) or not np.all(np.equal(np.mod(counts, 1), 0)):
        raise DataError(f"confusion counts must be non-negative integers; got tp={tp}, fn={fn}, tn={tn}, fp={fp}")
    t = check_threshold(threshold)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(rows > 0, counts / np.where(rows > 0, rows, 1), np.nan)
    with _figure(size=(4.6, 4.0)) as fig:
        ax = fig.add_subplot(1, 1, 1)
        ax.grid(False)
        ax.imshow(np.nan_to_num(share, nan=0.0), cmap="Blues", vmin=0, vmax=1)
        names = [["TN", "FP"], ["FN", "TP"]]
        for i in range(2):
            for j in range(2):
                pct = "n/a" if np.isnan(share[i, j]) else f"{100 * share[i, j]:.1f}%"
                ax.text(j, i, f"{names[i][j]}\n{int(counts[i, j])}\n{pct}", ha="center", va="center",
                        color="white" if share[i, j] > 0.6 else "black", fontsize=10)
        ax.set_xticks([0, 1], ["benign", "malignant"])
        ax.set_yticks([0, 1], ["benign", "malignant"])
        ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix (threshold {t:g})")
        fig.tight_layout()
        return _save(fig, path)


def ita_histogram_png(ita, path, *, cut_points=(28.0,), groups=None, bins: int = 40,
                      title: str = "ITA of the audited images") -> Path:
    """Histogram of the individual typology angle with the grouping scheme's cut points.

    Parameters
    ----------
    ita : array of float, shape (n,)
        ITA per image in degrees; NaN (no estimate) is left out and counted in the title.
    path : path-like
    cut_points : sequence of float
        Bin edges of the grouping scheme in degrees (e.g. (28,) for the paper's
        light > 28 / dark <= 28), drawn as vertical lines.
    groups : array, shape (n,), optional
        ITA group per image; when given, the histogram is stacked by group.
    bins : int
        Number of histogram bins (>= 2) over the range of the values and the cut points.
    """
    values = np.asarray(ita, dtype=float)
    if values.ndim != 1:
        raise DataError(f"ITA values must be 1-D; got shape {values.shape}")
    bins = check_int(bins, "bins", low=2)
    cuts = sorted(float(c) for c in cut_points)
    if not all(np.isfinite(cuts)):
        raise ConfigError(f"the cut points must be finite degrees; got {list(cut_points)}")
    ok = np.isfinite(values)
    g = _groups(groups, values.size)
    finite = values[ok]
    lo = min([*finite.tolist(), *cuts, 0.0]) - 2
    hi = max([*finite.tolist(), *cuts, 60.0]) + 2
    edges = np.linspace(lo, hi, int(bins) + 1)
    with _figure() as fig:
        ax = fig.add_subplot(1, 1, 1)
        if g is None:
            ax.hist(finite, bins=edges, color=_PALETTE[0], edgecolor="white", lw=0.4, label="images")
        else:
            names = _group_order(g[ok]) if ok.any() else []
            ax.hist([finite[g[ok] == k] for k in names] or [finite], bins=edges, stacked=True,
                    color=[_PALETTE[i % len(_PALETTE)] for i in range(max(len(names), 1))],
                    edgecolor="white", lw=0.4, label=[_plain(k) for k in names] or ["images"])
        for c in cuts:
            ax.axvline(c, color="black", lw=1.0, ls="--")
            ax.annotate(f"{c:g}\u00b0", (c, 1.0), xycoords=("data", "axes fraction"), xytext=(2, -10),
                        textcoords="offset points", fontsize=8)
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # image counts
        missing = int((~ok).sum())
        ax.set(xlabel="ITA (degrees); dashed lines: the scheme's cut points", ylabel="images",
               title=_plain(title) + (f" ({missing} without an ITA value, not shown)" if missing else ""))
        ax.legend(loc="upper left")
        fig.tight_layout()
        return _save(fig, path)


def threshold_sweep(y_true, y_score, *, step: float = 0.01) -> dict:
    """Recall, precision, F1 and specificity at every threshold of a grid, for plotting.

    The grid is 0, step, 2 step, ..., floor(1/step) step (0 and, for steps dividing 1, also 1
    included). At threshold t a case is predicted malignant when score >= t. The counts and
    rates come from :func:`skinaudit.thresholds.threshold_curve` (the package's one threshold
    sweep): recall = TP / (TP + FN), precision = TP / (TP + FP), F1 = 2 TP / (2 TP + FP + FN),
    specificity = TN / (TN + FP); each is NaN where its denominator is zero (e.g. precision
    when nothing is predicted malignant).

    Parameters
    ----------
    y_true : array of int, shape (n,), n >= 1
    y_score : array of float in [0, 1], shape (n,)
    step : float in (0, 0.5]

    Returns
    -------
    dict of float ndarrays, each shape (k,): ``threshold, recall, precision, f1, specificity``.
    """
    y, s = _labels_scores(y_true, y_score)
    curve = threshold_curve(y, s, step=step, include_zero=True)
    rates = rates_from_counts(*(curve[c].to_numpy(dtype=float) for c in ("tp", "fn", "tn", "fp")))
    out = {"threshold": curve["threshold"].to_numpy(dtype=float)}
    out.update({k: curve[k].to_numpy(dtype=float) for k in ("recall", "precision", "f1")})
    out["specificity"] = rates["specificity"]
    return out


def threshold_curves_png(y_true, y_score, path, *, threshold: float, groups=None, marks=None,
                         step: float = 0.01) -> Path:
    """Metric-vs-threshold curves (see :func:`threshold_sweep`) with the audit threshold
    and any other thresholds (``marks``) drawn as vertical lines.

    Parameters
    ----------
    y_true, y_score : arrays, shape (n,)
    path : path-like
    threshold : float
        The audit's decision threshold (solid vertical line).
    groups : array, shape (n,), optional
        When given, a second panel shows recall per group against the threshold.
    marks : dict of str -> float, optional
        Other thresholds to show (e.g. a recalibrated one), dotted lines, labelled.
    step : float in (0, 0.5]
        Grid step of the sweep.
    """
    y, s = _labels_scores(y_true, y_score)
    t = check_threshold(threshold)
    marks = {str(k): check_threshold(v) for k, v in (marks or {}).items()}
    g = _groups(groups, y.size)
    sweep = threshold_sweep(y, s, step=step)
    with _figure(size=(FIGSIZE[0], FIGSIZE[1] * (1.7 if g is not None else 1.0))) as fig:
        axes = [fig.add_subplot(2 if g is not None else 1, 1, i + 1) for i in range(2 if g is not None else 1)]
        ax = axes[0]
        for i, key in enumerate(("recall", "precision", "f1", "specificity")):
            ax.plot(sweep["threshold"], sweep[key], color=_PALETTE[i], lw=1.5, label=key)
        ax.set(ylabel="metric (all images)", ylim=(-0.02, 1.02), xlim=(0, 1),
               title="Metrics against the decision threshold")
        if g is not None:
            for i, name in enumerate(_group_order(g)):
                sel = g == name
                sw = threshold_sweep(y[sel], s[sel], step=step)
                axes[1].plot(sw["threshold"], sw["recall"], color=_PALETTE[i % len(_PALETTE)], lw=1.5,
                             label=f"{_plain(name)} (malignant={int(y[sel].sum())})")
            axes[1].set(ylabel="recall per group", ylim=(-0.02, 1.02), xlim=(0, 1))
        for a in axes:
            a.axvline(t, color="black", lw=1.2, label=f"audit threshold {t:g}")
            for j, (name, v) in enumerate(sorted(marks.items())):
                a.axvline(v, color="#555555", lw=1.0, ls=(0, (1 + j, 2)), label=f"{_plain(name)} {v:g}")
            a.legend(loc="lower left", ncol=2)
        axes[-1].set_xlabel("threshold (predicted malignant when score >= threshold)")
        fig.tight_layout()
        return _save(fig, path)
