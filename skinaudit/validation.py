"""Validation at the boundary: one checker per kind of value, one set of bounds per parameter.

Every public entry point (``AuditConfig``, the estimators, the statistics, the figures)
validates its options here, so a parameter such as ``step`` has the same bounds and the same
message wherever it is given: "the 'step' parameter must be in (0, 0.5]; got 0.7". Bad options
raise :class:`~skinaudit.errors.ConfigError`; bad label / score arrays raise
:class:`~skinaudit.errors.DataError` (:func:`check_labels_scores`).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import ConfigError, DataError

__all__ = ["BOUNDS", "check_bounded", "check_choice", "check_int", "check_labels_scores", "check_param"]

#: Bounds of the named parameters: (low, high, low_open, high_open).
BOUNDS: dict[str, tuple[float, float, bool, bool]] = {
    "threshold": (0.0, 1.0, False, False),
    "alpha": (0.0, 0.5, True, False),
    "gamma": (0.0, 1.0, True, False),
    "step": (0.0, 0.5, True, False),
    "keep_top": (0.0, 1.0, True, False),
    "calibration_fraction": (0.0, 1.0, True, True),
    "power": (0.0, 1.0, True, True),
}


#: What a parameter means, appended to its range error where the range alone would puzzle.
HINTS: dict[str, str] = {
    "alpha": "it is the significance level of every test, and intervals have level 1 - alpha "
             "(0.05 gives 95% intervals)",
}


def _interval(low, high, low_open, high_open) -> str:
    return f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def _number(value, name: str) -> float:
    """``value`` as a finite float; text, booleans and other objects are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"the '{name}' parameter must be a number; got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"the '{name}' parameter must be a finite number; got {value!r}")
    return v


def check_bounded(value, name: str, low: float, high: float, *, low_open: bool = False,
                  high_open: bool = False) -> float:
    """Return ``value`` as a float after checking it lies in the stated interval.

    Parameters
    ----------
    value : real number
        Text, booleans, NaN and infinities are refused.
    name : str
        The parameter's name, as the user wrote it (shown in the message).
    low, high : float
        Bounds (``math.inf`` for an unbounded side).
    low_open, high_open : bool
        Whether the bound itself is excluded.

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        "the 'NAME' parameter must be in (LOW, HIGH]; got VALUE" (brackets as the bounds).
    """
    v = _number(value, name)
    if v < low or v > high or (low_open and v == low) or (high_open and v == high):
        raise ConfigError(f"the '{name}' parameter must be in "
                          f"{_interval(low, high, low_open, high_open)}; got {value!r}")
    return v


def check_param(value, name: str, *, label: str | None = None) -> float:
    """Validate one of the parameters of :data:`BOUNDS` against its bounds.

    ``label`` is the name shown in the message when the caller's argument is spelled
    differently (``fraction=`` of :func:`~skinaudit.thresholds.calibration_split` is
    ``calibration_fraction``).
    """
    low, high, low_open, high_open = BOUNDS[name]
    try:
        return check_bounded(value, label or name, low, high, low_open=low_open, high_open=high_open)
    except ConfigError as exc:
        if name in HINTS and "must be in" in str(exc):
            raise ConfigError(f"{exc}: {HINTS[name]}") from None
        raise


def check_int(value, name: str, *, low: int = 0) -> int:
    """Return ``value`` as an int >= ``low`` (a count: replicates, seeds, bins).

    Integral floats (``200.0``) are accepted; floats with a fraction, NaN, text and booleans
    are refused with "the 'NAME' parameter must be an integer >= LOW; got VALUE"
    (:class:`~skinaudit.errors.ConfigError`).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer() \
            or int(value) < low:
        raise ConfigError(f"the '{name}' parameter must be an integer >= {low}; got {value!r}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` when it is one of ``choices`` (strings), else raise
    :class:`~skinaudit.errors.ConfigError`: "the 'NAME' parameter must be one of A, B; got 'x'"."""
    if value not in tuple(choices):
        raise ConfigError(f"the '{name}' parameter must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_labels_scores(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of one set of cases, checked.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (n,)
        1 = malignant, 0 = benign.
    y_score : array-like of float in [0, 1], shape (n,)
        P(malignant), finite.

    Returns
    -------
    (y, s) : ndarray of int, shape (n,); ndarray of float64, shape (n,)

    Raises
    ------
    DataError
        When the shapes differ or are not 1-D, a label is not 0/1, or a score is not a finite
        probability.
    """
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise DataError(f"labels and scores must be 1-D of the same length; got {y.shape} and {s.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError("labels must be 0 (benign) or 1 (malignant)")
    if not np.all(np.isfinite(s)) or (s.size and (s.min() < 0 or s.max() > 1)):
        raise DataError("scores must be finite probabilities in [0, 1]")
    return y.astype(int), s
