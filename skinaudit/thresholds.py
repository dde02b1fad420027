"""Decision-threshold searches and recalibration (numeric core: no torch, no jinja2).

The paper picks the operating point on a validation split as

    t* = argmax_t F1(t)  subject to  recall(t) >= gamma,    t on a grid of step 0.02,

where a case is predicted malignant when ``score >= t``. This module implements the threshold
sweep (:func:`threshold_curve`, also drawn by the report's figures), that search with
scikit-learn's estimator contract (configure in ``__init__``, learn in ``fit``, refuse
``predict`` before ``fit``), a bootstrap of the whole select-then-evaluate pipeline, per-group
thresholds that reach the same recall target, fairness-constrained thresholds through
fairlearn's ``ThresholdOptimizer``, and a stratified calibration split. Thresholds are always
fitted on a calibration split and reported on a different one.

Grid
----
The default grid is ``step, 2*step, ..., K*step`` with ``K = floor(1/step)`` (0.02, 0.04, ...,
1.00 for the default step). The threshold 0 is left out on purpose: ``score >= 0`` flags every
case, which reaches any recall target trivially, so with it on the grid no recall target could
ever be infeasible. Pass ``grid=`` to search any other set of thresholds in [0, 1].

Ties and infeasibility
----------------------
Among feasible grid thresholds with the same (maximal) F1 the *highest* threshold is chosen
(fewest false positives at that F1). When no grid threshold reaches ``recall >= gamma`` the
estimator sets ``feasible_ = False``, logs a warning and falls back to the *highest threshold
that reaches the largest recall seen on the grid* (the best the grid can do for recall);
``fallback_`` states this in one sentence. It never pretends the target was met.

References
----------
Rumale et al., "Recall-Oriented Deep Learning Framework for Skin Cancer Detection with
Explainability and Fairness Analysis", IJMRSET 9(4), 2026 (threshold rule, step 0.02).
Hardt, Price and Srebro, "Equality of Opportunity in Supervised Learning", NeurIPS 2016
(the post-processing behind fairlearn's ThresholdOptimizer).
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from .errors import ConfigError, DataError, NotFittedError
from .metrics import metrics_from_counts, rates_from_counts
from .stats import resample_indices
from .validation import check_choice, check_int, check_labels_scores, check_param

__all__ = [
    "threshold_grid", "threshold_curve", "sweep_counts", "search_threshold", "RecallConstrainedThreshold",
    "bootstrap_threshold", "GroupRecallThresholds", "FairlearnThresholds", "calibration_split",
    "evaluate_thresholds",
]

log = logging.getLogger(__name__)

_TOL = 1e-12  # recall >= gamma is tested as recall >= gamma - _TOL (floating-point ratios)


# ----------------------------------------------------------------------------- grid and curve
def threshold_grid(step: float = 0.02, grid=None, *, include_zero: bool = False) -> np.ndarray:
    """The thresholds searched: ``grid`` if given, else ``step, 2 step, ..., floor(1/step) step``.

    Parameters
    ----------
    step : float in (0, 0.5]
        Grid spacing (the paper: 0.02).
    grid : array-like of float in [0, 1], optional
        Explicit thresholds; sorted and de-duplicated.
    include_zero : bool, default False
        Start the step grid at 0 (for curves drawn over the whole range; a search leaves 0
        out, see the module docstring).

    Returns
    -------
    ndarray of float, shape (G,)
        Increasing thresholds, rounded to 12 decimals so that ``0.46`` is exactly ``0.46``.
    """
    if grid is not None:
        g = np.unique(np.asarray(grid, dtype=float).ravel())
        if g.size == 0 or not np.all(np.isfinite(g)) or g.min() < 0 or g.max() > 1:
            raise ConfigError("the 'grid' parameter must be a non-empty list of thresholds in [0, 1]")
        return g
    step = check_param(step, "step")
    k = int(math.floor(1.0 / step + 1e-9))
    return np.round(np.arange(0 if include_zero else 1, k + 1) * step, 12)


def sweep_counts(y: np.ndarray, s: np.ndarray, grid: np.ndarray):
    """Confusion counts at every threshold of a grid, by sorting once: O((n + G) log n).

    Parameters
    ----------
    y : ndarray of {0, 1}, shape (n,)
    s : ndarray of float, shape (n,)
        Scores; a case is flagged at threshold t when ``s >= t``.
    grid : ndarray of float, shape (G,)

    Returns
    -------
    (tp, fp, n_pos, n_neg)
        ``tp``, ``fp``: int ndarrays, shape (G,); ``n_pos``, ``n_neg``: ints.
    """
    pos = np.sort(s[y == 1])
    neg = np.sort(s[y == 0])
    tp = pos.size - np.searchsorted(pos, grid, side="left")
    fp = neg.size - np.searchsorted(neg, grid, side="left")
    return tp, fp, pos.size, neg.size


def _curve_from_counts(grid, tp, fp, n_pos, n_neg) -> pd.DataFrame:
    tp = np.asarray(tp, dtype=float)
    fp = np.asarray(fp, dtype=float)
    fn = n_pos - tp
    tn = n_neg - fp
    rates = rates_from_counts(tp, fn, tn, fp)
    return pd.DataFrame({"threshold": grid, "recall": rates["recall"], "precision": rates["precision"],
                         "f1": rates["f1"], "tp": tp.astype(int), "fp": fp.astype(int), "fn": fn.astype(int),
                         "tn": tn.astype(int)})


def threshold_curve(y_true, y_score, *, step: float = 0.02, grid=None, include_zero: bool = False) -> pd.DataFrame:
    """Recall, precision, F1 and counts at every grid threshold: the one threshold sweep.

    Used by the searches below and by the threshold figures
    (:func:`skinaudit.figures.threshold_sweep`).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n,)
    y_score : array-like of float in [0, 1], shape (n,)
        P(malignant); predicted malignant when ``score >= threshold``.
    step, grid, include_zero : see :func:`threshold_grid`.

    Returns
    -------
    DataFrame, one row per threshold
        ``threshold, recall, precision, f1, tp, fp, fn, tn``; recall = TP/(TP+FN),
        precision = TP/(TP+FP), F1 = 2TP/(2TP+FP+FN) (:func:`~skinaudit.metrics.rates_from_counts`),
        each NaN where its denominator is 0 (precision when nothing is flagged).
    """
    y, s = check_labels_scores(y_true, y_score)
    g = threshold_grid(step, grid, include_zero=include_zero)
    tp, fp, n_pos, n_neg = sweep_counts(y, s, g)
    return _curve_from_counts(g, tp, fp, n_pos, n_neg)


def _select(tp: np.ndarray, fp: np.ndarray, n_pos, gamma: float):
    """Vectorised rule on count arrays of shape (B, G) (grid increasing along axis 1).

    Returns (index of t*, feasible) per row: argmax F1 over recall >= gamma, ties -> highest
    threshold; infeasible rows -> highest threshold with the row's maximal recall.
    """
    tp = np.atleast_2d(np.asarray(tp, dtype=float))
    fp = np.atleast_2d(np.asarray(fp, dtype=float))
    n_pos = np.broadcast_to(np.asarray(n_pos, dtype=float).reshape(-1, 1), tp.shape)
    fn = n_pos - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / n_pos
        f1 = 2 * tp / (2 * tp + fp + fn)
    f1 = np.where(np.isfinite(f1), f1, -np.inf)
    ok = recall >= gamma - _TOL
    feasible = ok.any(axis=1)
    G = tp.shape[1]
    score = np.where(ok, f1, -np.inf)
    # highest index among ties: argmax over the reversed axis
    best_f1 = G - 1 - np.argmax(score[:, ::-1], axis=1)
    max_rec = np.nanmax(recall, axis=1, keepdims=True)
    best_rec = G - 1 - np.argmax((recall >= max_rec - _TOL)[:, ::-1], axis=1)
    return np.where(feasible, best_f1, best_rec), feasible


def search_threshold(y_true, y_score, *, gamma: float = 0.85, step: float = 0.02, grid=None) -> dict:
    """One recall-constrained search; the result as a JSON-ready dict.

    Returns
    -------
    dict
        ``threshold, feasible, gamma, step, recall, precision, f1, tp, fp, fn, tn`` at the chosen
        threshold, and ``fallback`` (None, or the sentence explaining an infeasible target).
        See :class:`RecallConstrainedThreshold` for the rule.
    """
    est = RecallConstrainedThreshold(gamma=gamma, step=step, grid=grid).fit(y_true, y_score)
    row = est.curve_.iloc[est.index_]
    out = {"threshold": est.threshold_, "feasible": est.feasible_, "gamma": est.gamma,
           "step": est.step if grid is None else None, "fallback": est.fallback_}
    for k in ("recall", "precision", "f1"):
        out[k] = float(row[k])
    for k in ("tp", "fp", "fn", "tn"):
        out[k] = int(row[k])
    return out


class RecallConstrainedThreshold(BaseEstimator):
    """t* = argmax F1(t) subject to recall(t) >= gamma, on a threshold grid (the paper's rule).

    A scikit-learn estimator: ``__init__`` stores the parameters (checked by ``fit``),
    ``fit`` learns the attributes below and returns self, ``sklearn.base.clone``,
    ``get_params`` and ``set_params`` work, and ``predict`` before ``fit`` raises
    :class:`~skinaudit.errors.NotFittedError`.

    Parameters
    ----------
    gamma : float in (0, 1], default 0.85
        Recall target.
    step : float in (0, 0.5], default 0.02
        Grid spacing; the grid is ``step, 2 step, ..., floor(1/step) step`` (0 excluded: it
        flags every case and would make every target trivially feasible).
    grid : array-like of float in [0, 1], optional
        Explicit grid instead of ``step``.

    Attributes
    ----------
    threshold_ : float
        The chosen threshold; predict malignant when ``score >= threshold_``.
    feasible_ : bool
        True when some grid threshold reaches ``recall >= gamma`` on the fitted data.
    fallback_ : str or None
        None when feasible; otherwise the sentence describing the fallback (the highest
        threshold reaching the largest recall on the grid).
    curve_ : DataFrame
        ``threshold, recall, precision, f1, tp, fp, fn, tn, feasible`` at every grid threshold.
    index_ : int
        Row of ``curve_`` holding ``threshold_``.

    Notes
    -----
    Ties in F1 among feasible thresholds go to the highest threshold. Recall is compared as
    ``recall >= gamma - 1e-12`` to absorb floating-point rounding of count ratios.

    Examples
    --------
    >>> est = RecallConstrainedThreshold(gamma=0.8).fit([0, 0, 1, 1, 1], [.1, .5, .4, .7, .9])
    >>> est.threshold_, est.feasible_
    (0.4, True)
    """

    def __init__(self, *, gamma: float = 0.85, step: float = 0.02, grid=None):
        self.gamma = gamma
        self.step = step
        self.grid = grid

    def fit(self, y_true, y_score) -> "RecallConstrainedThreshold":
        """Search the grid on calibration labels ``y_true`` (n,) and scores ``y_score`` (n,)."""
        gamma = check_param(self.gamma, "gamma")
        y, s = check_labels_scores(y_true, y_score)
        if not (y == 1).any():
            raise DataError("the calibration data has no malignant case, so recall is undefined")
        g = threshold_grid(self.step, self.grid)
        tp, fp, n_pos, n_neg = sweep_counts(y, s, g)
        idx, feasible = _select(tp[None, :], fp[None, :], n_pos, gamma)
        curve = _curve_from_counts(g, tp, fp, n_pos, n_neg)
        curve["feasible"] = curve["recall"].to_numpy() >= gamma - _TOL
        self.curve_ = curve
        self.index_ = int(idx[0])
        self.threshold_ = float(g[self.index_])
        self.feasible_ = bool(feasible[0])
        self.fallback_ = None
        if not self.feasible_:
            self.fallback_ = (f"no grid threshold reaches recall >= {gamma:g} (best recall "
                              f"{curve['recall'].iloc[self.index_]:.4f}); using the highest threshold "
                              f"with that recall, {self.threshold_:g}")
            log.warning("recall target infeasible: %s", self.fallback_)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "threshold_")

    def _check_fitted(self):
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() before predict()")

    def predict(self, y_score) -> np.ndarray:
        """0/1 predictions, shape (n,): ``score >= threshold_``."""
        self._check_fitted()
        s = np.asarray(y_score, dtype=float)
        if s.ndim != 1 or not np.all(np.isfinite(s)):
            raise DataError("scores must be a 1-D array of finite probabilities")
        return (s >= self.threshold_).astype(int)


# ------------------------------------------------------------------- bootstrap of the pipeline
def bootstrap_threshold(y_true, y_score, *, gamma: float = 0.85, step: float = 0.02, grid=None,
                        n_boot: int = 1000, random_state: int = 0, alpha: float = 0.05,
                        eval_y=None, eval_score=None) -> tuple[pd.DataFrame, dict]:
    """Bootstrap the select-then-evaluate pipeline: spread of t* and of what it reaches.

    Each replicate resamples the calibration cases with replacement, stratified by label
    (positives and negatives keep their counts), selects t* with the rule of
    :class:`RecallConstrainedThreshold`, and evaluates it on held-out cases: the replicate's
    out-of-bag calibration cases, or ``eval_y``/``eval_score`` when given (a test split).
    Vectorised: counts at every grid threshold come from one matrix product
    ``(B, n) x (n, G)`` of resample counts by ``score >= t`` indicators.

    Parameters
    ----------
    y_true, y_score : array-like, shape (n,)
        Calibration labels (0/1) and scores.
    gamma, step, grid : the search rule (see :class:`RecallConstrainedThreshold`).
    n_boot : int >= 1
        Number of replicates B.
    random_state : int
        Seed of ``numpy.random.default_rng``.
    alpha : float in (0, 1)
        Percentile intervals are ``[alpha/2, 1 - alpha/2]``.
    eval_y, eval_score : array-like, optional
        Evaluate each replicate's t* on these instead of the out-of-bag cases.

    Returns
    -------
    replicates : DataFrame, shape (B, ...)
        ``threshold, feasible, recall, precision, fn, fp`` per replicate (held-out metrics;
        NaN where undefined, e.g. no out-of-bag positive).
    summary : dict
        ``n_boot, alpha, random_state, evaluated_on, threshold_median, threshold_ci,
        feasible_share, recall_median, recall_ci, recall_undefined, precision_median,
        precision_ci, precision_undefined``.
    """
    gamma = check_param(gamma, "gamma")
    y, s = check_labels_scores(y_true, y_score)
    if not (y == 1).any():
        raise DataError("the calibration data has no malignant case, so recall is undefined")
    n_boot = check_int(n_boot, "n_boot", low=1)
    check_param(alpha, "alpha")
    g = threshold_grid(step, grid)
    ge = (s[:, None] >= g[None, :]).astype(np.float64)            # (n, G)
    pos = (y == 1).astype(np.float64)
    if eval_y is not None or eval_score is not None:
        ey, es = check_labels_scores(eval_y, eval_score)
        where = "evaluation split"
    else:
        ey, es = y, s
        where = "out-of-bag calibration cases"
    # draw order: the malignant stratum's B rows, then the benign one's; blocks of replicates
    # sized for the calibration and evaluation cases held per row (memory flat in n)
    strata = [np.flatnonzero(y == 1), np.flatnonzero(y == 0)]
    out = {key: [] for key in ("thr", "feasible", "etp", "efn", "efp")}
    for rows, draws in resample_indices(strata, n_boot=n_boot, random_state=random_state, width=y.size + ey.size):
        m = rows.stop - rows.start
        W = np.zeros((m, y.size), dtype=np.float64)                  # resample counts per case
        replicate = np.arange(m)[:, None]
        for draw in draws:
            if draw.size:
                np.add.at(W, (np.broadcast_to(replicate, draw.shape), draw), 1.0)
        tp = (W * pos) @ ge
        fp = (W * (1 - pos)) @ ge
        sel, feasible_b = _select(tp, fp, int(pos.sum()), gamma)
        thr_b = g[sel]
        pred = es[None, :] >= thr_b[:, None]
        M = 1.0 if where == "evaluation split" else (W == 0).astype(np.float64)
        out["thr"].append(thr_b)
        out["feasible"].append(feasible_b)
        out["etp"].append((M * pred * (ey == 1)).sum(1))
        out["efn"].append((M * ~pred * (ey == 1)).sum(1))
        out["efp"].append((M * pred * (ey == 0)).sum(1))
    thr, feasible, etp, efn, efp = (np.concatenate(out[k]) for k in ("thr", "feasible", "etp", "efn", "efp"))
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = np.where(etp + efn > 0, etp / (etp + efn), np.nan)
        prec = np.where(etp + efp > 0, etp / (etp + efp), np.nan)
    reps = pd.DataFrame({"threshold": thr, "feasible": feasible, "recall": rec, "precision": prec,
                         "fn": efn.astype(int), "fp": efp.astype(int)})
    q = [alpha / 2, 1 - alpha / 2]

    def summ(v):
        v = v[np.isfinite(v)]
        if not v.size:
            return float("nan"), [float("nan"), float("nan")]
        return float(np.median(v)), [float(x) for x in np.quantile(v, q)]

    tm, tci = summ(thr)
    rm, rci = summ(rec)
    pm, pci = summ(prec)
    summary = {"n_boot": n_boot, "alpha": alpha, "random_state": random_state, "gamma": gamma,
               "evaluated_on": where, "threshold_median": tm, "threshold_ci": tci,
               "feasible_share": float(feasible.mean()), "recall_median": rm, "recall_ci": rci,
               "recall_undefined": int(np.isnan(rec).sum()), "precision_median": pm,
               "precision_ci": pci, "precision_undefined": int(np.isnan(prec).sum())}
    return reps, summary


# ------------------------------------------------------------------------- group thresholds
def _as_groups(groups, n: int) -> np.ndarray:
    g = np.asarray(groups, dtype=object)
    if g.ndim != 1 or g.size != n:
        raise DataError(f"groups must be 1-D with one entry per case; got shape {g.shape} for {n} cases")
    if pd.isna(g).any():
        raise DataError("groups contain missing values; drop or label those cases before the audit")
    return np.array([str(x) for x in g], dtype=object)


class GroupRecallThresholds(BaseEstimator):
    """One recall-constrained threshold per group, each reaching the same recall target.

    A scikit-learn estimator (see :class:`RecallConstrainedThreshold`).

    Parameters
    ----------
    gamma, step, grid : the rule of :class:`RecallConstrainedThreshold`, applied per group.

    Attributes
    ----------
    thresholds_ : dict[str, float]
        Group -> threshold.
    feasible_ : dict[str, bool]
        Group -> whether the target was reached on the calibration data.
    fallback_ : dict[str, str]
        Group -> sentence, for groups that could not be fitted as asked: infeasible target, or
        no malignant case in the group (then the group gets the global threshold fitted on all
        calibration cases).
    global_ : RecallConstrainedThreshold
        The search on all calibration cases together.
    """

    def __init__(self, *, gamma: float = 0.85, step: float = 0.02, grid=None):
        self.gamma = gamma
        self.step = step
        self.grid = grid

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "thresholds_")

    def fit(self, y_true, y_score, groups) -> "GroupRecallThresholds":
        """Fit one threshold per group on labels (n,), scores (n,) and group names (n,)."""
        y, s = check_labels_scores(y_true, y_score)
        g = _as_groups(groups, y.size)
        self.global_ = RecallConstrainedThreshold(gamma=self.gamma, step=self.step, grid=self.grid).fit(y, s)
        self.thresholds_, self.feasible_, self.fallback_ = {}, {}, {}
        for name in sorted(set(g)):
            name = str(name)
            m = g == name
            if not (y[m] == 1).any():
                self.thresholds_[name] = self.global_.threshold_
                self.feasible_[name] = False
                self.fallback_[name] = (f"group '{name}' has no malignant calibration case; "
                                        f"it gets the global threshold {self.global_.threshold_:g}")
                log.warning(self.fallback_[name])
                continue
            est = RecallConstrainedThreshold(gamma=self.gamma, step=self.step, grid=self.grid).fit(y[m], s[m])
            self.thresholds_[name] = est.threshold_
            self.feasible_[name] = est.feasible_
            if est.fallback_:
                self.fallback_[name] = f"group '{name}': {est.fallback_}"
        return self

    def predict(self, y_score, groups) -> np.ndarray:
        """0/1 predictions (n,): ``score >= thresholds_[group]``; unseen groups raise DataError."""
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("this GroupRecallThresholds is not fitted yet; call fit() before predict()")
        s = np.asarray(y_score, dtype=float)
        g = _as_groups(groups, s.size)
        unknown = sorted(set(g) - set(self.thresholds_))
        if unknown:
            raise DataError(f"groups {unknown} were not in the calibration data, so they have no threshold")
        t = np.array([self.thresholds_[x] for x in g], dtype=float)
        return (s >= t).astype(int)


def _score_as_prediction():
    """A fitted 'prefit estimator' whose prediction is the score column itself (for fairlearn)."""
    from sklearn.base import BaseEstimator

    class ScoreAsPrediction(BaseEstimator):
        def __sklearn_is_fitted__(self):
            return True

        def fit(self, X, y=None):
            return self

        def predict(self, X):
            return np.asarray(X, dtype=float)[:, 0]

    return ScoreAsPrediction()


class FairlearnThresholds(BaseEstimator):
    """Fairness-constrained group thresholds: fairlearn's ``ThresholdOptimizer`` on the scores.

    A scikit-learn estimator (see :class:`RecallConstrainedThreshold`).

    The optimiser (Hardt et al. 2016) picks, per group, a threshold or a *random mixture of two
    thresholds* that maximises ``objective`` under the constraint. Its predictions are therefore
    randomised; ``random_state`` fixes them so a report is reproducible.

    Parameters
    ----------
    constraints : {"true_positive_rate_parity", "equalized_odds"}
        Equal recall across groups, or equal recall and false-positive rate.
    objective : str, default "balanced_accuracy_score"
        fairlearn objective (``accuracy_score``, ``balanced_accuracy_score``,
        ``true_positive_rate``, ``true_negative_rate``, ...).
    grid_size : int, default 1000
        fairlearn's number of candidate thresholds.
    random_state : int, default 0
        Seed of the randomised predictions.

    Attributes
    ----------
    optimizer_ : fairlearn.postprocessing.ThresholdOptimizer
    thresholds_ : dict[str, dict]
        Group -> fairlearn's interpolation: ``p0, operation0, p1, operation1`` (and for
        equalized odds ``p_ignore, prediction_constant``); each operation is
        ``{"threshold": t, "operator": ">"}`` where ``t`` is a float, or the text ``"-inf"``
        (flag every case) / ``"inf"`` (flag none).
    """

    randomized = True

    def __init__(self, *, constraints: str = "true_positive_rate_parity",
                 objective: str = "balanced_accuracy_score", grid_size: int = 1000, random_state: int = 0):
        self.constraints = constraints
        self.objective = objective
        self.grid_size = grid_size
        self.random_state = random_state

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "optimizer_")

    def fit(self, y_true, y_score, groups) -> "FairlearnThresholds":
        """Fit the optimiser on labels (n,), scores (n,) and group names (n,); every group
        needs both classes."""
        from fairlearn.postprocessing import ThresholdOptimizer

        check_choice(self.constraints, "constraints", ("true_positive_rate_parity", "equalized_odds"))
        grid_size = check_int(self.grid_size, "grid_size", low=1)
        y, s = check_labels_scores(y_true, y_score)
        g = _as_groups(groups, y.size)
        for name in sorted(set(g)):
            if len(set(y[g == name])) < 2:
                raise DataError(f"group '{name}' needs both benign and malignant calibration cases "
                                "for a fairness-constrained threshold")
        self.optimizer_ = ThresholdOptimizer(estimator=_score_as_prediction(), constraints=self.constraints,
                                             objective=self.objective, grid_size=grid_size,
                                             prefit=True, predict_method="predict")
        self.optimizer_.fit(s[:, None], y, sensitive_features=g)
        self.thresholds_ = {str(k): _describe_interp(v) for k, v in
                            self.optimizer_.interpolated_thresholder_.interpolation_dict.items()}
        return self

    def predict(self, y_score, groups) -> np.ndarray:
        """Randomised 0/1 predictions (n,), reproducible through ``random_state``."""
        if not self.__sklearn_is_fitted__():
            raise NotFittedError("this FairlearnThresholds is not fitted yet; call fit() before predict()")
        s = np.asarray(y_score, dtype=float)
        g = _as_groups(groups, s.size)
        return np.asarray(self.optimizer_.predict(s[:, None], sensitive_features=g,
                                                  random_state=self.random_state)).astype(int)


def _describe_interp(v) -> dict:
    out = {}
    for k, x in dict(v).items():
        if hasattr(x, "threshold"):
            t = float(x.threshold)   # -inf: flag every case, +inf: flag none (kept as text in JSON)
            out[k] = {"threshold": t if math.isfinite(t) else ("-inf" if t < 0 else "inf"),
                      "operator": str(getattr(x, "operator", ">"))}
        elif isinstance(x, (int, float, np.floating, np.integer)):
            out[k] = float(x)
        else:
            out[k] = str(x)
    return out


# ------------------------------------------------------------------------ calibration split
def calibration_split(y_true, groups=None, *, fraction: float = 0.3, random_state: int = 0) -> np.ndarray:
    """Stratified calibration split: a boolean mask, True for calibration cases.

    Within every stratum (label x group, or label alone) ``round(fraction * n_stratum)`` cases
    go to calibration, chosen with ``numpy.random.default_rng(random_state)``; strata of any
    size (even 1) are allowed, unlike scikit-learn's stratified splitter.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n,)
    groups : array-like, shape (n,), optional
    fraction : float in (0, 1)
    random_state : int

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    f = check_param(fraction, "calibration_fraction", label="fraction")
    y = np.asarray(y_true)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise DataError("labels must be a 1-D array of 0 (benign) or 1 (malignant)")
    g = np.zeros(y.size, dtype=str) if groups is None else _as_groups(groups, y.size)
    rng = np.random.default_rng(random_state)
    mask = np.zeros(y.size, dtype=bool)
    strata = pd.Series(list(zip(g, y))).astype(str).to_numpy()
    for key in sorted(set(strata)):
        idx = np.flatnonzero(strata == key)
        k = int(round(f * idx.size))
        mask[rng.permutation(idx)[:k]] = True
    return mask


# --------------------------------------------------------------------------------- evaluation
def evaluate_thresholds(y_true, y_pred, groups) -> pd.DataFrame:
    """Per-group counts and rates of 0/1 predictions (n,): ``group, n, n_pos, tp, fn, tn, fp,
    recall, precision, f1, specificity, fnr``; one extra row ``group="all"``.

    ``"all"`` names that extra row, so it is not a group name, except when every case is in
    ``"all"`` (data without groups): then the table is that one row.
    """
    y = np.asarray(y_true).astype(int)
    p = np.asarray(y_pred).astype(int)
    g = _as_groups(groups, y.size)
    names = sorted(set(g) - {"all"})
    if names and len(names) < len(set(g)):
        raise DataError("'all' names the row of every case; it cannot also be one of several group names")
    rows = []
    for name in names + ["all"]:
        m = np.ones(y.size, bool) if name == "all" else g == name
        c = {"tp": int(((p == 1) & (y == 1) & m).sum()), "fn": int(((p == 0) & (y == 1) & m).sum()),
             "tn": int(((p == 0) & (y == 0) & m).sum()), "fp": int(((p == 1) & (y == 0) & m).sum())}
        r = metrics_from_counts(**c)
        rows.append({"group": name, "n": r["n"], "n_pos": c["tp"] + c["fn"], **c,
                     **{k: r[k] for k in ("recall", "precision", "f1", "specificity", "fnr")}})
    return pd.DataFrame(rows)

