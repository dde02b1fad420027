"""Number and cell formatting of the report: the only place numbers become text (jinja2 filters)."""
from __future__ import annotations

import math

from .._jsonsafe import leaves



def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_num(value, digits: int = 4) -> str:
    """A number as text: integers with thousands separators ("1,512"), reals with
    ``digits`` decimals ("0.8889"), booleans "yes"/"no", missing (None, NaN) "n/a"."""
    if is_missing(value):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{int(digits)}f}"
    return str(value)


def fmt_pct(value, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage ("31.4%"); missing is "n/a"."""
    if is_missing(value) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{100.0 * value:.{int(digits)}f}%"


def fmt_threshold(value) -> str:
    """A threshold with as many decimals as it has (0.5 -> "0.5", 0.375 -> "0.375")."""
    if is_missing(value) or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a"
    return f"{float(value):.6g}"


def fmt_cell(value, kind: str = "auto") -> str:
    """A table cell. ``kind``: "pct" a share in [0, 1] as a percentage, "percent" a value
    already in percent, "thr" a threshold, "p" a p-value, "est_ci" ``[estimate, low,
    high]`` as "0.8000 [0.7000, 0.9000]", "change" ``[before, after]`` as "3 -> 1";
    "auto" picks by type. A pair of numbers is an interval "[lo, hi]"; other lists
    are joined with ", "; a dict becomes "key: value; ..."."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "pct":
        return fmt_pct(value)
    if kind == "percent" and number:
        return f"{value:.1f}%"
    if kind == "thr" and number:
        return fmt_threshold(value)
    if kind == "thr" and isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ", ".join(fmt_threshold(v) for v in value) if value else "none"
    if kind == "thr" and isinstance(value, dict):
        # per-group thresholds; a randomised (fairlearn) group lists each threshold it mixes
        parts = []
        for k, v in value.items():
            if isinstance(v, dict):
                found = [x for path, x in leaves(v) if path and path[-1] == "threshold" and not is_missing(x)]
                parts.append(f"{k}: {' or '.join(fmt_threshold(x) for x in found) or 'n/a'}")
            else:
                parts.append(f"{k}: {fmt_cell(v, 'thr')}")
        return "; ".join(parts)
    if kind == "change" and isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{fmt_cell(value[0])}\u00a0\u2192\u00a0{fmt_cell(value[1])}"
    if kind == "p" and number:
        return "< 0.0001" if value < 1e-4 else f"{value:.4f}"
    if kind == "est_ci" and isinstance(value, (list, tuple)) and len(value) == 3:
        if all(is_missing(v) for v in value[1:]):  # no interval (e.g. an undefined estimate): no "[n/a, n/a]"
            return fmt_num(value[0])
        return f"{fmt_num(value[0])} {fmt_cell(list(value[1:]))}"
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) or v is None
                                   for v in value):
            ints = all(isinstance(v, int) for v in value)  # a count interval stays in counts
            lo, hi = (v if v is None or ints else float(v) for v in value)
            return f"[{fmt_num(lo)},\u00a0{fmt_num(hi)}]"
        return ", ".join(fmt_cell(v) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt_cell(v)}" for k, v in value.items())
    return fmt_num(value)


# -- templates ------------------------------------------------------------------------------
