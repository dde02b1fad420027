"""Individual Typology Angle (ITA) from non-lesion skin pixels, grouping schemes, quality flags.

ITA (Chardon et al. 1991) in degrees::

    ITA = arctan((L* - 50) / b*) * 180 / pi

with L* and b* from scikit-image's ``rgb2lab`` (sRGB, D65, 2 degree observer), computed on
*skin pixels*: not the lesion dilated by a safety margin (``ItaParams.lesion_margin``) and
not any artifact of :func:`skinaudit.lesion.detect_artifacts` (hair, ruler, ink, dark
corner, gel bubbles and specular highlights, gel border, coloured patches).

The statistic (``ItaParams.statistic``) defaults to Benčević et al. 2025's: the medians of L*
and b* after dropping pixels more than 1 SD from the medians (``"trimmed_median"``), which they
found robust and lighting-invariant on synthetic dermoscopy with known melanin.

Colour casts are handled explicitly, never silently: the default keeps the measured b*
(``color_correction="none"``), because whole-image colour constancy removes the skin tone it
should measure (measured in docs/skintone.md); an image whose skin b* is <= ``b_min`` is
flagged ``b_nonpositive`` and one whose ITA is outside ``plausible_range`` is flagged
``implausible_ita``; both get ``ita = NaN`` and group ``unknown`` (the raw number stays in
``ita_raw``). ``"specular"`` corrects the illuminant from specular highlights only (a von
Kries scaling that makes the highlights neutral; dichromatic reflection, Lee 1986), which
does not consume the skin's own colour; ``"shades_of_gray"`` (Finlayson & Trezzi 2004, p=6,
whole image) is there to measure what the common preprocessing does.

ITA is a colorimetric proxy, not a Fitzpatrick type: name the groups "ITA group" in reports.
"""
from __future__ import annotations

import logging
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .errors import ConfigError, DataError, ImageError
from .lesion import (ARTIFACT_NAMES, ArtifactParams, LesionParams, _resize_mask, _validate_image, analyse_masks,
                     artifact_flags)

__all__ = [
    "Scheme",
    "SCHEMES",
    "get_scheme",
    "assign_groups",
    "ita_degrees",
    "ItaParams",
    "ItaResult",
    "estimate_ita",
    "analyse_image",
    "inspect_dataset",
    "correct_cast",
    "cast_summary",
    "dataset_cast_groups",
    "DATASET_ITA",
    "sensitivity_table",
    "UNKNOWN",
]

log = logging.getLogger(__name__)

#: Group label of images without a usable ITA (the reason is in ``flags``).
UNKNOWN = "unknown"


# -- grouping schemes ---------------------------------------------------------------------
@dataclass(frozen=True)
class Scheme:
    """A partition of the ITA axis into half-open bins ``(c[i-1], c[i]]``.

    ``cuts`` ascend; bin 0 is ``(-inf, cuts[0]]`` and the last is ``(cuts[-1], inf)``, so every
    finite value (and +-inf) lands in exactly one bin. ``labels`` go from darkest to lightest.
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
    """A :class:`Scheme` by name (``binary``, ``del_bino``, ``kinyanjui``), a Scheme, or cut points.

    Custom cut points (a sequence of numbers or a comma-separated string such as
    ``"10,28,41"``) get their intervals as labels, e.g. ``"(10, 28]"``.
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
    """Group label per ITA value; NaN -> ``'unknown'``.

    Parameters
    ----------
    ita : array_like, shape (n,)
        ITA in degrees.
    scheme : str, sequence of float or Scheme
        See :func:`get_scheme`. Bins are ``(c[i-1], c[i]]``: a value equal to a cut point goes
        to the darker bin (e.g. exactly 28 is ``dark`` in the binary scheme).

    Returns
    -------
    ndarray, shape (n,), object
    """
    sch = get_scheme(scheme)
    x = np.asarray(ita, dtype=float).reshape(-1)
    idx = np.searchsorted(np.asarray(sch.cuts), x, side="left")
    labels = np.asarray(sch.labels + (UNKNOWN,), dtype=object)
    idx = np.where(np.isnan(x), len(sch.labels), idx)
    return labels[idx]


def ita_degrees(L, b):
    """ITA in degrees, ``arctan((L - 50) / b) * 180 / pi``; NaN where b == 0."""
    L = np.asarray(L, dtype=float)
    b = np.asarray(b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.degrees(np.arctan((L - 50.0) / b))
    return np.where(b == 0, np.nan, out)


# -- parameters and result ---------------------------------------------------------------
_STATISTICS = ("trimmed_median", "median", "trimmed_mean")
_CORRECTIONS = ("none", "specular", "shades_of_gray", "dataset_reference")
_METHODS = ("segmentation", "border")
_SCALES = ("cie", "opencv8")


@dataclass(frozen=True)
class ItaParams:
    """Parameters of :func:`estimate_ita`.

    Attributes
    ----------
    method : {'segmentation', 'border'}
        Skin sample: everything but the dilated lesion and artifacts, or only a frame of width
        ``border_width`` (the naive border-patch baseline, for sensitivity tables).
    statistic : {'trimmed_median', 'median', 'trimmed_mean'}
        ``trimmed_median``: Benčević et al. 2025 (medians after dropping pixels more than
        ``trim_sd`` SD from the medians); ``trimmed_mean``: Groh et al. 2021 (means within
        ``trim_sd`` SD of the means); ``median``: plain medians of L* and b*.
    trim_sd : float
        Trimming half-width in standard deviations (default 1).
    lesion_margin : float
        Smallest safety margin around the lesion, as a fraction of the image's long side
        (default 0.05).
    lesion_margin_radius : float
        The margin grows with the lesion: at least this fraction of the lesion's equivalent
        radius (default 0.5), because a large lesion's faint periphery, which human outlines
        include, reaches further. Measured leakage in docs/skintone.md.
    shrink_margin : bool
        When the lesion-relative margin leaves less than twice the ``min_skin_fraction`` of the
        image, shrink it (never below the ``lesion_margin`` floor) so that much skin remains
        (default True). False keeps the full margin and returns ``unknown`` with
        ``too_few_skin_pixels`` instead: fewer images get a value, and less of a large lesion's
        periphery enters the sample (measured in docs/skintone.md).
    artifact_margin : int
        Dilation of every artifact mask, in working-size pixels (mixed pixels at edges).
    border_width : float
        Frame width of the ``border`` method, as a fraction of the long side (default 20 px of 600).
    color_correction : {'none', 'specular', 'shades_of_gray', 'dataset_reference'}
        See the module docstring. ``dataset_reference`` is a dataset-level step
        (:func:`correct_cast`, applied by :func:`inspect_dataset`); for one image on its own it
        is the same as ``none``.
    reference_b : float
        ``dataset_reference``: the skin b* that an acquisition group's median skin b* is raised
        to when it is below it (default 15, the b* of light-to-intermediate skin in contact
        colorimetry; see docs/skintone.md for the effect of 12-20).
    cast_group : str or None
        ``dataset_reference``: the dataset column naming each image's acquisition group
        (device, site, e.g. HAM10000's ``dataset``); None = the whole dataset is one group.
    min_cast_images : int
        ``dataset_reference``: fewer images with a skin sample in a group -> no correction
        for it (``cast_estimated`` False in the output; listed by :func:`cast_summary`).
    min_skin_fraction : float
        Fewer skin pixels than this fraction of the image -> group ``unknown``.
    b_min : float
        Skin b* at or below this -> flag ``b_nonpositive`` and no ITA (default 0).
    plausible_range : (float, float)
        ITA outside ``[lo, hi]`` -> flag ``implausible_ita`` and no ITA (default -60, 75).
    lab_scale : {'cie', 'opencv8'}
        ``cie`` (default): the formula on CIELAB. ``opencv8``: a compatibility mode that
        applies the formula to OpenCV's 8-bit Lab encoding (L* x 2.55, b* + 128), which
        reproduces the published per-image ITA of Kinyanjui et al. 2020 on HAM10000 (Spearman
        0.95, MAE 0.95 degrees on 600 images, docs/skintone.md); there b* hardly matters, so
        it is essentially a lightness scale. Use it only to compare with those published values.
    """

    method: str = "segmentation"
    statistic: str = "trimmed_median"
    trim_sd: float = 1.0
    lesion_margin: float = 0.05
    lesion_margin_radius: float = 0.5
    shrink_margin: bool = True
    artifact_margin: int = 1
    border_width: float = 20 / 600
    color_correction: str = "none"
    min_skin_fraction: float = 0.03
    b_min: float = 0.0
    plausible_range: tuple = (-60.0, 75.0)
    lab_scale: str = "cie"
    reference_b: float = 15.0
    cast_group: str | None = None
    min_cast_images: int = 20

    def __post_init__(self):
        _choice("lab_scale", self.lab_scale, _SCALES)
        _choice("method", self.method, _METHODS)
        _choice("statistic", self.statistic, _STATISTICS)
        _choice("color_correction", self.color_correction, _CORRECTIONS)
        if not self.trim_sd > 0:
            raise ConfigError(f"the 'trim_sd' parameter must be positive; got {self.trim_sd!r}")
        if not 0 <= self.lesion_margin < 0.5:
            raise ConfigError(f"the 'lesion_margin' parameter must be in [0, 0.5); got {self.lesion_margin!r}")
        if not 0 <= self.lesion_margin_radius <= 5:
            raise ConfigError(f"the 'lesion_margin_radius' parameter must be in [0, 5]; got {self.lesion_margin_radius!r}")
        if not 0 < self.border_width < 0.5:
            raise ConfigError(f"the 'border_width' parameter must be in (0, 0.5); got {self.border_width!r}")
        if not 0 <= self.min_skin_fraction < 1:
            raise ConfigError(f"the 'min_skin_fraction' parameter must be in [0, 1); got {self.min_skin_fraction!r}")
        if int(self.artifact_margin) != self.artifact_margin or self.artifact_margin < 0:
            raise ConfigError(f"the 'artifact_margin' parameter must be a non-negative integer; "
                              f"got {self.artifact_margin!r}")
        if not (math.isfinite(self.reference_b) and self.reference_b > 0):
            raise ConfigError(f"the 'reference_b' parameter must be a positive number; got {self.reference_b!r}")
        if int(self.min_cast_images) != self.min_cast_images or self.min_cast_images < 1:
            raise ConfigError(f"the 'min_cast_images' parameter must be a positive integer; "
                              f"got {self.min_cast_images!r}")
        lo, hi = self.plausible_range
        if not lo < hi:
            raise ConfigError(f"the 'plausible_range' parameter must be (low, high) with low < high; "
                              f"got {self.plausible_range!r}")

    def describe(self) -> str:
        """Short method text for the output's ``method`` column (per image: the dataset-level
        cast step is not applied yet, so ``dataset_reference`` reads ``none`` here and
        :func:`correct_cast` appends ``+dataset_reference``)."""
        scale = "" if self.lab_scale == "cie" else "/opencv8"
        per_image = "none" if self.color_correction == "dataset_reference" else self.color_correction
        margin = "" if self.shrink_margin else "/full-margin"
        return f"{self.method}/{self.statistic}/{per_image}{scale}{margin}"


def _choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"the '{name}' parameter must be one of {', '.join(allowed)}; got {value!r}")


#: The dataset default: CIE ITA with the one-sided, per-acquisition-group blue-cast
#: correction of :func:`correct_cast` (``inspect_dataset``, ``skinaudit run`` / ``inspect``).
DATASET_ITA = ItaParams(color_correction="dataset_reference")


@dataclass(frozen=True)
class ItaResult:
    """ITA of one image.

    ``ita`` is NaN (group ``unknown``) when a flag in ``flags`` says why; ``ita_raw`` is the
    plain formula's value whatever the flags. ``L``, ``a``, ``b``: CIELAB of the skin
    statistic. ``skin_pixels``: skin pixels used, counted at full resolution.
    ``mask_source``: ``'given'`` or ``'estimated'``.
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

    @property
    def reason(self) -> str:
        return ";".join(self.flags)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["flags"] = ";".join(self.flags)
        return d


# -- colour -----------------------------------------------------------------------------
def _srgb_to_linear(v):
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v):
    v = np.clip(v, 0, 1)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


def _correction_gains(wi, specular: np.ndarray | None, mode: str):
    """Per-channel linear-light gains (3,) or None when no reference exists."""
    if mode == "shades_of_gray":
        lin = _srgb_to_linear(wi.raw.astype(np.float64))
        px = lin[wi.field] if wi.field.any() else lin.reshape(-1, 3)
        norm = np.power(np.mean(np.power(px, 6), axis=0), 1 / 6)
    else:  # specular highlights: the brightest full-resolution pixels (by their darkest channel)
        if specular is None or not specular.any():
            return None
        full = _resize_mask(specular, wi.shape, conservative=False) if specular.shape != tuple(wi.shape) else specular
        px = _srgb_to_linear(wi.image[full].astype(np.float64) / 255.0)
        if len(px) < 3:
            return None
        order = np.argsort(-px.min(axis=1))
        top = px[order[:max(3, min(50, len(px) // 50))]]
        norm = top.mean(axis=0)
        if norm.min() < 0.3 or np.any(top.max(axis=0) >= 0.999):  # too dark, or clipped: no reference
            return None
    if np.any(norm <= 0):
        return None
    return norm.mean() / norm


def _robust_lab(lab: np.ndarray, statistic: str, trim_sd: float):
    """(L, a, b) of skin pixels ``lab`` (n, 3) by the chosen statistic."""
    if statistic == "median":
        return np.median(lab, axis=0)
    if statistic == "trimmed_mean":
        centre = lab.mean(axis=0)
    else:
        centre = np.median(lab, axis=0)
    sd = lab.std(axis=0)
    keep = np.all(np.abs(lab[:, [0, 2]] - centre[[0, 2]]) <= trim_sd * sd[[0, 2]] + 1e-9, axis=1)
    kept = lab[keep] if keep.sum() >= 3 else lab
    return kept.mean(axis=0) if statistic == "trimmed_mean" else np.median(kept, axis=0)


def _skin_mask_small(wi, lesion, masks, params: ItaParams) -> np.ndarray:
    h, w = lesion.shape
    excluded = np.zeros((h, w), dtype=bool)
    for m in masks.values():
        excluded |= m
    if params.artifact_margin:
        excluded = ndi.binary_dilation(excluded, iterations=int(params.artifact_margin))
    if params.method == "border":
        bw = max(1, int(round(params.border_width * max(h, w))))
        frame = np.zeros((h, w), dtype=bool)
        frame[:bw] = frame[-bw:] = True
        frame[:, :bw] = frame[:, -bw:] = True
        return frame & ~excluded
    if not lesion.any():
        return ~excluded
    radius = math.sqrt(float(lesion.sum()) / math.pi)  # equivalent radius of the lesion
    floor = params.lesion_margin * max(h, w)
    margin = max(floor, params.lesion_margin_radius * radius)
    dist = ndi.distance_transform_edt(~lesion)
    free = dist[~excluded]
    keep = int(max(16, 2 * params.min_skin_fraction * h * w))
    if params.shrink_margin and margin > floor and np.count_nonzero(free > margin) < keep <= free.size:
        # a large lesion: shrink the lesion-relative margin (never below the floor) so that at
        # least twice the minimum skin share remains
        margin = max(floor, float(np.partition(free, free.size - keep)[free.size - keep]) - 1e-6)
    return (dist > margin) & ~excluded


def _ita_from_working(wi, lesion, masks, params: ItaParams, mask_source: str) -> ItaResult:
    from skimage.color import rgb2lab

    flags: list[str] = []
    skin = _skin_mask_small(wi, lesion, masks, params)
    n_small = int(skin.sum())
    per_pixel = 1.0 / (wi.scale ** 2)
    skin_pixels = int(round(n_small * per_pixel))
    nan = float("nan")
    if n_small < max(16, params.min_skin_fraction * skin.size):
        flags.append(f"too_few_skin_pixels({skin_pixels}<{params.min_skin_fraction:g} of the image)")
        return ItaResult(nan, nan, nan, nan, nan, skin_pixels, mask_source, tuple(flags), params.describe())
    raw = wi.sample
    if params.color_correction in ("specular", "shades_of_gray"):
        bubbles = masks.get("gel_bubble")
        gains = _correction_gains(wi, bubbles, params.color_correction)
        if gains is None:
            flags.append("no_colour_reference")
        else:
            raw = _linear_to_srgb(_srgb_to_linear(raw.astype(np.float64)) * gains)
    lab = rgb2lab(raw[skin])
    L, a, b = (float(v) for v in _robust_lab(lab, params.statistic, params.trim_sd))
    if params.lab_scale == "opencv8":
        ita_raw = float(ita_degrees(L * 2.55, b + 128.0))
    else:
        ita_raw = float(ita_degrees(L, b))
    flag = _validity_flag(ita_raw, b, params)
    if flag:
        flags.append(flag)
    ita = nan if flag else ita_raw
    return ItaResult(ita, ita_raw, L, a, b, skin_pixels, mask_source, tuple(flags), params.describe())


_VALIDITY_FLAGS = ("b_nonpositive", "implausible_ita")


def _validity_flag(ita_raw: float, b: float, params: ItaParams) -> str:
    """'' when an ITA value is meaningful, else the flag saying why (b* too low, or outside the
    plausible skin range)."""
    if b <= params.b_min and params.lab_scale == "cie":
        return f"b_nonpositive(b*={b:.2f})"
    if not params.plausible_range[0] <= ita_raw <= params.plausible_range[1]:
        return f"implausible_ita({ita_raw:.1f})"
    return ""


def correct_cast(table: pd.DataFrame, params: ItaParams | None = None, groups=None, scheme="binary",
                 offsets: dict | None = None) -> pd.DataFrame:
    """Dataset-level, one-sided correction of a blue dermatoscope cast in skin b*.

    Polarised dermatoscopes and camera white balance give whole acquisition groups (one
    device, one site) a cast that pushes the skin's b* to zero or below, where ITA means
    nothing. No single image holds a neutral reference, but a group does: its median skin b*.
    For each group (``groups``; one group when None) with at least ``params.min_cast_images``
    images with a skin sample, the offset ``max(0, reference_b - median b*)`` is added to every
    image's b*; L* is left as measured. The correction only raises b*: a group whose median
    already reaches ``reference_b`` is left alone (a yellow cast cannot be told from darker
    skin). Differences between images of a group are kept, so their order along b* stays.

    Assumption (stated in reports): the median skin of each group has about the colorimetric
    b* of light-to-intermediate skin. For a population of mostly dark skin set ``reference_b``
    accordingly, or audit with ``color_correction='none'``.

    Parameters
    ----------
    table : DataFrame
        Per-image rows of :func:`inspect_dataset` (``correct=False``) or :func:`analyse_image`:
        ``L, b, flags, ita, group, method`` (and ``ita_estimated`` when present).
    params : ItaParams
        ``reference_b``, ``min_cast_images``, ``b_min``, ``plausible_range``.
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
        recomputed ``ita``, ``group``, ``flags`` and ``method`` (rows whose ITA or group was given
        by the dataset keep them; their ``ita_estimated`` is corrected). ``ita_raw`` stays the
        plain formula on the measured b*. A group too small to estimate gets no offset
        (``cast_estimated`` False; :func:`cast_summary` lists it).
    """
    params = DATASET_ITA if params is None else params
    sch = get_scheme(scheme)
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
            flag = _validity_flag(float(ita_raw[i]), float(b_corr[i]), params)
            kept += [flag] if flag else []
            ita_out[i] = np.nan if flag else ita_raw[i]
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
    out["b_offset"] = np.where(usable, offset, np.nan)
    out["b_corrected"] = b_corr
    out["cast_group"] = grp
    out["cast_estimated"] = estimated
    return out


def cast_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per acquisition group of a :func:`correct_cast` table: ``cast_group, n,
    median_b`` (measured), ``b_offset``, ``estimated`` (False: too few images, no offset) and
    ``with_value`` (images with an ITA)."""
    t = table[np.isfinite(pd.to_numeric(table["b"], errors="coerce"))]
    rows = []
    for g, sub in t.groupby("cast_group", sort=True):
        rows.append({"cast_group": str(g), "n": int(len(sub)), "median_b": float(np.median(sub["b"].astype(float))),
                     "b_offset": float(sub["b_offset"].iloc[0]), "estimated": bool(sub["cast_estimated"].iloc[0]),
                     "with_value": int(np.isfinite(pd.to_numeric(sub["ita"], errors="coerce")).sum())})
    return pd.DataFrame(rows, columns=["cast_group", "n", "median_b", "b_offset", "estimated", "with_value"])


def _prepare(image, lesion_mask, artifact_masks, lesion_params, artifact_params):
    image = _validate_image(image)
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
            masks[name] = _resize_mask(m, small, conservative=True)
    return wi, lesion, masks


def estimate_ita(image, *, lesion_mask=None, artifact_masks=None, params: ItaParams = ItaParams(),
                 lesion_params: LesionParams = LesionParams(),
                 artifact_params: ArtifactParams = ArtifactParams()) -> ItaResult:
    """ITA of the skin of one image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        sRGB image.
    lesion_mask : ndarray, shape (H, W), bool, optional
        The lesion; estimated with :func:`skinaudit.lesion.segment_lesion` when omitted.
    artifact_masks : dict name -> ndarray (H, W) bool, optional
        Pixels to exclude; detected with :func:`skinaudit.lesion.detect_artifacts` when omitted.
    params : ItaParams
    lesion_params, artifact_params : LesionParams, ArtifactParams

    Returns
    -------
    ItaResult
        ``ita`` in degrees (NaN with a reason in ``flags`` when not meaningful), ``L``, ``b``
        (CIELAB), ``skin_pixels``, ``mask_source``, ``flags``, ``method``.
    """
    wi, lesion, masks = _prepare(image, lesion_mask, artifact_masks, lesion_params, artifact_params)
    return _ita_from_working(wi, lesion, masks, params, "given" if lesion_mask is not None else "estimated")


def analyse_image(image, mask=None, *, params: ItaParams = ItaParams(), scheme="binary",
                  lesion_params: LesionParams = LesionParams(),
                  artifact_params: ArtifactParams = ArtifactParams()) -> dict:
    """Segmentation (when ``mask`` is None), artifacts and ITA of one image as one row.

    Returns
    -------
    dict
        ``ita, ita_raw, group, L, a, b, skin_pixels, mask_source, flags`` (';'-joined str),
        ``method``, ``lesion_fraction`` (lesion share of the image) and one bool per
        :data:`skinaudit.lesion.ARTIFACT_NAMES`.
    """
    wi, lesion, masks = _prepare(image, mask, None, lesion_params, artifact_params)
    res = _ita_from_working(wi, lesion, masks, params, "given" if mask is not None else "estimated")
    row = res.as_dict()
    row["group"] = str(assign_groups([res.ita], scheme)[0])
    row["lesion_fraction"] = float(lesion.mean())
    row.update(artifact_flags(masks, lesion_mask=lesion, params=artifact_params))
    return row


# -- datasets -----------------------------------------------------------------------------
_COLUMNS = ["image_id", "ita", "group", "L", "a", "b", "skin_pixels", "mask_source", "flags", "method", "ita_raw",
            "lesion_fraction", *ARTIFACT_NAMES, "status"]


def _read(image_path, mask_path):
    from .imageio import read_image, read_mask

    image = read_image(image_path)
    mask = read_mask(mask_path, shape=image.shape[:2]) if mask_path else None
    return image, mask


def _mask_problems(mask, mask_path) -> list[str]:
    """Flags for a given mask that cannot be used as it is: empty (no lesion: the lesion is
    estimated instead) or not binary (binarised at half its maximum)."""
    from .imageio import mask_is_binary

    if mask is None:
        return []
    if not mask.any():
        return ["empty_given_mask"]
    if mask.all():
        return ["all_lesion_mask"]
    return [] if mask_is_binary(mask_path) else ["non_binary_mask"]


def _inspect_one(job):
    image_id, image_path, mask_path, kwargs, use_mask, strict = job
    try:
        image, mask = _read(image_path, mask_path if use_mask else None)
        problems = _mask_problems(mask, mask_path)
        if problems and strict:
            raise ImageError(mask_path, {"empty_given_mask": "the lesion mask is empty",
                                         "all_lesion_mask": "the lesion mask covers the whole image (no skin left)",
                                         "non_binary_mask": "the lesion mask is not binary (values other than 0 "
                                                            "and one maximum)"}[problems[0]])
        if "empty_given_mask" in problems:
            mask = None
        row = analyse_image(image, mask, **kwargs)
        if problems:
            row["flags"] = ";".join([*problems, *([row["flags"]] if row.get("flags") else [])])
        row["status"] = "ok"
    except (ImageError, DataError) as exc:
        if strict:
            raise
        row = {"ita": float("nan"), "group": UNKNOWN, "flags": "read_error", "status": f"error: {exc}"}
    row["image_id"] = image_id
    return row


def _run_jobs(jobs, n_jobs, progress, desc):
    if n_jobs is None or n_jobs < 1:
        raise ConfigError(f"the 'n_jobs' parameter must be a positive integer; got {n_jobs!r}")
    if n_jobs == 1 or len(jobs) < 8:
        it = map(_inspect_one if desc == "inspect" else _variants_one, jobs)
        it = it if progress is None else progress(it, total=len(jobs), desc=desc)
        return list(it)
    with ProcessPoolExecutor(max_workers=int(n_jobs)) as ex:
        it = ex.map(_inspect_one if desc == "inspect" else _variants_one, jobs,
                    chunksize=max(1, min(32, len(jobs) // (4 * n_jobs))))
        it = it if progress is None else progress(it, total=len(jobs), desc=desc)
        return list(it)


def inspect_dataset(dataset, *, scheme="binary", params: ItaParams = DATASET_ITA,
                    lesion_params: LesionParams = LesionParams(), artifact_params: ArtifactParams = ArtifactParams(),
                    use_given_masks: bool = True, n_jobs: int = 2, progress=None, strict: bool = False,
                    correct: bool = True) -> pd.DataFrame:
    """Skin tone and artifacts of every image of an :class:`~skinaudit.data.AuditDataset`.

    The dataset's own ``ita`` / ``group`` columns, where filled, override the estimate (the
    estimate stays in ``ita_estimated``; ``method`` becomes ``given``). Images are analysed in
    ``n_jobs`` processes; the output order is the dataset's, whatever ``n_jobs``.

    With ``params.color_correction == 'dataset_reference'`` (the default, :data:`DATASET_ITA`)
    the per-image rows then go through :func:`correct_cast`, grouped by the dataset column
    ``params.cast_group``; ``correct=False`` returns the per-image rows before that step (they
    depend on nothing but their image, so they can be cached and corrected later together).

    Returns
    -------
    DataFrame, one row per image
        ``image_id, ita, group, L, a, b, skin_pixels, mask_source, flags, method, ita_raw,
        lesion_fraction, hair, ruler, ink, dark_corner, gel_bubble, gel_border, patches, status,
        ita_estimated`` (plus ``b_offset, b_corrected, cast_group`` after the cast step). An
        image that cannot be read gives a row with ``status`` = the reason and group
        ``unknown``, unless ``strict`` (then the :class:`ImageError` is raised).
    """
    sch = get_scheme(scheme)
    table = dataset.table
    cast_groups = dataset_cast_groups(dataset, params) if correct else None
    kwargs = dict(params=params, scheme=sch, lesion_params=lesion_params, artifact_params=artifact_params)
    jobs = [(str(r.image_id), r.image_path, r.mask_path, kwargs, use_given_masks, strict)
            for r in table.itertuples(index=False)]
    rows = _run_jobs(jobs, n_jobs, progress, "inspect")
    out = pd.DataFrame(rows)
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
    if correct and params.color_correction == "dataset_reference":
        out = correct_cast(out, params, cast_groups, sch)
    return out


def dataset_cast_groups(dataset, params: ItaParams, ids=None):
    """The acquisition group of each image (``params.cast_group`` column) or None (one group);
    in the order of ``ids`` when given (e.g. a cached table's ``image_id``), else the dataset's."""
    if params.color_correction != "dataset_reference" or params.cast_group is None:
        return None
    table = dataset.table
    if params.cast_group not in table.columns:
        raise ConfigError(f"the cast group column '{params.cast_group}' is not in dataset '{dataset.name}' "
                          f"(columns: {', '.join(map(str, table.columns))})")
    groups = table[params.cast_group]
    if ids is not None:
        groups = pd.Series(groups.to_numpy(dtype=object), index=table["image_id"].to_numpy()).reindex(ids)
    return groups.to_numpy(dtype=object)


#: Per-image ITA estimator variants: name -> (use the given mask, ItaParams). The two mask
#: variants also keep their skin L* and b*, from which :func:`sensitivity_table` derives the
#: ", cast reference" variants of :func:`correct_cast` over the whole table.
_VARIANTS = {
    "estimated mask, no correction": (False, ItaParams()),
    "given mask, no correction": (True, ItaParams()),
    "estimated mask, specular correction": (False, ItaParams(color_correction="specular")),
    "estimated mask, shades of gray": (False, ItaParams(color_correction="shades_of_gray")),
    "border frame (naive baseline)": (False, ItaParams(method="border", statistic="median")),
}
_CAST_VARIANTS = {"estimated mask, cast reference": "estimated mask, no correction",
                  "given mask, cast reference": "given mask, no correction"}


def _variants_one(job):
    image_id, image_path, mask_path, lesion_params, artifact_params, shrink_margin = job
    out = {"image_id": image_id}
    try:
        image, mask = _read(image_path, mask_path)
    except (ImageError, DataError):
        return out
    cache = {}
    for name, (given, p) in _VARIANTS.items():
        if given and mask is None:
            continue
        key = bool(given)
        if key not in cache:
            cache[key] = _prepare(image, mask if given else None, None, lesion_params, artifact_params)
        wi, lesion, masks = cache[key]
        p = replace(p, shrink_margin=shrink_margin)  # the sample policy of the run, for every variant
        res = _ita_from_working(wi, lesion, masks, p, "given" if given else "estimated")
        out[name] = res.ita
        if name in _CAST_VARIANTS.values():
            out[f"{name}::L"], out[f"{name}::b"] = res.L, res.b
    return out


def sensitivity_table(dataset, *, scheme="binary", lesion_params: LesionParams = LesionParams(),
                      artifact_params: ArtifactParams = ArtifactParams(), n_jobs: int = 2,
                      progress=None, params: ItaParams = DATASET_ITA, groups=None,
                      offsets: dict | None = None) -> pd.DataFrame:
    """Group sizes under each estimator variant, so an auditor sees how much grouping depends on method.

    Variants: the estimated lesion mask and the dataset's given mask (only when it has masks),
    each with and without the dataset-level cast correction of :func:`correct_cast`
    (``params.reference_b``, acquisition groups from ``params.cast_group``); the estimated mask
    after specular-highlight correction and after whole-image Shades of Gray; and the naive
    border-frame median; all with ``params.shrink_margin``. The first row is the variant
    ``params`` selects (with the given mask when the dataset has masks, as
    :func:`inspect_dataset`); ``agreement`` is measured against
    it.

    Parameters
    ----------
    dataset : AuditDataset or DataFrame
        An AuditDataset (images are analysed), or a DataFrame with ``image_id`` and one ITA
        column per variant (e.g. a previous result of this function's ``.attrs['per_image']``,
        whose ``<variant>::L`` / ``<variant>::b`` columns feed the cast-reference variants).
    groups : array_like, optional
        Acquisition group per row of a DataFrame ``dataset`` (read from ``params.cast_group``
        for an AuditDataset).
    offsets : dict group -> float, optional
        Cast offsets estimated on the whole dataset (see :func:`correct_cast`), so that the
        cast-reference rows of a sample match the main result; estimated on the sample if None.

    Returns
    -------
    DataFrame
        One row per variant: ``variant, n, <one column per group label>, unknown,
        agreement`` (share of images whose group equals the first variant's). The per-image
        ITA table (before the cast step) is in ``.attrs['per_image']``.
    """
    sch = get_scheme(scheme)
    if isinstance(dataset, pd.DataFrame):
        per = dataset.copy()
    else:
        groups = dataset_cast_groups(dataset, replace(params, color_correction="dataset_reference"))
        jobs = [(str(r.image_id), r.image_path, r.mask_path, lesion_params, artifact_params, params.shrink_margin)
                for r in dataset.table.itertuples(index=False)]
        per = pd.DataFrame(_run_jobs(jobs, n_jobs, progress, "variants"))
    values = {c: per[c].to_numpy(dtype=float) for c in per.columns if c != "image_id" and "::" not in c}
    cast = replace(params, color_correction="dataset_reference")
    for name, source in _CAST_VARIANTS.items():
        if f"{source}::L" in per.columns:
            lab = pd.DataFrame({"L": per[f"{source}::L"], "b": per[f"{source}::b"], "flags": "", "ita": np.nan,
                                "group": UNKNOWN})
            values[name] = correct_cast(lab, cast, groups, sch, offsets)["ita"].to_numpy(dtype=float)
    # first: what inspect_dataset reports (the given mask where the dataset has masks)
    suffix = "cast reference" if params.color_correction == "dataset_reference" else "no correction"
    first = f"given mask, {suffix}" if f"given mask, {suffix}" in values else f"estimated mask, {suffix}"
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
