"""Groups from metadata columns: the alternative to ITA groups for the fairness analysis.

``column_groups(table, columns, age_bins=...)`` turns one or more metadata columns (a human
Fitzpatrick type, sex, body region, binned age) into one group label per row, so the fairness
statistics can compare e.g. Fitzpatrick types or "II & FEMALE" intersections with the same
tests and small-group verdicts as ITA groups. A missing value is the explicit group
``unknown`` (or the part ``unknown`` of an intersection), never dropped; like an unmeasurable
ITA, such a group is shown with its metrics but never compared (:func:`is_unknown`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .errors import ConfigError

__all__ = ["parse_group_columns", "parse_age_bins", "column_groups", "check_group_columns", "is_fitzpatrick",
           "is_unknown", "UNKNOWN", "JOIN"]

#: Label of a missing value (same as the ITA scheme's ``unknown``).
UNKNOWN = "unknown"
#: Separator of the parts of an intersection label.
JOIN = " & "
#: Column names read as a human Fitzpatrick skin type (1-6 shown as I-VI); PAD-UFES-20 spells it ``fitspatrick``.
FITZPATRICK_NAMES = ("fitzpatrick", "fitspatrick", "fitzpatrick_type", "fitzpatrick_skin_type", "fst")
_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI"}


def is_fitzpatrick(column: str) -> bool:
    """Whether ``column`` names a Fitzpatrick skin type (by name, case-insensitive)."""
    return str(column).strip().lower() in FITZPATRICK_NAMES


def is_unknown(label) -> bool:
    """Whether a group label is ``unknown`` or an intersection with an ``unknown`` part
    (``"II & unknown"``): a group the fairness analysis shows but does not compare."""
    return UNKNOWN in str(label).split(JOIN)


def parse_group_columns(value) -> tuple[str, ...]:
    """``"A,B"`` or a sequence -> ``("A", "B")``; ConfigError for an empty or repeated name."""
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else list(value))]
    if not parts or any(not p for p in parts):
        raise ConfigError(f"the 'group_column' parameter must be one or more comma-separated column names; "
                          f"got {value!r}")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"the 'group_column' parameter names a column twice; got {value!r}")
    return tuple(parts)


def parse_age_bins(value) -> tuple[float, ...]:
    """``"0,40,60,120"`` or a sequence -> strictly increasing finite edges (at least two)."""
    try:
        edges = tuple(float(x) for x in (value.split(",") if isinstance(value, str) else value))
    except (TypeError, ValueError):
        raise ConfigError(f"the 'age_bins' parameter must be increasing numbers such as '0,40,60,120'; "
                          f"got {value!r}") from None
    if len(edges) < 2 or not all(math.isfinite(e) for e in edges) or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ConfigError(f"the 'age_bins' parameter must be at least two strictly increasing finite numbers "
                          f"such as '0,40,60,120'; got {value!r}")
    return edges


def check_group_columns(table: pd.DataFrame, columns) -> None:
    """ConfigError naming the available columns when one of ``columns`` is not in ``table``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        hidden = {"image_path", "mask_path", "label"}
        avail = [str(c) for c in table.columns if c not in hidden]
        raise ConfigError(f"--group-column: no column {', '.join(map(repr, missing))} in the dataset; "
                          f"available: {', '.join(avail)}")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _column_labels(values: pd.Series, column: str, age_bins) -> pd.Series:
    missing = values.isna() | values.astype(str).str.strip().isin(["", "nan", "NaN", "None"])
    if age_bins is not None and column == "age":
        num = pd.to_numeric(values, errors="coerce")
        idx = np.searchsorted(np.asarray(age_bins), num.to_numpy(dtype=float), side="right") - 1
        inside = num.notna().to_numpy() & (idx >= 0) & (idx < len(age_bins) - 1)
        labels = np.array([f"age [{_fmt(age_bins[i])}, {_fmt(age_bins[i + 1])})" if ok else UNKNOWN
                           for i, ok in zip(idx, inside)], dtype=object)
        return pd.Series(labels, index=values.index)
    if is_fitzpatrick(column):
        num = pd.to_numeric(values, errors="coerce")
        roman = num.map(lambda v: _ROMAN.get(int(v)) if pd.notna(v) and float(v).is_integer() else None)
        labels = roman.where(roman.notna(), values.astype(str).str.strip())
    elif pd.api.types.is_float_dtype(values):
        labels = values.map(lambda v: _fmt(float(v)) if pd.notna(v) else UNKNOWN)
    else:
        labels = values.astype(str).str.strip()
    return labels.where(~missing, UNKNOWN).astype(object)


def column_groups(table: pd.DataFrame, columns, *, age_bins=None) -> pd.Series:
    """One group label per row of ``table`` from its metadata ``columns``.

    Parameters
    ----------
    table : DataFrame
        The dataset's table (one row per image).
    columns : str or sequence of str
        One column, or several for an intersection (labels joined by ``" & "``, e.g.
        ``"II & FEMALE"``).
    age_bins : sequence of float, optional
        Edges for the column ``age``: half-open bins ``[a, b)``, labelled ``"age [a, b)"``;
        an age outside every bin is ``unknown`` like a missing one.

    Returns
    -------
    Series of str, index of ``table``
        A Fitzpatrick column (:data:`FITZPATRICK_NAMES`) with values 1-6 gives I-VI; other
        numbers are written without a trailing ``.0``; a missing value is ``unknown``.

    Raises
    ------
    ConfigError
        A column not in ``table`` (the message lists the available ones) or bad ``age_bins``.
    """
    cols = parse_group_columns(columns)
    check_group_columns(table, cols)
    edges = parse_age_bins(age_bins) if age_bins is not None else None
    parts = [_column_labels(table[c], c, edges) for c in cols]
    out = parts[0]
    for p in parts[1:]:
        out = out + JOIN + p
    return out.rename("group")
