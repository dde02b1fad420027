"""Individual Typology Angle (ITA) of one image, from its non-lesion skin pixels.

ITA (Chardon et al. 1991) in degrees::

    ITA = arctan((L* - 50) / b*) * 180 / pi

with L* and b* from scikit-image's ``rgb2lab`` (sRGB, D65, 2 degree observer), computed on the
skin sample of :func:`~skinaudit.skintone.skin_mask`. The statistic (``ItaParams.statistic``)
defaults to Benčević et al. 2025's: the medians of L* and b* after dropping pixels more than
1 SD from the medians (``"trimmed_median"``), which they found robust and lighting-invariant on
synthetic dermoscopy with known melanin.

An image whose skin b* is <= ``b_min`` is flagged ``b_nonpositive`` and gets ``ita = NaN`` and
group ``unknown`` (the raw number stays in ``ita_raw``). One whose ITA is above
``plausible_range`` keeps its value, flagged ``beyond_range(<value>)``, and falls in the scheme's
lightest (open) bin (``ItaParams.beyond_range='unknown'``: flagged ``implausible_ita`` and
``unknown`` instead); one below it is flagged ``implausible_ita`` and ``unknown``. Every row also carries the bootstrap errors of its L* and b*
(:mod:`~skinaudit.skintone.uncertainty`). ITA is a colorimetric proxy, not a Fitzpatrick type:
name the groups "ITA group" in reports.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from ..errors import ImageError
from ..lesion import (ArtifactParams, LesionParams, analyse_masks, image_artifact_flags, methods_used, resize_mask,
                      validate_image)
from .illuminant import _correct, _correction_gains
from .params import ItaParams, check_instance
from .sample import _kept_mask, _robust_lab, skin_mask
from .schemes import UNKNOWN, assign_groups, get_scheme
from .uncertainty import patch_bootstrap

__all__ = ["ita_degrees", "ItaResult", "estimate_ita", "analyse_image", "unknown_reasons"]


def ita_degrees(L, b):
    """Individual Typology Angle in degrees (Chardon et al. 1991).

    Parameters
    ----------
    L, b : array_like of float, broadcastable
        CIELAB lightness L* (0-100) and yellow-blue b*.

    Returns
    -------
    ndarray of float
        ``arctan((L - 50) / b) * 180 / pi``, in (-90, 90); NaN where ``b == 0``.
    """
    L = np.asarray(L, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.degrees(np.arctan((L - 50.0) / b))
    return np.where(b == 0, np.nan, out)


@dataclass(frozen=True)
class ItaResult:
    """ITA of one image.

    ``ita`` is NaN (group ``unknown``) when a flag in ``flags`` says why; ``ita_raw`` is the
    plain formula's value whatever the flags. ``L``, ``a``, ``b``: CIELAB of the skin
    statistic. ``skin_pixels``: skin pixels used, counted at full resolution.
    ``mask_source``: ``'given'`` or ``'estimated'``. ``method``: :meth:`ItaParams.describe`.
    ``L_se``, ``b_se``, ``Lb_corr``: bootstrap standard errors of ``L`` and ``b`` over skin
    patches and their correlation (:func:`~skinaudit.skintone.uncertainty.patch_bootstrap`;
    NaN without a skin sample or with ``n_boot`` 0).
    """

    ita: float
    ita_raw: float
    L: float
    a: float
    b: float
    skin_pixels: int
    mask_source: str
    flags: tuple = ()
    method: str = ""
    L_se: float = float("nan")
    b_se: float = float("nan")
    Lb_corr: float = float("nan")

    @property
    def reason(self) -> str:
        """The flags joined by ``';'`` (``''`` when the value is usable)."""
        return ";".join(self.flags)

    def as_dict(self) -> dict:
        """The fields as a dict, ``flags`` joined by ``';'``."""
        d = asdict(self)
        d["flags"] = ";".join(self.flags)
        return d


_VALIDITY_FLAGS = ("b_nonpositive", "implausible_ita", "beyond_range")


def _validity_flag(ita_raw: float, b: float, params: ItaParams) -> tuple[str, bool]:
    """``(flag, usable)``: ``('', True)`` when an ITA value is meaningful; ``b_nonpositive``
    (b* too low, unusable); above the plausible skin range ``beyond_range`` (kept, the lightest
    bin) or, with ``params.beyond_range == 'unknown'``, ``implausible_ita`` (unusable); below it
    ``implausible_ita`` (unusable: docs/skintone.md)."""
    if b <= params.b_min and params.lab_scale == "cie":
        return f"b_nonpositive(b*={b:.2f})", False
    if ita_raw > params.plausible_range[1] and params.beyond_range == "open_bin":
        return f"beyond_range({ita_raw:.1f})", True
    if not params.plausible_range[0] <= ita_raw <= params.plausible_range[1]:
        return f"implausible_ita({ita_raw:.1f})", False
    return "", True


#: ``unknown_reason`` by the first flag (prefix) that makes a row ``unknown``.
_REASONS = (("read_error", "unreadable"), ("error", "unreadable"), ("too_few_skin_pixels", "too_few_skin_pixels"),
            ("b_nonpositive", "b_nonpositive"), ("implausible_ita", "implausible_ita"))


def unknown_reasons(flags, group) -> np.ndarray:
    """Why each ``unknown`` row has no group; ``''`` for the other rows.

    Parameters
    ----------
    flags : array_like of str, shape (n,)
        ';'-joined flags (or a read error's status text).
    group : array_like of str, shape (n,)

    Returns
    -------
    ndarray of object (str), shape (n,)
        ``unreadable``, ``too_few_skin_pixels``, ``b_nonpositive``, ``implausible_ita``
        (``ItaParams.beyond_range='unknown'``) or ``no_value`` (no ITA and no flag saying why,
        e.g. a dataset's empty ``ita`` cell) for rows in :data:`UNKNOWN`.
    """
    flags = pd.Series(flags, dtype=object).fillna("").astype(str).to_numpy()
    group = pd.Series(group, dtype=object).fillna(UNKNOWN).astype(str).to_numpy()
    out = np.full(len(flags), "", dtype=object)
    for i in np.flatnonzero(group == UNKNOWN):
        parts = [f.strip() for f in flags[i].split(";")]
        out[i] = next((r for p, r in _REASONS if any(f.startswith(p) for f in parts)), "no_value")
    return out


def _ita_from_working(wi, lesion, masks, params: ItaParams, mask_source: str) -> ItaResult:
    from skimage.color import rgb2lab

    flags: list[str] = []
    skin = skin_mask(lesion, masks, params=params)
    n_small = int(skin.sum())
    per_pixel = 1.0 / (wi.scale ** 2)
    skin_pixels = int(round(n_small * per_pixel))
    nan = float("nan")
    if n_small < max(16, params.min_skin_fraction * skin.size):
        flags.append(f"too_few_skin_pixels({skin_pixels}<{params.min_skin_fraction:g} of the image)")
        return ItaResult(nan, nan, nan, nan, nan, skin_pixels, mask_source, tuple(flags), params.describe())
    raw = wi.sample
    if params.ita_correction in ("specular", "shades_of_gray"):
        bubbles = masks.get("gel_bubble")
        gains = _correction_gains(wi, bubbles, params.ita_correction)
        if gains is None:
            flags.append("no_colour_reference")
        else:
            raw = _correct(raw, gains)
    lab = rgb2lab(raw[skin])
    keep = _kept_mask(lab, params.statistic, params.trim_sd)
    L, a, b = (float(v) for v in _robust_lab(lab, params.statistic, params.trim_sd, keep))
    rows, cols = np.nonzero(skin)
    se = patch_bootstrap(lab, rows, cols, statistic=params.statistic, trim_sd=params.trim_sd, n_boot=params.n_boot,
                         patch_size=params.patch_size, random_state=params.random_state)
    if params.lab_scale == "opencv8":
        ita_raw = float(ita_degrees(L * 2.55, b + 128.0))
    else:
        ita_raw = float(ita_degrees(L, b))
    flag, usable = _validity_flag(ita_raw, b, params)
    if flag:
        flags.append(flag)
    ita = ita_raw if usable else nan
    return ItaResult(ita, ita_raw, L, a, b, skin_pixels, mask_source, tuple(flags), params.describe(), *se)


#: ItaParams fields that do not change an :class:`ItaResult`'s ``ita``, ``L``, ``a`` and ``b``:
#: the bootstrap's (its errors only) and the dataset-level cast step's (not applied per image).
_NOT_PER_IMAGE = dict(n_boot=0, patch_size=1, random_state=0, reference_b=1.0, cast_group=None, min_cast_images=1)


def _same_estimate(p: ItaParams, q: ItaParams) -> bool:
    """Whether :func:`_ita_from_working` gives the same ``ita``, ``L``, ``a`` and ``b`` under
    ``p`` and ``q`` (on the same working image and masks): equal but for the fields of
    :data:`_NOT_PER_IMAGE`, ``dataset_reference`` counting as ``none`` (its step comes later)."""
    def norm(x):
        return replace(x, **_NOT_PER_IMAGE,
                       ita_correction="none" if x.ita_correction == "dataset_reference" else x.ita_correction)

    return norm(p) == norm(q)


def _check_options(params, lesion_params, artifact_params) -> None:
    check_instance(params, "params", ItaParams)
    check_instance(lesion_params, "lesion_params", LesionParams)
    check_instance(artifact_params, "artifact_params", ArtifactParams)


def _prepare(image, lesion_mask, artifact_masks, lesion_params, artifact_params):
    image = validate_image(image)
    wi, lesion, masks = analyse_masks(image, lesion_mask=lesion_mask, params=lesion_params,
                                      artifact_params=artifact_params)
    if artifact_masks is not None:
        small = wi.raw.shape[:2]
        masks = {}
        for name, m in artifact_masks.items():
            m = np.asarray(m, dtype=bool)
            if m.shape != tuple(wi.shape):
                raise ImageError("<mask>", f"artifact mask '{name}' has shape {m.shape}, not the image's "
                                 f"{tuple(wi.shape)}")
            masks[name] = resize_mask(m, small, conservative=True)
    return wi, lesion, masks


def estimate_ita(image, *, lesion_mask=None, artifact_masks=None, params: ItaParams = ItaParams(),
                 lesion_params: LesionParams = LesionParams(),
                 artifact_params: ArtifactParams = ArtifactParams()) -> ItaResult:
    """ITA of the skin of one image.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        sRGB image.
    lesion_mask : ndarray of bool, shape (H, W), optional
        The lesion; estimated with :func:`skinaudit.lesion.segment_lesion` when omitted.
    artifact_masks : dict of str to ndarray of bool, shape (H, W), optional
        Pixels to exclude; detected with :func:`skinaudit.lesion.detect_artifacts` when omitted.
    params : ItaParams
        The estimator's options (skin sample, statistic, per-image correction, validity).
    lesion_params, artifact_params : LesionParams, ArtifactParams
        Options of the segmentation and the artifact detectors.

    Returns
    -------
    ItaResult
        ``ita`` in degrees (NaN with a reason in ``flags`` when not meaningful), ``L``, ``b``
        (CIELAB), ``skin_pixels``, ``mask_source``, ``flags``, ``method``.

    Raises
    ------
    ConfigError
        An option object of the wrong type.
    ImageError
        An image that is not RGB, or a mask of another shape.
    """
    _check_options(params, lesion_params, artifact_params)
    wi, lesion, masks = _prepare(image, lesion_mask, artifact_masks, lesion_params, artifact_params)
    return _ita_from_working(wi, lesion, masks, params, "given" if lesion_mask is not None else "estimated")


def analyse_image(image, mask=None, *, params: ItaParams = ItaParams(), scheme="binary",
                  lesion_params: LesionParams = LesionParams(),
                  artifact_params: ArtifactParams = ArtifactParams()) -> dict:
    """Segmentation (when ``mask`` is None), artifacts and ITA of one image as one row.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        sRGB image.
    mask : ndarray of bool, shape (H, W), optional
        The lesion; estimated when omitted.
    params : ItaParams
    scheme : str, sequence of float or Scheme
        Grouping scheme of ``group`` (:func:`~skinaudit.skintone.get_scheme`).
    lesion_params, artifact_params : LesionParams, ArtifactParams

    Returns
    -------
    dict
        ``ita, ita_raw, group, L, a, b, skin_pixels, mask_source, flags`` (';'-joined str),
        ``method``, ``L_se, b_se, Lb_corr`` (bootstrap errors), ``unknown_reason``, ``lesion_fraction`` (lesion share of the image, in [0, 1]),
        ``segmenter`` (``given``, ``learned`` or ``classical``: the lesion mask used),
        ``artifact_detector`` (``learned`` or ``classical``: the flags' method) and one bool per
        :data:`skinaudit.lesion.ARTIFACT_NAMES`.
    """
    _check_options(params, lesion_params, artifact_params)
    return _analyse(image, mask, params=params, scheme=get_scheme(scheme), lesion_params=lesion_params,
                    artifact_params=artifact_params)


def _analyse(image, mask, *, params, scheme, lesion_params, artifact_params, prepared=None) -> dict:
    """:func:`analyse_image` without the option checks; ``prepared`` (a dict), when given,
    receives ``(wi, lesion, masks, [(params, result)])`` (:func:`_prepare`'s output and the
    :class:`ItaResult`) under the key ``mask is not None``, so that other estimators of the same
    image reuse them (:func:`_same_estimate`)."""
    sch = get_scheme(scheme)
    wi, lesion, masks = _prepare(image, mask, None, lesion_params, artifact_params)
    res = _ita_from_working(wi, lesion, masks, params, "given" if mask is not None else "estimated")
    if prepared is not None:
        prepared[mask is not None] = (wi, lesion, masks, [(params, res)])
    row = res.as_dict()
    row["group"] = str(assign_groups([res.ita], sch)[0])
    row["unknown_reason"] = str(unknown_reasons([row["flags"]], [row["group"]])[0])
    row["lesion_fraction"] = float(lesion.mean())
    row.update(methods_used(lesion_params, artifact_params, mask_given=mask is not None))
    row.update(image_artifact_flags(wi.image, masks, lesion_mask=lesion, params=artifact_params))
    return row
