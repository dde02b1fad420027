"""The dataset-level colour-cast step: a one-sided b* offset per acquisition group.

Polarised dermatoscopes and camera white balance give whole acquisition groups (one device, one
site) a blue cast that pushes the skin's b* to zero or below, where ITA means nothing. No single
image holds a neutral reference, but a group does: its median skin b*. :func:`correct_cast`
raises each group's median to ``ItaParams.reference_b`` (default
:data:`~skinaudit.skintone.DEFAULT_REFERENCE_B`) and recomputes ITA and groups;
:func:`cast_summary` tabulates the offsets; :func:`dataset_cast_groups` reads each image's
acquisition group from a dataset.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from .ita import _VALIDITY_FLAGS, _validity_flag, ita_degrees, unknown_reasons
from .params import DATASET_ITA, ItaParams, check_instance
from .schemes import assign_groups, get_scheme

__all__ = ["correct_cast", "cast_summary", "dataset_cast_groups"]


def _require_columns(table, columns, what: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"{what} needs a DataFrame; got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{what} needs the columns {', '.join(columns)}; missing: {', '.join(missing)}")


def correct_cast(table: pd.DataFrame, params: ItaParams | None = None, groups=None, scheme="binary",
                 offsets: dict | None = None) -> pd.DataFrame:
    """Dataset-level, one-sided correction of a blue dermatoscope cast in skin b*.

    For each acquisition group (``groups``; one group when None) with at least
    ``params.min_cast_images`` images with a skin sample, the offset
    ``max(0, reference_b - median b*)`` is added to every image's b*; L* is left as measured.
    The correction only raises b*: a group whose median already reaches ``reference_b`` is left
    alone (a yellow cast cannot be told from darker skin). Differences between images of a
    group are kept, so their order along b* stays.

    Assumption (stated in reports): the median skin of each group has about the colorimetric
    b* of light-to-intermediate skin. For a population of mostly dark skin set ``reference_b``
    accordingly, or audit with ``ita_correction='none'``.

    Parameters
    ----------
    table : DataFrame, n rows
        Per-image rows of :func:`~skinaudit.skintone.inspect_dataset` (``correct=False``) or
        :func:`~skinaudit.skintone.analyse_image`: ``L, b`` (CIELAB) and, when present,
        ``flags, ita, group, method, ita_estimated``.
    params : ItaParams, optional
        ``reference_b``, ``min_cast_images``, ``b_min``, ``plausible_range``; default
        :data:`~skinaudit.skintone.DATASET_ITA`.
    groups : array_like, shape (n,), optional
        Acquisition group of each row (missing values form their own group).
    scheme : str, sequence or Scheme
        Grouping scheme for the recomputed ``group``.
    offsets : dict group -> float, optional
        Offsets already estimated (e.g. on the whole dataset, applied here to a sample of it);
        groups not in it are estimated from ``table``.

    Returns
    -------
    DataFrame
        A copy with ``b_offset`` (added to b*), ``b_corrected``, ``cast_group`` and the
        recomputed ``ita``, ``group``, ``flags``, ``unknown_reason`` and ``method`` (rows whose ITA or group was given
        by the dataset keep them; their ``ita_estimated`` is corrected). ``ita_raw`` stays the
        plain formula on the measured b*. A group too small to estimate gets no offset
        (``cast_estimated`` False; :func:`cast_summary` lists it).

    Raises
    ------
    ConfigError
        ``params`` not an ItaParams, a bad scheme, or as many group labels as rows missing.
    DataError
        ``table`` without the columns ``L`` and ``b``.
    """
    params = DATASET_ITA if params is None else check_instance(params, "params", ItaParams)
    sch = get_scheme(scheme)
    _require_columns(table, ("L", "b"), "correct_cast")
    out = table.copy()
    n = len(out)
    L = pd.to_numeric(out["L"], errors="coerce").to_numpy(dtype=float)
    b = pd.to_numeric(out["b"], errors="coerce").to_numpy(dtype=float)
    grp = pd.Series(["all"] * n if groups is None else list(groups), dtype=object)
    if len(grp) != n:
        raise ConfigError(f"correct_cast got {len(grp)} group labels for {n} rows")
    grp = grp.where(grp.notna(), "(missing)").astype(str).to_numpy()
    usable = np.isfinite(L) & np.isfinite(b)
    offset = np.zeros(n)
    estimated = np.zeros(n, dtype=bool)
    offsets = offsets or {}
    for g in np.unique(grp):
        sel = grp == g
        if g in offsets:
            offset[sel] = float(offsets[g])
            estimated[sel] = True
        elif (sel & usable).sum() >= params.min_cast_images:
            offset[sel] = max(0.0, params.reference_b - float(np.median(b[sel & usable])))
            estimated[sel] = True
    b_corr = b + offset
    ita_raw = ita_degrees(L, b_corr)
    flags_out, ita_out = [], np.full(n, np.nan)
    for i, old in enumerate(out["flags"].fillna("").astype(str) if "flags" in out else [""] * n):
        kept = [f for f in old.split(";") if f and not f.startswith(_VALIDITY_FLAGS)]
        if usable[i]:
            flag, ok = _validity_flag(float(ita_raw[i]), float(b_corr[i]), params)
            kept += [flag] if flag else []
            ita_out[i] = ita_raw[i] if ok else np.nan
        flags_out.append(";".join(kept))
    given = out["method"].astype(str).str.startswith("given").to_numpy() if "method" in out else np.zeros(n, bool)
    out["flags"] = flags_out
    if "ita_estimated" in out:
        out["ita_estimated"] = np.where(usable, ita_out, pd.to_numeric(out["ita_estimated"], errors="coerce"))
    upd = usable & ~given
    out.loc[upd, "ita"] = ita_out[upd]
    out.loc[upd, "group"] = assign_groups(ita_out[upd], sch)
    if "method" in out:
        out.loc[upd, "method"] = [f"{m}+dataset_reference" for m in out.loc[upd, "method"].astype(str)]
    if "group" in out:
        out["unknown_reason"] = unknown_reasons(out["flags"], out["group"])
    out["b_offset"] = np.where(usable, offset, np.nan)
    out["b_corrected"] = b_corr
    out["cast_group"] = grp
    out["cast_estimated"] = estimated
    return out


def cast_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per acquisition group of a :func:`correct_cast` table.

    Parameters
    ----------
    table : DataFrame
        The output of :func:`correct_cast` (``b, b_offset, cast_group, cast_estimated, ita``).

    Returns
    -------
    DataFrame
        ``cast_group, n`` (images with a measured b*), ``median_b`` (measured), ``b_offset``,
        ``estimated`` (False: too few images, no offset) and ``with_value`` (images with an
        ITA), sorted by ``cast_group``.

    Raises
    ------
    DataError
        A table without those columns (e.g. one that did not go through :func:`correct_cast`).
    """
    _require_columns(table, ("b", "b_offset", "cast_group", "cast_estimated", "ita"), "cast_summary")
    t = table[np.isfinite(pd.to_numeric(table["b"], errors="coerce"))]
    rows = []
    for g, sub in t.groupby("cast_group", sort=True):
        rows.append({"cast_group": str(g), "n": int(len(sub)), "median_b": float(np.median(sub["b"].astype(float))),
                     "b_offset": float(sub["b_offset"].iloc[0]), "estimated": bool(sub["cast_estimated"].iloc[0]),
                     "with_value": int(np.isfinite(pd.to_numeric(sub["ita"], errors="coerce")).sum())})
    return pd.DataFrame(rows, columns=["cast_group", "n", "median_b", "b_offset", "estimated", "with_value"])


def dataset_cast_groups(dataset, params: ItaParams, ids=None):
    """The acquisition group of each image of a dataset, for :func:`correct_cast`.

    Parameters
    ----------
    dataset : AuditDataset
        Its ``table`` holds the column ``params.cast_group``.
    params : ItaParams
        ``ita_correction`` and ``cast_group``.
    ids : array_like of str, optional
        Image ids giving the output order (e.g. a cached table's ``image_id``); default the
        dataset's order.

    Returns
    -------
    ndarray of object, shape (n,), or None
        None when ``params.ita_correction`` is not ``dataset_reference`` or ``cast_group`` is
        None (the whole dataset is one group).

    Raises
    ------
    ConfigError
        ``params`` not an ItaParams, or a ``cast_group`` column the dataset does not have.
    """
    check_instance(params, "params", ItaParams)
    if params.ita_correction != "dataset_reference" or params.cast_group is None:
        return None
    table = dataset.table
    if params.cast_group not in table.columns:
        raise ConfigError(f"the cast group column '{params.cast_group}' is not in dataset '{dataset.name}' "
                          f"(columns: {', '.join(map(str, table.columns))})")
    groups = table[params.cast_group]
    if ids is not None:
        groups = pd.Series(groups.to_numpy(dtype=object), index=table["image_id"].to_numpy()).reindex(ids)
    return groups.to_numpy(dtype=object)
