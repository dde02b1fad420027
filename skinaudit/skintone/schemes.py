"""Grouping schemes as data: partitions of the ITA axis into labelled half-open bins.

A scheme is a list of ascending cut points and one label per bin, darkest first. The built-in
schemes are the paper's binary light/dark split at 28 degrees, Del Bino & Bernerd 2013's six
categories and Kinyanjui et al. 2020's eight; any other list of cut points is a scheme whose
labels are its intervals. Images without a usable ITA get the label :data:`UNKNOWN`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = ["UNKNOWN", "Scheme", "SCHEMES", "get_scheme", "assign_groups"]

#: Group label of images without a usable ITA (the reason is in ``flags``).
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Scheme:
    """A partition of the ITA axis into half-open bins ``(c[i-1], c[i]]``.

    ``cuts`` ascend; bin 0 is ``(-inf, cuts[0]]`` and the last is ``(cuts[-1], inf)``, so every
    finite value (and +-inf) lands in exactly one bin. ``labels`` go from darkest to lightest.

    Attributes
    ----------
    name : str
        ``binary``, ``del_bino``, ``kinyanjui`` or ``custom``.
    cuts : tuple of float, shape (k,)
        Cut points in degrees of ITA, finite and strictly increasing.
    labels : tuple of str, shape (k + 1,)
        Distinct labels, not :data:`UNKNOWN`.
    """

    name: str
    cuts: tuple
    labels: tuple

    def __post_init__(self):
        cuts = tuple(float(c) for c in self.cuts)
        if not cuts or not all(math.isfinite(c) for c in cuts):
            raise ConfigError(f"the cut points of scheme '{self.name}' must be finite numbers; got {self.cuts!r}")
        if any(b <= a for a, b in zip(cuts, cuts[1:])):
            raise ConfigError(f"the cut points of scheme '{self.name}' must strictly increase; got {cuts!r}")
        if len(self.labels) != len(cuts) + 1:
            raise ConfigError(f"scheme '{self.name}' needs {len(cuts) + 1} labels for {len(cuts)} cut points; "
                              f"got {len(self.labels)}")
        if len(set(self.labels)) != len(self.labels) or UNKNOWN in self.labels:
            raise ConfigError(f"the labels of scheme '{self.name}' must be distinct and not '{UNKNOWN}'")
        object.__setattr__(self, "cuts", cuts)
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))

    @property
    def intervals(self) -> tuple:
        """Interval text per label, e.g. ``'(28, 41]'``, in label order."""
        edges = (-math.inf, *self.cuts, math.inf)
        out = []
        for lo, hi in zip(edges, edges[1:]):
            out.append(f"({_fmt(lo)}, {_fmt(hi)}{')' if hi == math.inf else ']'}")
        return tuple(out)

    def table(self) -> pd.DataFrame:
        """``label, interval, lower, upper`` per bin (lower open, upper closed)."""
        edges = (-math.inf, *self.cuts, math.inf)
        return pd.DataFrame({"label": self.labels, "interval": self.intervals,
                             "lower": edges[:-1], "upper": edges[1:]})


def _fmt(x: float) -> str:
    if x == math.inf:
        return "inf"
    if x == -math.inf:
        return "-inf"
    return f"{x:g}"


#: Built-in schemes. ``binary``: the paper's light > 28 / dark <= 28. ``del_bino``: Del Bino &
#: Bernerd 2013's six categories. ``kinyanjui``: Kinyanjui et al. 2020's eight.
SCHEMES = {
    "binary": Scheme("binary", (28,), ("dark", "light")),
    "del_bino": Scheme("del_bino", (-30, 10, 28, 41, 55),
                       ("dark", "brown", "tan", "intermediate", "light", "very_light")),
    "kinyanjui": Scheme("kinyanjui", (10, 19, 28, 34.5, 41, 48, 55),
                        ("brown_or_darker", "tan_1", "tan_2", "intermediate_1", "intermediate_2", "light_1",
                         "light_2", "very_light")),
}


def get_scheme(name_or_cutpoints) -> Scheme:
    """A :class:`Scheme` by name, a Scheme as it is, or a scheme built from cut points.

    Parameters
    ----------
    name_or_cutpoints : str, sequence of float or Scheme
        ``binary``, ``del_bino`` or ``kinyanjui`` (case and ``-``/``_`` ignored); or custom cut
        points in degrees, as a sequence of numbers or a comma-separated string such as
        ``"10,28,41"`` (sorted here). Custom bins get their intervals as labels, e.g.
        ``"(10, 28]"``.

    Returns
    -------
    Scheme

    Raises
    ------
    ConfigError
        An unknown name, cut points that are not finite numbers, or repeated cut points.
    """
    if isinstance(name_or_cutpoints, Scheme):
        return name_or_cutpoints
    if isinstance(name_or_cutpoints, str):
        key = name_or_cutpoints.strip().lower().replace("-", "_")
        if key in SCHEMES:
            return SCHEMES[key]
        try:
            cuts = [float(x) for x in name_or_cutpoints.split(",") if x.strip()]
        except ValueError:
            raise ConfigError(f"unknown ITA scheme {name_or_cutpoints!r}; choose from {', '.join(SCHEMES)} "
                              "or give cut points such as '10,28,41'") from None
    else:
        try:
            cuts = [float(x) for x in name_or_cutpoints]
        except (TypeError, ValueError):
            raise ConfigError(f"an ITA scheme must be a name or a list of cut points; got {name_or_cutpoints!r}") \
                from None
    cuts_sorted = tuple(sorted(cuts))
    tmp = Scheme("custom", cuts_sorted, tuple(f"bin{i}" for i in range(len(cuts_sorted) + 1)))
    return Scheme("custom", cuts_sorted, tmp.intervals)


def assign_groups(ita, scheme="binary") -> np.ndarray:
    """Group label per ITA value; NaN -> :data:`UNKNOWN`.

    Parameters
    ----------
    ita : array_like of float, shape (n,)
        ITA in degrees.
    scheme : str, sequence of float or Scheme
        See :func:`get_scheme`. Bins are ``(c[i-1], c[i]]``: a value equal to a cut point goes
        to the darker bin (e.g. exactly 28 is ``dark`` in the binary scheme).

    Returns
    -------
    ndarray of object (str), shape (n,)
    """
    sch = get_scheme(scheme)
    x = np.asarray(ita, dtype=float).reshape(-1)
    idx = np.searchsorted(np.asarray(sch.cuts), x, side="left")
    labels = np.asarray(sch.labels + (UNKNOWN,), dtype=object)
    idx = np.where(np.isnan(x), len(sch.labels), idx)
    return labels[idx]
