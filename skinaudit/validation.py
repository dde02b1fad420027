"""Parameter validation: one checker per kind of value, one set of bounds per parameter.

Every public entry point (``AuditConfig``, the estimators, the statistics) validates its
options here, so a parameter such as ``step`` has the same bounds and the same message
wherever it is given: "the 'step' parameter must be in (0, 0.5]; got 0.7".
"""
from __future__ import annotations

import math
import numbers

from .errors import ConfigError

__all__ = ["BOUNDS", "check_bounded", "check_choice", "check_int", "check_param"]

#: Bounds of the named parameters: (low, high, low_open, high_open).
BOUNDS: dict[str, tuple[float, float, bool, bool]] = {
    "threshold": (0.0, 1.0, False, False),
    "alpha": (0.0, 1.0, True, True),
    "gamma": (0.0, 1.0, True, False),
    "step": (0.0, 0.5, True, False),
    "keep_top": (0.0, 1.0, True, False),
    "calibration_fraction": (0.0, 1.0, True, True),
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


def check_param(value, name: str) -> float:
    """Validate one of the parameters of :data:`BOUNDS` against its bounds."""
    low, high, low_open, high_open = BOUNDS[name]
    return check_bounded(value, name, low, high, low_open=low_open, high_open=high_open)


def check_int(value, name: str, *, low: int = 0) -> int:
    """Return ``value`` as an int >= ``low``; floats with a fraction, text and booleans are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer() \
            or int(value) < low:
        raise ConfigError(f"the '{name}' parameter must be an integer >= {low}; got {value!r}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    """Return ``value`` when it is one of ``choices`` (strings)."""
    if value not in tuple(choices):
        raise ConfigError(f"the '{name}' parameter must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value
