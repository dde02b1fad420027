"""Skin tone of a whole dataset: the per-image driver and the estimator-sensitivity table.

:func:`inspect_dataset` reads every image of an :class:`~skinaudit.data.AuditDataset` (in
worker processes), estimates its ITA and artifacts, applies the dataset's given ITA or groups
where it has them, then the dataset-level cast step. :func:`sensitivity_table` counts the images
per group under each ITA estimator variant, so an auditor sees how much the grouping depends on
the method.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pandas as pd

from ..errors import DataError, ImageError
from ..lesion import ARTIFACT_NAMES, ArtifactParams, LesionParams
from ..validation import check_int
from .cast import correct_cast, dataset_cast_groups
from .ita import _analyse, _check_options, _ita_from_working, _prepare, _same_estimate, unknown_reasons
from .params import DATASET_ITA, ItaParams
from .schemes import UNKNOWN, assign_groups, get_scheme
from .uncertainty import add_uncertainty

__all__ = ["inspect_dataset", "inspect_with_sensitivity", "inspect_rows_and_variants", "sensitivity_table"]

_COLUMNS = ["image_id", "ita", "group", "L", "a", "b", "skin_pixels", "mask_source", "flags", "method", "ita_raw",
            "lesion_fraction", "segmenter", "artifact_detector", *ARTIFACT_NAMES, "status", "unknown_reason", "L_se",
            "b_se", "Lb_corr"]


def _read(image_path, mask_path):
    from ..imageio import read_image, read_mask

    image = read_image(image_path)
    mask = read_mask(mask_path, shape=image.shape[:2]) if mask_path else None
    return image, mask


def _mask_problems(mask, mask_path) -> list[str]:
    """Flags for a given mask that cannot be used as it is: empty (no lesion: the lesion is
    estimated instead) or not binary (binarised at half its maximum)."""
    from ..imageio import mask_is_binary

    if mask is None:
        return []
    if not mask.any():
        return ["empty_given_mask"]
    if mask.all():
        return ["all_lesion_mask"]
    return [] if mask_is_binary(mask_path) else ["non_binary_mask"]


_MASK_PROBLEMS = {"empty_given_mask": "the lesion mask is empty",
                  "all_lesion_mask": "the lesion mask covers the whole image (no skin left)",
                  "non_binary_mask": "the lesion mask is not binary (values other than 0 and one maximum)"}


def _save_mask(folder, image_id, image, mask, lesion_params) -> None:
    """Write the lesion mask of one image as ``folder/<id>.png`` (0/255, the image's size): the
    given mask, else the run's segmenter at full resolution (the working-size mask of the ITA
    sample is this mask's probability map or rule at working size)."""
    from pathlib import Path

    from PIL import Image

    from ..lesion import segment_lesion
    from ..outputs import safe_name

    m = mask if mask is not None else segment_lesion(image, params=lesion_params)
    path = Path(folder) / f"{safe_name(image_id)}.png"
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(np.where(m, 255, 0).astype(np.uint8)).save(tmp, format="PNG")
    os.replace(tmp, path)


def _inspect_image(image_id, image_path, mask_path, kwargs, use_mask, strict, save_masks):
    """The inspect row of one image, with what it read and prepared: ``(row, read, prepared)``;
    ``read`` is ``(image, mask as read)`` (None when reading failed; the mask None when not
    read), ``prepared`` maps ``mask given -> (wi, lesion, masks, estimates)`` of the analysis
    done (:func:`~skinaudit.skintone.ita._analyse`)."""
    read, prepared = None, {}
    try:
        image, mask = _read(image_path, mask_path if use_mask else None)
        read = (image, mask)
        problems = _mask_problems(mask, mask_path)
        if problems and strict:
            raise ImageError(mask_path, _MASK_PROBLEMS[problems[0]])
        if "empty_given_mask" in problems:
            mask = None
        if save_masks is not None:
            _save_mask(save_masks, image_id, image, mask, kwargs["lesion_params"])
        row = _analyse(image, mask, prepared=prepared, **kwargs)
        if problems:
            row["flags"] = ";".join([*problems, *([row["flags"]] if row.get("flags") else [])])
        row["status"] = "ok"
    except (ImageError, DataError) as exc:
        if strict:
            raise
        row = {"ita": float("nan"), "group": UNKNOWN, "flags": "read_error", "status": f"error: {exc}"}
    row["image_id"] = image_id
    return row, read, prepared


def _inspect_one(job):
    return _inspect_image(*job)[0]


def _inspect_variants_one(job):
    """One image's inspect row and its ITA estimator variants (:func:`_variants_one`) from one
    read of the image and at most one lesion + artifact analysis per mask."""
    *inspect_job, skin_margin = job
    image_id, image_path, mask_path, kwargs, use_mask = inspect_job[:5]
    row, read, prepared = _inspect_image(*inspect_job)
    if read is None:  # the image (or its mask) could not be read: no variant either, as _variants_one
        return row, {"image_id": image_id}
    image, mask = read
    if mask_path and not use_mask:  # the variants use the given mask whatever use_given_masks
        try:
            from ..imageio import read_mask

            mask = read_mask(mask_path, shape=image.shape[:2])  # as _read does
        except (ImageError, DataError):
            return row, {"image_id": image_id}
    # prepared[True] exists only when the row used the mask as read (an empty mask is replaced by
    # the estimated lesion for the row, under the key False), so every entry is valid for the variants
    return row, _variants_of(image_id, image, mask, kwargs["lesion_params"], kwargs["artifact_params"],
                             skin_margin, prepared)


def _executor(executor, n_jobs):
    """The executor given, else the local process pool of ``n_jobs`` processes."""
    if executor is not None:
        return executor
    from ..executors import LocalExecutor

    return LocalExecutor(n_jobs)


def _uses_torch(lesion_params, artifact_params) -> bool:
    """Whether the per-image work runs torch (the learned segmenter or artifact detector)."""
    from ..lesion import methods_used

    return "learned" in methods_used(lesion_params, artifact_params).values()


def inspect_dataset(dataset, *, scheme="binary", params: ItaParams = DATASET_ITA,
                    lesion_params: LesionParams = LesionParams(), artifact_params: ArtifactParams = ArtifactParams(),
                    use_given_masks: bool = True, n_jobs: int = 2, progress=None, strict: bool = False,
                    correct: bool = True, executor=None, save_masks=None) -> pd.DataFrame:
    """Skin tone and artifacts of every image of an :class:`~skinaudit.data.AuditDataset`.

    The dataset's own ``ita`` / ``group`` columns, where filled, override the estimate (the
    estimate stays in ``ita_estimated``; ``method`` becomes ``given``). Images are analysed in
    ``n_jobs`` processes (or on ``executor``); the output order is the dataset's, whatever
    ``n_jobs`` and the executor.

    With ``params.ita_correction == 'dataset_reference'`` (the default, :data:`DATASET_ITA`)
    the per-image rows then go through :func:`~skinaudit.skintone.correct_cast`, grouped by the
    dataset column ``params.cast_group``; ``correct=False`` returns the per-image rows before
    that step (they depend on nothing but their image, so they can be cached and corrected
    later together).

    Parameters
    ----------
    dataset : AuditDataset
    scheme : str, sequence of float or Scheme
        Grouping scheme (:func:`~skinaudit.skintone.get_scheme`).
    params : ItaParams
    lesion_params, artifact_params : LesionParams, ArtifactParams
    use_given_masks : bool
        Use the dataset's lesion masks where it has them (else estimate every lesion).
    n_jobs : int, >= 1
        Worker processes (1: in this process).
    progress : callable, optional
        ``progress(iterable, total=..., desc=...)`` wrapping the per-image iterator (e.g. tqdm).
    strict : bool
        Raise on an unreadable image or an unusable given mask instead of recording it.
    correct : bool
        Apply the dataset-level cast step.
    executor : Executor, optional
        Where the per-image work runs (:mod:`skinaudit.executors`, e.g. a
        :class:`~skinaudit.executors.RayExecutor`); default the local pool of ``n_jobs``.
    save_masks : path-like, optional
        Folder (created) where the lesion mask of each image is written as ``<id>.png`` (0/255
        at the image's size; ids with characters outside ``A-Za-z0-9._-`` are made file-safe):
        the given mask where used, else the ``lesion_params.segmenter`` mask at full resolution.

    Returns
    -------
    DataFrame, one row per image
        ``image_id, ita, group, L, a, b, skin_pixels, mask_source, flags, method, ita_raw,
        lesion_fraction, segmenter, artifact_detector, hair, ruler, ink, dark_corner, gel_bubble,
        gel_border, patches, status,
        unknown_reason, L_se, b_se, Lb_corr, ita_estimated`` (plus ``b_offset, b_corrected,
        cast_group`` after the cast step, then ``ita_low, ita_high`` and ``p_<label>`` per
        group of the scheme, from :func:`~skinaudit.skintone.uncertainty.add_uncertainty`;
        not with ``correct=False``). An
        image that cannot be read gives a row with ``status`` = the reason and group
        ``unknown``, unless ``strict`` (then the :class:`ImageError` is raised).

    Raises
    ------
    ConfigError
        A bad scheme, option object or ``n_jobs``, or a ``cast_group`` column the dataset lacks.
    """
    return _inspect(dataset, scheme=scheme, params=params, lesion_params=lesion_params,
                    artifact_params=artifact_params, use_given_masks=use_given_masks, n_jobs=n_jobs,
                    progress=progress, strict=strict, correct=correct, executor=executor, save_masks=save_masks)[0]


def inspect_with_sensitivity(dataset, *, scheme="binary", params: ItaParams = DATASET_ITA,
                             lesion_params: LesionParams = LesionParams(),
                             artifact_params: ArtifactParams = ArtifactParams(), use_given_masks: bool = True,
                             n_jobs: int = 2, progress=None, strict: bool = False, executor=None,
                             save_masks=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`inspect_dataset` and :func:`sensitivity_table` of one dataset from one pass over it.

    Each image is read once, and its lesion and artifact masks are computed at most once per
    lesion mask (the given one and the estimated one), for its row and its ITA estimator variants
    together; the results are those of ``inspect_dataset(dataset, ...)`` and
    ``sensitivity_table(dataset, scheme=scheme, params=params, lesion_params=lesion_params,
    artifact_params=artifact_params, ...)`` (whose variants use the dataset's masks whatever
    ``use_given_masks``). Parameters as for :func:`inspect_dataset`.

    Returns
    -------
    (DataFrame, DataFrame)
        The inspect table (with the cast step) and the sensitivity table (its per-image variant
        ITAs in ``.attrs['per_image']``).
    """
    table, per = _inspect(dataset, scheme=scheme, params=params, lesion_params=lesion_params,
                          artifact_params=artifact_params, use_given_masks=use_given_masks, n_jobs=n_jobs,
                          progress=progress, strict=strict, correct=True, executor=executor, save_masks=save_masks,
                          variants=True)
    per = pd.DataFrame(per)
    groups = dataset_cast_groups(dataset, replace(params, ita_correction="dataset_reference"))
    sens = sensitivity_table(per, scheme=scheme, lesion_params=lesion_params, artifact_params=artifact_params,
                             n_jobs=n_jobs, params=params, groups=groups)
    return table, sens


def inspect_rows_and_variants(dataset, *, scheme="binary", params: ItaParams = DATASET_ITA,
                              lesion_params: LesionParams = LesionParams(),
                              artifact_params: ArtifactParams = ArtifactParams(), use_given_masks: bool = True,
                              n_jobs: int = 2, progress=None, strict: bool = False,
                              executor=None) -> tuple[pd.DataFrame, list[dict]]:
    """One pass: the per-image rows of ``inspect_dataset(..., correct=False)`` and each image's ITA
    estimator variants, exactly as :func:`sensitivity_table` computes them for the same images
    (``pd.DataFrame(variants)`` is its ``.attrs['per_image']`` for this dataset): a caller that
    needs both on the same images reads and analyses each image once."""
    return _inspect(dataset, scheme=scheme, params=params, lesion_params=lesion_params,
                    artifact_params=artifact_params, use_given_masks=use_given_masks, n_jobs=n_jobs,
                    progress=progress, strict=strict, correct=False, executor=executor, save_masks=None,
                    variants=True)


def _inspect(dataset, *, scheme, params, lesion_params, artifact_params, use_given_masks, n_jobs, progress, strict,
             correct, executor, save_masks, variants=False):
    """:func:`inspect_dataset`'s table and, with ``variants``, the per-image ITA variants of
    :func:`sensitivity_table` from the same pass (a list of row dicts, one per image, in the
    dataset's order: ``pd.DataFrame`` of it is the ``.attrs['per_image']`` layout); else None."""
    sch = get_scheme(scheme)
    _check_options(params, lesion_params, artifact_params)
    check_int(n_jobs, "n_jobs", low=1)
    table = dataset.table
    cast_groups = dataset_cast_groups(dataset, params) if correct else None
    if variants:  # checked before any image is read, as sensitivity_table does
        dataset_cast_groups(dataset, replace(params, ita_correction="dataset_reference"))
    kwargs = dict(params=params, scheme=sch, lesion_params=lesion_params, artifact_params=artifact_params)
    if save_masks is not None:
        from pathlib import Path

        Path(save_masks).mkdir(parents=True, exist_ok=True)
        save_masks = str(save_masks)
    jobs = [(str(r.image_id), r.image_path, r.mask_path, kwargs, use_given_masks, strict, save_masks)
            for r in table.itertuples(index=False)]
    if variants:
        jobs = [(*j, params.skin_margin) for j in jobs]
    rows = _executor(executor, n_jobs).map(_inspect_variants_one if variants else _inspect_one, jobs,
                                           desc="skin tone", progress=progress,
                                           uses_torch=_uses_torch(lesion_params, artifact_params))
    per = None
    if variants:
        rows, per = zip(*rows) if rows else ((), ())
        per = list(per)
    out = pd.DataFrame(list(rows))
    for c in _COLUMNS:
        if c not in out.columns:
            out[c] = np.nan
    out = out[_COLUMNS].copy()
    for c in ARTIFACT_NAMES:
        out[c] = out[c].fillna(False).astype(bool)
    out["ita_estimated"] = out["ita"]
    if "ita" in table.columns:
        given = pd.to_numeric(table["ita"], errors="coerce").to_numpy()
        has = ~np.isnan(given)
        out.loc[has, "ita"] = given[has]
        out.loc[has, "method"] = "given"
        out.loc[has, "group"] = assign_groups(given[has], sch)
    if "group" in table.columns:
        g = table["group"].to_numpy(dtype=object)
        has = pd.notna(g)
        out.loc[has, "group"] = g[has].astype(str)
        out.loc[has, "method"] = "given_group"
    out["unknown_reason"] = unknown_reasons(out["flags"], out["group"])
    if correct and params.ita_correction == "dataset_reference":
        out = correct_cast(out, params, cast_groups, sch)
    if correct:
        out = add_uncertainty(out, sch, random_state=params.random_state)
    return out, per


#: Per-image ITA estimator variants: name -> (use the given mask, ItaParams). The two mask
#: variants also keep their skin L* and b*, from which :func:`sensitivity_table` derives the
#: ", cast reference" variants of :func:`correct_cast` over the whole table.
_VARIANTS = {
    "estimated mask, no correction": (False, ItaParams()),
    "given mask, no correction": (True, ItaParams()),
    "estimated mask, specular correction": (False, ItaParams(ita_correction="specular")),
    "estimated mask, shades of gray": (False, ItaParams(ita_correction="shades_of_gray")),
    "border frame (naive baseline)": (False, ItaParams(method="border", statistic="median")),
}
_CAST_VARIANTS = {"estimated mask, cast reference": "estimated mask, no correction",
                  "given mask, cast reference": "given mask, no correction"}
#: Reference b* of the extra cast-step rows of :func:`sensitivity_table` (#15: the assumption's
#: effect; their offsets are estimated on the rows given, not taken from ``offsets``).
REFERENCE_B_ROWS = (10.0, 15.0, 20.0)


def _variants_one(job):
    image_id, image_path, mask_path, lesion_params, artifact_params, skin_margin = job
    try:
        image, mask = _read(image_path, mask_path)
    except (ImageError, DataError):
        return {"image_id": image_id}
    return _variants_of(image_id, image, mask, lesion_params, artifact_params, skin_margin, {})


def _variants_of(image_id, image, mask, lesion_params, artifact_params, skin_margin, prepared):
    """The ITA of each :data:`_VARIANTS` of one image (``mask``: the given mask as read, or None).

    ``prepared`` maps ``mask given -> (wi, lesion, masks, [(ItaParams, ItaResult)])`` already
    computed for this image and mask: reused, with any estimate that equals a variant's
    (:func:`~skinaudit.skintone.ita._same_estimate`); the others are computed here, once."""
    # the given mask is usable (inspect_dataset uses it) when there is one and it is not empty
    out = {"image_id": image_id, "given mask::used": bool(mask is not None and mask.any())}
    cache = dict(prepared)
    for name, (given, p) in _VARIANTS.items():
        if given and mask is None:
            continue
        key = bool(given)
        if key not in cache:
            cache[key] = (*_prepare(image, mask if given else None, None, lesion_params, artifact_params), [])
        wi, lesion, masks, known = cache[key]
        # the sample policy of the run, for every variant; no bootstrap: only ita, L and b are kept
        p = replace(p, skin_margin=skin_margin, n_boot=0)
        res = next((r for q, r in known if _same_estimate(p, q)), None)
        if res is None:
            res = _ita_from_working(wi, lesion, masks, p, "given" if given else "estimated")
        out[name] = res.ita
        if name in _CAST_VARIANTS.values():
            out[f"{name}::L"], out[f"{name}::b"] = res.L, res.b
    return out


#: name of the variant that uses the given mask where it is usable and the estimated one elsewhere,
#: as :func:`inspect_dataset` does (present only when some images have no usable given mask)
MIXED = "given mask where usable, else estimated"


def _mixed_masks(per: pd.DataFrame, values: dict):
    """When some, not all, images have a usable given mask (``given mask::used``): add to ``per``
    and ``values`` the variant :data:`MIXED` without correction (the given mask's ITA, L* and b*
    where it was usable, the estimated mask's elsewhere) and return its name; else None (every
    image used its given mask, or none had one)."""
    given, est = "given mask, no correction", "estimated mask, no correction"
    if "given mask::used" not in per.columns or given not in values or est not in values:
        return None
    used = per["given mask::used"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if used.all() or not used.any():
        return None
    name = f"{MIXED}, no correction"
    values[name] = per[name] = np.where(used, values[given], values[est])
    for c in ("L", "b"):
        per[f"{name}::{c}"] = np.where(used, per[f"{given}::{c}"].to_numpy(dtype=float),
                                       per[f"{est}::{c}"].to_numpy(dtype=float))
    return name


def cast_variant_sources(per: pd.DataFrame) -> dict:
    """The cast-reference variants of a per-image variant table: ``name -> source`` (the variant
    without correction whose ``::L`` / ``::b`` columns the cast step corrects), for the sources
    present in ``per`` (:data:`_CAST_VARIANTS` and the :data:`MIXED` one)."""
    table = {**_CAST_VARIANTS, f"{MIXED}, cast reference": f"{MIXED}, no correction"}
    return {name: source for name, source in table.items() if f"{source}::L" in per.columns}


def sensitivity_table(dataset, *, scheme="binary", lesion_params: LesionParams = LesionParams(),
                      artifact_params: ArtifactParams = ArtifactParams(), n_jobs: int = 2,
                      progress=None, params: ItaParams = DATASET_ITA, groups=None,
                      offsets: dict | None = None, executor=None) -> pd.DataFrame:
    """Group sizes under each estimator variant, so an auditor sees how much grouping depends on method.

    Variants: the estimated lesion mask and the dataset's given mask (only when it has masks),
    each with and without the dataset-level cast correction of
    :func:`~skinaudit.skintone.correct_cast` (``params.reference_b``, acquisition groups from
    ``params.cast_group``); the estimated mask after specular-highlight correction and after
    whole-image Shades of Gray; the naive border-frame median; and the cast step with reference
    b* 10, 15 and 20 (:data:`REFERENCE_B_ROWS`, on the masks :func:`inspect_dataset` uses); all
    with ``params.skin_margin``. The first row is what :func:`inspect_dataset` reports: the
    variant ``params`` selects, on the given mask when every image has a usable one, on the
    estimated mask when none has, and otherwise on the variant :data:`MIXED` ("given mask where
    usable, else estimated", with and without the cast step; the given-mask rows then count the
    images without a usable mask as unknown); ``agreement`` is measured against it.

    Parameters
    ----------
    dataset : AuditDataset or DataFrame
        An AuditDataset (images are analysed), or a DataFrame with ``image_id`` and one ITA
        column per variant (e.g. a previous result of this function's ``.attrs['per_image']``,
        whose ``<variant>::L`` / ``<variant>::b`` columns feed the cast-reference variants).
    scheme : str, sequence of float or Scheme
    lesion_params, artifact_params : LesionParams, ArtifactParams
    n_jobs : int, >= 1
    progress : callable, optional
        As for :func:`inspect_dataset`.
    params : ItaParams
        ``skin_margin``, ``ita_correction`` (which variant comes first), ``reference_b``,
        ``cast_group``, ``min_cast_images`` and the validity bounds.
    groups : array_like, optional
        Acquisition group per row of a DataFrame ``dataset`` (read from ``params.cast_group``
        for an AuditDataset).
    offsets : dict group -> float, optional
        Cast offsets estimated on the whole dataset (see :func:`correct_cast`), so that the
        cast-reference rows of a sample match the main result; estimated on the sample if None.
    executor : Executor, optional
        As for :func:`inspect_dataset`.

    Returns
    -------
    DataFrame
        One row per variant: ``variant, n, <one column per group label>, unknown,
        agreement`` (share of images whose group equals the first variant's). The per-image
        ITA table (before the cast step) is in ``.attrs['per_image']``.

    Raises
    ------
    ConfigError
        A bad scheme, option object or ``n_jobs``.
    DataError
        No variant could be computed (no readable image).
    """
    sch = get_scheme(scheme)
    _check_options(params, lesion_params, artifact_params)
    check_int(n_jobs, "n_jobs", low=1)
    cast = replace(params, ita_correction="dataset_reference")
    if isinstance(dataset, pd.DataFrame):
        per = dataset.copy()
    else:
        groups = dataset_cast_groups(dataset, cast)
        jobs = [(str(r.image_id), r.image_path, r.mask_path, lesion_params, artifact_params, params.skin_margin)
                for r in dataset.table.itertuples(index=False)]
        per = pd.DataFrame(_executor(executor, n_jobs).map(_variants_one, jobs, desc="ITA variants",
                                                            progress=progress,
                                                            uses_torch=_uses_torch(lesion_params, artifact_params)))
    values = {c: per[c].to_numpy(dtype=float) for c in per.columns if c != "image_id" and "::" not in c}
    mixed = _mixed_masks(per, values)  # some images have no usable given mask: inspect_dataset estimates theirs
    for name, source in cast_variant_sources(per).items():
        lab = pd.DataFrame({"L": per[f"{source}::L"], "b": per[f"{source}::b"], "flags": "", "ita": np.nan,
                            "group": UNKNOWN})
        values[name] = correct_cast(lab, cast, groups, sch, offsets)["ita"].to_numpy(dtype=float)
    # the cast step's assumption (#15): the reference b* at 10, 15 and 20, on the mask inspect_dataset uses
    source = mixed or next((s for s in ("given mask, no correction", "estimated mask, no correction")
                            if f"{s}::L" in per.columns), None)
    if source is not None:
        for ref in REFERENCE_B_ROWS:
            lab = pd.DataFrame({"L": per[f"{source}::L"], "b": per[f"{source}::b"], "flags": "", "ita": np.nan,
                                "group": UNKNOWN})
            values[f"{source.rsplit(', ', 1)[0]}, cast reference b* {ref:g}"] = correct_cast(
                lab, replace(cast, reference_b=float(ref)), groups, sch)["ita"].to_numpy(dtype=float)
    # first: what inspect_dataset reports (the mask it uses: given, mixed or estimated)
    suffix = "cast reference" if params.ita_correction == "dataset_reference" else "no correction"
    first = next((f"{m}, {suffix}" for m in (MIXED, "given mask", "estimated mask") if f"{m}, {suffix}" in values),
                 None)
    variants = sorted(values, key=lambda v: (v != first, list(values).index(v)))
    if not variants:
        raise DataError("no ITA variant could be computed (no readable image)")
    rows = []
    ref = assign_groups(values[variants[0]], sch)
    for v in variants:
        g = assign_groups(values[v], sch)
        counts = pd.Series(g).value_counts()
        row = {"variant": v, "n": int(len(g))}
        for lab in (*sch.labels, UNKNOWN):
            row[lab] = int(counts.get(lab, 0))
        row["agreement"] = float(np.mean(g == ref))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["per_image"] = per
    out.attrs["intervals"] = dict(zip(sch.labels, sch.intervals))
    return out
