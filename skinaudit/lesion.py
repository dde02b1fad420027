"""Lesion segmentation and artifact masks for dermoscopy and clinical photos, without weights.

Everything runs on a small working copy of the image (long side :attr:`LesionParams.work_size`
pixels, box-averaged; hair at ``ArtifactParams.hair_size``, rulers at up to ``ruler_size``), which keeps
segmentation + artifacts + ITA of one 600x450 image at about 20-35 ms on one core; masks
returned by the public functions are resized back to the image's full size.

Segmentation (:func:`segment_lesion`)
    1. Hair removal: per-channel grey closing (a "DullRazor"-like fill, Lee et al. 1997);
       pixels whose closing minus original luminance exceeds ``hair_contrast`` take the
       closed value.
    2. Field of view: dark pixels (luminance < ``dark_level``) connected to the image border
       (dermatoscope vignette, black frame) and vivid coloured patches touching the border
       (ISIC stickers, chroma C*ab > ``patch_chroma``) are removed from the analysis.
    3. Blue channel (the channel with the best lesion/skin contrast here, measured in
       ``docs/skintone.md``), Otsu threshold (Otsu 1979) over the field of view.
    4. Shading: the blue channel is divided by a plane fitted to the pixels above that first
       threshold (the skin) and Otsu's threshold is recomputed (isic2017-examples 0.675 ->
       0.713 mean Jaccard, isic-uda1 unchanged, ph2 0.859 -> 0.866); it is then shifted by
       ``skin_bias`` of the way towards the skin median, because human outlines include the
       faint lesion periphery.
    5. The connected component with the largest centre-weighted area (weight squared,
       ``centre_power``), holes filled, closed.
    6. Refinement for small lesions on uneven skin (where step 5 picks a ragged darker skin
       region that holds the lesion): steps 4-5 are repeated inside that region with its own
       Otsu threshold, and the darker core replaces it when its contrast to a 3-px ring
       (median outside minus median inside) exceeds ``refine_contrast`` (2) times the
       region's (isic2017-examples 0.711 -> 0.740, isic-uda1 0.827 and ph2 0.865 unchanged;
       the factor was chosen looking at all three sets).
    7. The closings treat the outside of the image as skin and peel the outer 2 px off a
       lesion cut by the frame; those pixels are put back where they are dark at the
       global threshold (ph2 0.8643 -> 0.8659 mean Jaccard, the other sets +0.0002).

Artifacts (:func:`detect_artifacts`) each give a pixel mask (excluded from the skin sample)
and an image-level flag (:func:`artifact_flags`), with thresholds in :class:`ArtifactParams`:

=============  ======================================================  =====================
name           pixel rule                                              image flag
=============  ======================================================  =====================
hair           black-hat (grey closing ``hair_kernel`` px at            area outside the
               ``hair_size`` px) > ``hair_contrast``, darker than the   lesion (+4 px) >
               local mean by half as much, thin (<= ``hair_max_width``  ``hair_min_frac``
               px), >= ``hair_min_len`` px long, elongated (major axis
               >= ``hair_min_elong`` x minor) or a long network (>=
               ``hair_network_len`` px), not on the outer 2 px (camera
               frame lines), not ruler (Bevan & Atapour-Abarghouei
               2022: 17x17 black-hat at full resolution); plus faint
               strands grown from those pixels through black-hat >
               ``hair_low_contrast`` (thin, elongated, >=
               ``hair_low_min_len`` px)
ruler          at up to ``ruler_size`` px: black-hat (square of 1.5%    any ruler pixel
               of the long side) > ``tick_contrast``; >=
               ``ruler_min_ticks`` short straight parallel marks side
               by side (graduation ticks, anywhere) with two
               consecutive gaps within ``ruler_gap_ratio`` of each
               other (evenly spaced), or (``ruler_edge_pairs``, off)
               2 such marks touching the image border with mean
               black-hat >= ``ruler_pair_contrast`` (a scale cut off
               at the edge), or a straight
               line >= ``ruler_min_len`` x long side whose side marks
               repeat with a 3-16 px period (FFT power ratio >=
               ``ruler_min_comb``: a mm scale joined to its edge)
ink            violet hue 250-290 deg, saturation >= 0.39, value >=    area outside the
               0.24 (Bevan 2022, HSV [125,100,60]-[145,255,255] on     lesion (+2 px) >
               OpenCV's 0-180 scale), or blue marker: b* <             ``ink_min_frac``
               ``ink_max_b``, L* < ``ink_max_L``, hue 230-320 deg
dark_corner    luminance < ``dark_corner_ratio`` x skin median,        darkest corner patch
               connected to the border (plus near-black frame)         < ``dark_corner_ratio``
                                                                       x central skin
gel_bubble     specular highlights and bubble rims: brighter than      area > ``bubble_min_frac``
               the skin by ``bubble_contrast`` and near-white (value >
               ``specular_value``, saturation < ``specular_saturation``),
               or a white top-hat > ``bubble_contrast``
gel_border     bright band connected to the border, ``gel_border_      area > ``gel_border_min_frac``
               contrast`` above the skin median
patches        vivid colour (C*ab > ``patch_chroma``) touching the     area > ``patch_min_frac``
               border, large
=============  ======================================================  =====================

Measured quality (benchmarks/results, docs/skintone.md): dark corner is reliable (isic-uda1 F1
0.95); hair 0.83 (held-out half 0.80); ruler 0.82 (held-out half 0.82); gel bubble and gel
border detection are weak on real images.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from .errors import ConfigError, ImageError

__all__ = [
    "ARTIFACT_NAMES",
    "LesionParams",
    "ArtifactParams",
    "segment_lesion",
    "detect_artifacts",
    "artifact_flags",
    "analyse_masks",
    "WorkingImage",
]

#: Artifact names, in output column order.
ARTIFACT_NAMES = ("hair", "ruler", "ink", "dark_corner", "gel_bubble", "gel_border", "patches")


@dataclass(frozen=True)
class LesionParams:
    """Parameters of :func:`segment_lesion` (intensities on a 0-1 scale).

    Attributes
    ----------
    work_size : int
        Long side, in pixels, of the working copy (default 128). Smaller is faster.
    hair_kernel : int
        Side of the square grey closing used to remove hair at working size (pixels, odd).
    hair_contrast : float
        Closing minus luminance above which a pixel is hair (0-1 scale).
    dark_level : float
        Mean RGB below which a border-connected pixel is vignette / black frame (0-1).
    patch_chroma : float
        CIELAB chroma above which a border-connected region is a coloured patch.
    skin_bias : float
        Fraction of the way from the Otsu threshold to the skin median where the lesion
        threshold is placed (0 = plain Otsu; tuned on isic-uda1, see docs/skintone.md).
    refine_contrast : float
        The darker core of the chosen region (its own Otsu split) replaces the region when
        its contrast to a 3-px ring around it is more than this many times the region's
        (``inf`` = never; 2 chosen looking at all three benchmark sets, see docs/skintone.md).
    centre_power : float
        The component kept is the one with the largest area weighted by the centre weight
        raised to this power (1 = plain centre-weighted area, 0 = largest area). 2 keeps a
        central lesion over a larger off-centre dark region (ink marks, shaded skin); chosen on
        the even half of isic-uda1, see docs/skintone.md.
    """

    work_size: int = 128
    hair_kernel: int = 5
    hair_contrast: float = 0.06
    dark_level: float = 0.12
    patch_chroma: float = 50.0
    skin_bias: float = 0.25
    refine_contrast: float = 2.0
    centre_power: float = 2.0

    def __post_init__(self):
        _check(self.work_size >= 32, "work_size", "must be at least 32", self.work_size)
        _check(self.hair_kernel >= 3 and self.hair_kernel % 2 == 1, "hair_kernel", "must be an odd integer >= 3",
               self.hair_kernel)
        _check(0 < self.hair_contrast < 1, "hair_contrast", "must be in (0, 1)", self.hair_contrast)
        _check(0 <= self.dark_level < 1, "dark_level", "must be in [0, 1)", self.dark_level)
        _check(self.patch_chroma > 0, "patch_chroma", "must be positive", self.patch_chroma)
        _check(-1 < self.skin_bias < 1, "skin_bias", "must be in (-1, 1)", self.skin_bias)
        _check(self.refine_contrast >= 1, "refine_contrast", "must be >= 1 (inf disables the step)",
               self.refine_contrast)
        _check(0 <= self.centre_power <= 10, "centre_power", "must be in [0, 10]", self.centre_power)


@dataclass(frozen=True)
class ArtifactParams:
    """Pixel rules and image-level flag thresholds of :func:`detect_artifacts`.

    Areas (``*_min_frac``) are fractions of the image; intensities are on a 0-1 scale;
    lengths and widths in pixels at ``hair_size`` unless said otherwise. The rules are in the
    module docstring's table. Hair and dark-corner thresholds were set on the even-numbered
    half of isic-uda1/artifacts.csv, the ink rule by eye on pad-ufes20;
    ``benchmarks/bench_artifacts.py`` reports both halves. Rulers are searched at up to
    ``ruler_size`` px (long side); ``ruler_min_len`` is a fraction of that long side;
    ``dark_corner_ratio`` a luminance ratio to the central skin; ``ink_max_b`` / ``ink_max_L``
    CIELAB bounds. Hair components are kept when elongated: major axis >= ``hair_min_elong`` x
    minor axis (pigment specks and pieces of pigment network are not), or at least
    ``hair_network_len`` px long (crossing hairs joined into a network, strongly curved strands).
    Faint strands (hysteresis): components of the weaker black-hat ``hair_low_contrast`` that hold
    a pixel of the ``hair_contrast`` mask and are thin, elongated and >= ``hair_low_min_len`` px
    long are hair too (``hair_low_contrast`` = ``hair_contrast`` disables the step).
    A group of >= ``ruler_min_ticks`` graduation ticks counts only when evenly spaced somewhere:
    two consecutive gaps between its ticks (across them, each >= 2 px at 600 px) within a
    factor ``ruler_gap_ratio`` of each other (parallel pigment-network streaks and hair pieces
    are irregular; ``inf`` disables the test). With ``ruler_edge_pairs`` (off by default), two
    parallel ticks, one of them within 5 px (at 600 px) of the image border, count too when
    their mean black-hat is >= ``ruler_pair_contrast`` (printed scale ticks cut off at an edge
    are darker than hair). Off because the ruler mask is taken out of the hair mask: on
    isic-uda1 it finds 4 more rulers (ruler F1 0.82 -> 0.87) but one image's hair flag then
    rested on its two ruler ticks and is lost (hair F1 0.831 -> 0.827).
    """

    hair_size: int = 256
    hair_kernel: int = 7
    hair_contrast: float = 0.04
    hair_min_len: float = 15.0
    hair_max_width: float = 5.0
    hair_min_frac: float = 0.0005
    hair_min_elong: float = 5.0
    hair_network_len: float = 80.0
    hair_low_contrast: float = 0.03
    hair_low_min_len: float = 25.0
    ruler_size: int = 640
    tick_contrast: float = 0.07
    ruler_min_ticks: int = 3
    ruler_min_len: float = 0.12
    ruler_min_comb: float = 8.0
    ruler_gap_ratio: float = 1.25
    ruler_edge_pairs: bool = False
    ruler_pair_contrast: float = 0.14
    dark_corner_ratio: float = 0.5
    ink_min_frac: float = 0.001
    ink_max_b: float = -15.0
    ink_max_L: float = 65.0
    specular_value: float = 0.92
    specular_saturation: float = 0.12
    bubble_contrast: float = 0.12
    bubble_min_frac: float = 0.002
    gel_border_contrast: float = 0.1
    gel_border_min_frac: float = 0.05
    patch_min_frac: float = 0.005

    def __post_init__(self):
        for name, value in asdict(self).items():
            if name != "ink_max_b":  # a b* bound: negative by nature
                _check(value >= 0, name, "must be non-negative", value)
        _check(self.hair_size >= 32, "hair_size", "must be at least 32", self.hair_size)
        _check(self.hair_kernel >= 3 and self.hair_kernel % 2 == 1, "hair_kernel", "must be an odd integer >= 3",
               self.hair_kernel)
        _check(self.hair_low_contrast <= self.hair_contrast, "hair_low_contrast",
               f"must be <= hair_contrast ({self.hair_contrast}; equal disables the faint-strand step)",
               self.hair_low_contrast)
        _check(self.ruler_gap_ratio >= 1, "ruler_gap_ratio", "must be >= 1 (inf disables the test)",
               self.ruler_gap_ratio)


def _check(ok: bool, name: str, rule: str, value) -> None:
    if not ok:
        raise ConfigError(f"the '{name}' parameter {rule}; got {value!r}")


def _validate_image(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError("<array>", f"expected an (H, W, 3) RGB array; got shape {arr.shape}")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageError("<array>", f"image is {arr.shape[1]}x{arr.shape[0]} px, too small to analyse")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and np.nanmin(arr) >= 0 and np.nanmax(arr) <= 1:
            arr = np.round(arr * 255).astype(np.uint8)
        else:
            raise ImageError("<array>", f"expected a uint8 array (or floats in [0, 1]); got {arr.dtype}")
    return arr


def _resize_mask(mask: np.ndarray, shape: tuple[int, int], *, conservative: bool = False) -> np.ndarray:
    """Resize a bool mask to ``shape`` (H, W); ``conservative`` keeps any touched pixel."""
    if mask.shape == tuple(shape):
        return mask.copy()
    if not mask.any():  # common (no ruler, no hair): skip the resampling
        return np.zeros(tuple(shape), dtype=bool)
    img = Image.fromarray(mask.astype(np.uint8) * 255)
    if conservative:
        out = np.asarray(img.resize((shape[1], shape[0]), Image.BOX)) > 0
    else:
        out = np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR)) > 127
    return out


def _channel_mean(a: np.ndarray) -> np.ndarray:
    """``a.mean(axis=2)`` of an (h, w, 3) array, same values and dtype: numpy's reductions over
    a length-3 last axis are ~10x slower than adding the three planes."""
    return (a[..., 0] + a[..., 1] + a[..., 2]) / a.dtype.type(3)


def _border_labels(labels: np.ndarray) -> np.ndarray:
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    u = np.unique(edge)
    return u[u > 0]


class WorkingImage:
    """The working copy of one image and the intermediate maps every stage shares.

    Built once per image by :func:`analyse_masks`; attributes are ``(h, w)`` arrays at working
    size: ``rgb`` (float32 0-1, hair-filled), ``raw`` (float32 0-1, box-averaged), ``sample``
    (float32 0-1, nearest pixels, for colour statistics), ``lab`` (CIELAB of ``raw``),
    ``raw_lum`` (channel mean of ``raw``), ``hair_response``, ``field`` (bool field of view).
    """

    def __init__(self, image: np.ndarray, params: LesionParams):
        from skimage import color

        image = _validate_image(image)
        self.shape = image.shape[:2]
        h, w = self.shape
        s = min(1.0, params.work_size / max(h, w))
        hs, ws = max(8, round(h * s)), max(8, round(w * s))
        self.scale = s
        small = image if (hs, ws) == (h, w) else np.asarray(Image.fromarray(image).resize((ws, hs), Image.BOX))
        raw = small.astype(np.float32) / 255.0
        self.raw = raw
        # actual pixels (no averaging) on the working grid, for colour statistics: averaging
        # sRGB values biases L* of textured skin (0.3 L* units measured on phantoms)
        nearest = image if (hs, ws) == (h, w) else np.asarray(Image.fromarray(image).resize((ws, hs), Image.NEAREST))
        self.sample = nearest.astype(np.float32) / 255.0
        lum = _channel_mean(raw)
        self.raw_lum = lum
        k = params.hair_kernel
        closed = _closing(raw, k)  # per channel (same values as scipy's grey_closing, faster)
        self.hair_response = _channel_mean(closed) - lum
        hairy = self.hair_response > params.hair_contrast
        self.hair_pixels = hairy
        self.rgb = np.where(hairy[..., None], closed, raw)
        self.lab = color.rgb2lab(raw)  # raw, not hair-filled: thin ink lines would be filled
        lum_f = _channel_mean(self.rgb)
        self.lum = lum_f
        dark = lum_f < params.dark_level
        lab_d, _ = ndi.label(dark)
        self.dark_corner = np.isin(lab_d, _border_labels(lab_d))
        self.image = image
        L, a, b = self.lab[..., 0], self.lab[..., 1], self.lab[..., 2]
        chroma = np.hypot(a, b)
        hue = np.degrees(np.arctan2(b, a))
        lesion_like = (hue > -10) & (hue < 50) & (L < 60)
        vivid = (chroma > params.patch_chroma) & ~lesion_like
        vivid |= (chroma > 0.7 * params.patch_chroma) & ((hue > 100) | (hue < -60))  # green, cyan, blue
        lab_v, n = ndi.label(ndi.binary_opening(vivid))
        patches = np.zeros((hs, ws), dtype=bool)
        if n:
            sizes = ndi.sum_labels(np.ones((hs, ws)), lab_v, np.arange(1, n + 1))
            big = np.arange(1, n + 1)[sizes > 0.005 * hs * ws]
            patches = np.isin(lab_v, big[np.isin(big, _border_labels(lab_v))])
        self.patches = patches
        field = ~ndi.binary_dilation(self.dark_corner | patches, iterations=2)
        if field.sum() < 0.2 * hs * ws:  # almost all dark: analyse everything rather than nothing
            field = np.ones((hs, ws), dtype=bool)
        self.field = field
        yy, xx = np.mgrid[0:hs, 0:ws]
        self.centre_weight = np.clip(1.2 - np.hypot((yy - hs / 2) / (hs / 2), (xx - ws / 2) / (ws / 2)), 0.05, None)


def _segment_small(wi: WorkingImage, params: LesionParams) -> np.ndarray:
    from skimage.filters import threshold_otsu

    s = wi.rgb[..., 2]
    vals = s[wi.field]
    h, w = s.shape
    if vals.size < 16 or np.ptp(vals) == 0:
        return np.zeros((h, w), dtype=bool)
    t = threshold_otsu(vals)
    # shading: divide by a plane fitted to the pixels above the first threshold (skin), so a
    # brightness gradient across the field does not split the skin into "light" and "lesion"
    yy, xx = np.mgrid[0:h, 0:w]
    design = np.stack([np.ones((h, w)), xx / w - 0.5, yy / h - 0.5], axis=-1)
    fit = wi.field & (s > t)
    if fit.sum() >= 16:
        x = design[fit]
        coef = np.linalg.solve(x.T @ x, x.T @ s[fit])  # least squares by the normal equations (3x3)
        plane = design @ coef
        level = float(np.median(plane[wi.field]))
        if level > 0 and plane[wi.field].min() > 0:
            s = s / plane * level
            vals = s[wi.field]
            t = threshold_otsu(vals)
    # a sharper preference for the centre than the plain weight: a large dark region off the
    # centre (ink mark, shaded skin) no longer outweighs a central lesion
    weight = wi.centre_weight if params.centre_power == 1 else wi.centre_weight ** params.centre_power
    m = _dark_component(s, wi.field, t, params.skin_bias, weight)
    if m is None:
        return np.zeros((h, w), dtype=bool)
    # a small lesion on uneven skin: the global threshold can cut the skin itself into a dark
    # and a light part, and the (ragged) dark part holding the lesion wins. Split the chosen
    # region once more with its own Otsu threshold; keep the darker core when it stands out
    # from its ring ``refine_contrast`` times more than the whole region does (computed on the
    # region's bounding box + 4 px, which gives the same masks as the whole image)
    if m.sum() >= 32 and np.isfinite(params.refine_contrast):
        ys, xs = np.nonzero(m)
        box = (slice(max(ys.min() - 4, 0), ys.max() + 5), slice(max(xs.min() - 4, 0), xs.max() + 5))
        sb, mb, fb = s[box], m[box], wi.field[box]
        inner = sb[mb]
        if np.ptp(inner) > 0:
            core = _dark_component(sb, mb, threshold_otsu(inner), params.skin_bias, weight[box])
            if core is not None and (_ring_contrast(sb, core, fb)
                                     > params.refine_contrast * _ring_contrast(sb, mb, fb)):
                m = np.zeros_like(m)
                m[box] = core
    # the closing in _dark_component (zero outside the image) peels the 2 outer pixels off a
    # lesion that runs off the frame; give back those that are dark at the global threshold
    if (m & _frame(m.shape, 4)).any():
        m = _restore_frame(m, (s < _biased_threshold(vals, t, params.skin_bias)) & wi.field)
    return m


def _biased_threshold(vals: np.ndarray, t: float, skin_bias: float) -> float:
    """``t`` shifted ``skin_bias`` of the way to the median of the ``vals`` above it."""
    skin = vals[vals > t]
    return t + skin_bias * (float(np.median(skin)) - t) if skin.size else t


def _frame(shape: tuple[int, int], width: int) -> np.ndarray:
    """Bool mask of the outer ``width`` px of an image of ``shape``."""
    f = np.zeros(shape, dtype=bool)
    f[:width], f[-width:], f[:, :width], f[:, -width:] = True, True, True, True
    return f


def _restore_frame(m: np.ndarray, dark: np.ndarray, width: int = 2) -> np.ndarray:
    """``m`` plus the ``dark`` pixels on the outer ``width`` px of the image within ``width`` px
    of ``m`` (a closing with a zero border removes them from a lesion cut by the frame)."""
    return m | (_frame(m.shape, width) & dark & ndi.binary_dilation(m, iterations=width))


def _dark_component(s: np.ndarray, region: np.ndarray, t: float, skin_bias: float, weight: np.ndarray):
    """Pixels of ``region`` below ``t`` shifted ``skin_bias`` of the way to the median above it:
    the component with the largest centre-weighted area, closed and filled (None if none)."""
    t = _biased_threshold(s[region], t, skin_bias)
    labels, n = ndi.label(ndi.binary_opening((s < t) & region))
    if n == 0:
        return None
    idx = np.arange(1, n + 1)
    score = ndi.sum_labels(weight, labels, idx)
    m = labels == idx[int(np.argmax(score))]
    return _fill_holes(ndi.binary_closing(m, iterations=2, border_value=0))


def _fill_holes(m: np.ndarray) -> np.ndarray:
    """``ndi.binary_fill_holes`` (4-connected background) by labelling, several times faster."""
    labels, n = ndi.label(~m)
    if n == 0:
        return m
    return m | ((labels > 0) & ~np.isin(labels, _border_labels(labels)))


def _ring_contrast(s: np.ndarray, m: np.ndarray, field: np.ndarray, width: int = 3) -> float:
    """Median of ``s`` on a ``width``-px ring around ``m`` (inside ``field``) minus its median in ``m``."""
    ring = ndi.binary_dilation(m, iterations=width) & ~m & field
    if not ring.any() or not m.any():
        return 0.0
    return float(np.median(s[ring]) - np.median(s[m]))


def segment_lesion(image, *, params: LesionParams = LesionParams()) -> np.ndarray:
    """Segment the lesion of a dermoscopy image (classical, no trained weights).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        sRGB image.
    params : LesionParams
        Segmentation parameters (see the module docstring for the algorithm).

    Returns
    -------
    ndarray, shape (H, W), bool
        True = lesion. All False when no lesion-like region is found.
    """
    wi = WorkingImage(image, params)
    return _resize_mask(_segment_small(wi, params), wi.shape)


def _hair_ruler_small(wi: WorkingImage, ap: ArtifactParams, lesion: np.ndarray):
    """Hair masks from a black-hat at ``ap.hair_size`` (thin dark curvilinear marks), ruler
    masks from :func:`_ruler_full`.

    Components of ``closing - luminance > hair_contrast`` (also darker than the local mean
    by half as much, away from bright bubble rims, not on the outermost 2 px, where some
    cameras draw a thin frame) are kept when thin (2 x largest distance to the background <=
    ``hair_max_width`` px), at least ``hair_min_len`` px long, elongated and not ruler marks
    (:func:`_hair_strands`); faint strands grown from them at ``hair_low_contrast`` (hysteresis)
    are added. Returns masks at working size.
    """
    h, w = wi.shape
    s = min(1.0, ap.hair_size / max(h, w))
    hs, ws = max(8, round(h * s)), max(8, round(w * s))
    img = wi.image if (hs, ws) == (h, w) else np.asarray(Image.fromarray(wi.image).resize((ws, hs), Image.BOX))
    g = (img[..., 0].astype(np.float32) + img[..., 1] + img[..., 2]) * np.float32(1 / 765)  # 10x .mean(axis=2)
    k = ap.hair_kernel
    blackhat = _blackhat(g, k)
    # dark corner grown by about k px (a square of the area of a radius-k diamond)
    dark_corner = _resize_mask(wi.dark_corner_rel, (hs, ws))
    dark_corner = _square(dark_corner, k + 4, np.maximum)
    # hair is darker than its neighbourhood's mean; this keeps the insides of bright gel-bubble
    # rims (raised by the closing) out
    local = ndi.uniform_filter(g, size=k)
    darker = g < local - ap.hair_contrast / 2
    # ... and not enclosed by a bright rim (gel bubbles): nothing much brighter than the median
    # nearby (the median of the field of view: a black vignette would lower it and make all the
    # skin a "rim")
    ref = g[~dark_corner] if (~dark_corner).any() else g
    rim = _square(g, k, np.maximum) > float(np.median(ref)) + 2 * ap.bubble_contrast
    darker &= ~rim
    inner = ~_frame((hs, ws), 2)  # not the outermost 2 px (thin camera frame lines)
    thin = (blackhat > ap.hair_contrast) & darker & ~dark_corner & inner
    small = wi.raw.shape[:2]
    ruler = _resize_mask(_ruler_full(wi.image, ap), small, conservative=True)
    keep = _hair_strands(thin, ap, ap.hair_min_len)
    if ap.hair_low_contrast < ap.hair_contrast:
        # faint strands (hysteresis): components at the lower contrast that hold a pixel above
        # hair_contrast, are thin, elongated and at least hair_low_min_len px long
        low = (blackhat > ap.hair_low_contrast) & (g < local - ap.hair_low_contrast / 2) & ~rim & ~dark_corner & inner
        keep |= _hair_strands(low, ap, ap.hair_low_min_len, seeds=thin)
    if not keep.any():
        return np.zeros(small, dtype=bool), ruler
    hair = _resize_mask(keep, small, conservative=True) & ~ruler
    return hair, ruler


def _hair_strands(thin: np.ndarray, ap: ArtifactParams, min_len: float, seeds=None) -> np.ndarray:
    """Pixels of the components of ``thin`` (8-connected) that are hair strands: thin (2 x the
    largest distance to the background <= ``hair_max_width``), at least ``min_len`` px long
    (major axis), elongated (major >= ``hair_min_elong`` x minor axis, or major >=
    ``hair_network_len``) and, when ``seeds`` is given, holding a seed pixel."""
    labels, n = ndi.label(thin, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros(thin.shape, dtype=bool)
    comp = _components(labels, n)
    area, major, minor = comp[0], comp[3], comp[4]
    # thick: a pixel farther than hair_max_width / 2 from the background survives an erosion by
    # the disk of that radius (same result as the distance transform, several times faster; a
    # crossing hair network stays thin)
    rad = ap.hair_max_width / 2
    yy, xx = np.mgrid[-int(rad):int(rad) + 1, -int(rad):int(rad) + 1]
    disk = (yy ** 2 + xx ** 2) <= rad ** 2
    thick = np.zeros(n + 1, dtype=bool)
    thick[labels[ndi.binary_erosion(thin, structure=disk, border_value=1)]] = True
    # elongated (pigment specks and network meshes are not), or long enough to be a network of
    # crossing hairs
    line = (major >= ap.hair_min_elong * np.maximum(minor, 0.5)) | (major >= ap.hair_network_len)
    ok = (area >= 3) & ~thick & (major >= min_len) & line
    if seeds is not None:
        seeded = np.zeros(n + 1, dtype=bool)
        seeded[labels[seeds]] = True
        ok &= seeded
    ok[0] = False
    return ok[labels]


def _running(a: np.ndarray, k: int, axis: int, op) -> np.ndarray:
    """Running ``op`` (np.maximum / np.minimum) over a centred window of ``k`` pixels along
    ``axis``, edges replicated: log2(k) whole-array operations (van Herk-style doubling), several
    times faster than scipy's filters on these image sizes."""
    r = k // 2
    a = np.moveaxis(a, axis, 0)
    cur = np.concatenate([np.repeat(a[:1], r, 0), a, np.repeat(a[-1:], k - 1 - r, 0)])
    w = 1
    while 2 * w <= k:
        cur = op(cur[:-w], cur[w:])
        w *= 2
    if w < k:
        cur = op(cur[:-(k - w)], cur[k - w:])
    return np.moveaxis(cur, 0, axis)


def _square(a: np.ndarray, k: int, op) -> np.ndarray:
    """Grey dilation (``np.maximum``) or erosion (``np.minimum``) with a ``k`` x ``k`` square over
    the first two axes (per channel for an (h, w, c) array), edges replicated."""
    return _running(_running(a, k, 0, op), k, 1, op)


def _closing(a: np.ndarray, k: int) -> np.ndarray:
    """Grey closing with a ``k`` x ``k`` square."""
    return _square(_square(a, k, np.maximum), k, np.minimum)


def _blackhat(g: np.ndarray, k: int) -> np.ndarray:
    """Grey closing with a ``k`` x ``k`` square (``k`` odd) minus ``g`` (same dtype; >= 0)."""
    return _closing(g, k) - g


def _components(labels: np.ndarray, n: int):
    """Area, centroid (y, x), major and minor axis (4 sqrt of the eigenvalues of the coordinate
    covariance, as skimage's regionprops, vectorised: ~10x faster here) and major-axis angle
    (radians from the x axis) of labels 0..n."""
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs]
    area = np.bincount(lab, minlength=n + 1).astype(float)
    safe = np.maximum(area, 1)
    my, mx = np.bincount(lab, ys, n + 1) / safe, np.bincount(lab, xs, n + 1) / safe
    syy = np.bincount(lab, ys * ys.astype(float), n + 1) / safe - my ** 2
    sxx = np.bincount(lab, xs * xs.astype(float), n + 1) / safe - mx ** 2
    sxy = np.bincount(lab, ys * xs.astype(float), n + 1) / safe - my * mx
    half_tr, det_term = (syy + sxx) / 2, np.sqrt(np.maximum(((syy - sxx) / 2) ** 2 + sxy ** 2, 0))
    major = 4 * np.sqrt(np.maximum(half_tr + det_term, 0))
    minor = 4 * np.sqrt(np.maximum(half_tr - det_term, 0))
    theta = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    return area, my, mx, major, minor, theta, ys, xs, lab


def _regular_ticks(my, mx, length, theta, min_ticks: int, max_gap: float, gap_ratio: float = np.inf,
                   min_gap: float = 2.0, edge=None, contrast=None, pair_contrast: float = np.inf) -> np.ndarray:
    """Indices of the marks that belong to a ruler graduation: groups of >= ``min_ticks`` short
    straight marks, each with a neighbour of the same orientation (within 12 degrees) beside
    it (offset along the mark < half its length, across it 2..``max_gap`` px), both ways.

    A group of 3 or more marks is kept only when evenly spaced somewhere: sorted by position
    across the group's mean orientation, two consecutive gaps (both >= ``min_gap`` px) within a
    factor ``gap_ratio`` of each other (``inf``: no test). A group of exactly 2 marks is also kept
    when one of them is on ``edge`` (bool per mark) and their mean ``contrast`` is >=
    ``pair_contrast`` (ticks of a scale cut off at the image border)."""
    if len(my) < min(min_ticks, 2 if edge is not None else min_ticks):
        return np.zeros(0, dtype=int)
    u0, u1 = np.cos(theta), np.sin(theta)
    dx, dy = mx[None, :] - mx[:, None], my[None, :] - my[:, None]
    along = np.abs(dx * u0[:, None] + dy * u1[:, None])
    across = np.abs(dy * u0[:, None] - dx * u1[:, None])
    dth = np.abs((theta[:, None] - theta[None, :] + np.pi / 2) % np.pi - np.pi / 2)
    adj = (dth < np.radians(12)) & (along < 0.5 * np.maximum(length[:, None], length[None, :]))
    adj &= (across > 2) & (across < max_gap)
    adj &= adj.T
    lab = _component_labels(adj)
    size = np.bincount(lab, minlength=len(lab))
    keep = np.zeros(len(lab), dtype=bool)
    for c in np.nonzero(size >= 2)[0]:
        m = np.nonzero(lab == c)[0]
        if len(m) >= max(min_ticks, 3) and np.isfinite(gap_ratio):
            # positions across the group's mean orientation (angles doubled: 0 and pi agree)
            z = np.exp(2j * theta[m]).sum()
            a = np.angle(z) / 2
            gaps = np.diff(np.sort(my[m] * np.cos(a) - mx[m] * np.sin(a)))
            lo, hi = np.minimum(gaps[:-1], gaps[1:]), np.maximum(gaps[:-1], gaps[1:])
            keep[m] = bool(((hi <= gap_ratio * lo) & (lo >= min_gap)).any())
        elif len(m) >= min_ticks:
            keep[m] = True
        elif len(m) == 2 and edge is not None and edge[m].any() and contrast[m].mean() >= pair_contrast:
            keep[m] = True
    return np.nonzero(keep)[0]


def _component_labels(adj: np.ndarray, small: int = 64) -> np.ndarray:
    """Connected component of each node of a symmetric bool adjacency matrix, labelled by its
    lowest node index. Up to ``small`` nodes (most images' tick candidates) by boolean squaring
    of the reachability matrix, which skips scipy.sparse's per-call overhead; larger graphs by
    csgraph."""
    n = len(adj)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n <= small:
        reach = adj | np.eye(n, dtype=bool)
        while True:
            step = (reach.astype(np.float32) @ reach.astype(np.float32)) > 0
            if np.array_equal(step, reach):
                return reach.argmax(axis=1)
            reach = step
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    _, cl = connected_components(csr_matrix(adj), directed=False)
    first = np.full(cl.max() + 1, n)
    np.minimum.at(first, cl, np.arange(n))
    return first[cl]


def _comb_score(a: np.ndarray, p: np.ndarray, off: float, periods: tuple[float, float]) -> float:
    """Periodicity of the marks hanging off a straight line (a ruler's mm graduation joined to
    its edge): pixels more than ``off`` px from the line's median offset, counted per px along
    it; the strongest power at a period in ``periods`` over the mean power."""
    side = np.abs(p - np.median(p)) > off
    if side.sum() < 10:
        return 0.0
    hist = np.bincount((a[side] - a.min()).astype(int), minlength=int(np.ptp(a)) + 1).astype(float)
    spec = np.abs(np.fft.rfft(hist - hist.mean())) ** 2
    freq = np.fft.rfftfreq(hist.size)
    band = (freq >= 1 / periods[1]) & (freq <= 1 / periods[0])
    if not band.any() or spec[1:].mean() <= 0:
        return 0.0
    return float(spec[band].max() / spec[1:].mean())


def _ruler_full(image: np.ndarray, ap: ArtifactParams) -> np.ndarray:
    """Ruler marks at up to ``ap.ruler_size`` px (long side): thin dark marks (black-hat with a
    square of 1.5% of the long side > ``tick_contrast``) that are either graduation ticks
    (:func:`_regular_ticks`: evenly spaced groups, or dark pairs at the image border) or a
    straight line >= ``ruler_min_len`` x the long side carrying periodic marks (:func:`_comb_score` >= ``ruler_min_comb``). Lengths scale with the long
    side (600 px reference). Returns a bool mask at that size."""
    h, w = image.shape[:2]
    s = min(1.0, ap.ruler_size / max(h, w))
    hs, ws = max(8, round(h * s)), max(8, round(w * s))
    # the rounded channel mean of the full image (resizing the grey, not RGB: 3x less work)
    g = ((image[..., 0].astype(np.uint16) + image[..., 1] + image[..., 2] + 1) // 3).astype(np.uint8)
    g = g if (hs, ws) == (h, w) else np.asarray(Image.fromarray(g).resize((ws, hs), Image.BOX))
    long_side = max(hs, ws)
    r = long_side / 600.0
    k = max(3, round(0.0075 * long_side) * 2 + 1)
    bh = _blackhat(g, k)
    thin = bh > ap.tick_contrast * 255
    labels, n = ndi.label(thin, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros((hs, ws), dtype=bool)
    area, my, mx, major, minor, theta, ys, xs, lab = _components(labels, n)
    keep = np.zeros(n + 1, dtype=bool)
    tick = (area >= max(3.0, 6 * r)) & (major >= 8 * r) & (major <= 80 * r) & (major >= 4 * minor)
    tick &= area <= max(2.0, 5 * r) * major
    tick[0] = False
    idx = np.nonzero(tick)[0]
    edge = contrast = None
    if ap.ruler_edge_pairs and idx.size:
        # marks within 5 px (at 600 px) of the image border, and their mean black-hat (0-1)
        edge = np.zeros(n + 1, dtype=bool)
        edge[labels[_frame((hs, ws), int(5 * r) + 1)]] = True
        contrast = np.bincount(lab, bh[ys, xs], n + 1) / (255 * np.maximum(area, 1))
        edge, contrast = edge[idx], contrast[idx]
    keep[idx[_regular_ticks(my[idx], mx[idx], major[idx], theta[idx], ap.ruler_min_ticks, 50 * r,
                            ap.ruler_gap_ratio, 2 * r, edge, contrast, ap.ruler_pair_contrast)]] = True
    lines = np.nonzero((major >= ap.ruler_min_len * long_side) & (minor <= 0.2 * major))[0]
    lines = lines[lines > 0]
    if lines.size:
        order = np.argsort(lab, kind="stable")
        starts = np.searchsorted(lab[order], lines)
        ends = np.searchsorted(lab[order], lines, side="right")
        for c, a0, a1 in zip(lines, starts, ends):
            sel = order[a0:a1]
            yy, xx = ys[sel] - my[c], xs[sel] - mx[c]
            along = xx * np.cos(theta[c]) + yy * np.sin(theta[c])
            across = yy * np.cos(theta[c]) - xx * np.sin(theta[c])
            if _comb_score(along, across, max(1.0, 2 * r), (max(2.5, 3 * r), 16 * r)) >= ap.ruler_min_comb:
                keep[c] = True
    if not keep.any():  # no ruler (most images): skip indexing the full-size label image
        return np.zeros((hs, ws), dtype=bool)
    return keep[labels]


def _corner_ratio(lum: np.ndarray, lesion: np.ndarray) -> float:
    """Darkest corner patch (10% of the short side) median luminance / central skin median."""
    h, w = lum.shape
    c = max(2, int(0.1 * min(h, w)))
    corners = [lum[:c, :c], lum[:c, -c:], lum[-c:, :c], lum[-c:, -c:]]
    centre = (slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    skin = ~lesion[centre]
    ref = float(np.median(lum[centre][skin])) if skin.any() else float(np.median(lum))
    if ref <= 0:
        return float("nan")
    return float(min(np.median(x) for x in corners) / ref)


def analyse_masks(image, *, lesion_mask=None, params: LesionParams = LesionParams(),
                  artifact_params: ArtifactParams = ArtifactParams()):
    """Working-size lesion and artifact masks of one image (shared by segmentation and ITA).

    Returns
    -------
    wi : WorkingImage
    lesion : ndarray (h, w) bool, at working size
    masks : dict name -> ndarray (h, w) bool, at working size, one per :data:`ARTIFACT_NAMES`
    """
    wi = WorkingImage(image, params)
    if lesion_mask is None:
        lesion = _segment_small(wi, params)
    else:
        lm = np.asarray(lesion_mask).astype(bool)
        if lm.shape != tuple(wi.shape):
            raise ImageError("<mask>", f"lesion mask shape {lm.shape} differs from the image's {tuple(wi.shape)}")
        lesion = _resize_mask(lm, wi.rgb.shape[:2], conservative=True)
    masks = _artifacts_small(wi, params, artifact_params, lesion)
    return wi, lesion, masks


def _hsv(rgb: np.ndarray):
    """HSV value, saturation (0-1) and hue (degrees) of an (h, w, 3) 0-1 array (as skimage's
    rgb2hsv, without its overhead)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b)  # not .max(axis=2): ~20x slower over a length-3 axis
    mn = np.minimum(np.minimum(r, g), b)
    delta = mx - mn
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1), 0)
    d = np.where(delta > 0, delta, 1)
    hue = np.where(mx == r, (g - b) / d, np.where(mx == g, 2 + (b - r) / d, 4 + (r - g) / d))
    hue = np.where(delta > 0, (hue * 60.0) % 360.0, 0.0)
    return mx, sat, hue


def _artifacts_small(wi: WorkingImage, params: LesionParams, ap: ArtifactParams, lesion: np.ndarray) -> dict:

    h, w = wi.lum.shape
    lum = wi.raw_lum
    # dark corner: pixels darker than dark_corner_ratio x the skin median, connected to the
    # border; the image flag uses the darkest corner patch's ratio (stored as a 0-size hint)
    ratio = _corner_ratio(lum, lesion)
    skin_level = float(np.median(lum[~lesion])) if (~lesion).any() else float(np.median(lum))
    lab_d, _ = ndi.label(lum < ap.dark_corner_ratio * skin_level)
    dark_rel = np.isin(lab_d, _border_labels(lab_d)) | wi.dark_corner
    if not ratio < ap.dark_corner_ratio:
        dark_rel = wi.dark_corner & np.zeros_like(wi.dark_corner)
    wi.dark_corner_rel = dark_rel
    hair, ruler = _hair_ruler_small(wi, ap, lesion)
    value, sat, hue_deg = _hsv(wi.raw)
    ink = (hue_deg >= 250) & (hue_deg <= 290) & (sat >= 100 / 255) & (value >= 60 / 255)
    # blue surgical marker (most PAD-UFES-20 marks): dark, strongly blue in CIELAB
    lab = wi.lab
    lab_hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360
    ink |= (lab[..., 2] < ap.ink_max_b) & (lab[..., 0] < ap.ink_max_L) & (lab_hue >= 230) & (lab_hue <= 320)
    ink = ndi.binary_opening(ink) & ~wi.dark_corner
    brighter = lum > skin_level + ap.bubble_contrast
    specular = (value > ap.specular_value) & (sat < ap.specular_saturation) & brighter
    tophat = lum - _square(_square(lum, 5, np.minimum), 5, np.maximum)  # white top-hat, 5x5
    bubble = (specular | ((tophat > ap.bubble_contrast) & brighter)) & wi.field
    # gel border: a bright smooth band along the border, clearly brighter than the skin
    skin_ref = wi.field & ~lesion & ~bubble
    gel_border = np.zeros((h, w), dtype=bool)
    if skin_ref.sum() > 16:
        med = float(np.median(lum[skin_ref]))
        bright = ndi.binary_opening(lum > med + ap.gel_border_contrast, iterations=2) & wi.field & ~lesion
        lab_b, n = ndi.label(bright)
        if n:
            gel_border = np.isin(lab_b, _border_labels(lab_b))
    return {"hair": hair, "ruler": ruler, "ink": ink, "dark_corner": dark_rel, "gel_bubble": bubble,
            "gel_border": gel_border, "patches": wi.patches}


def artifact_flags(masks: dict, *, lesion_mask=None, params: ArtifactParams = ArtifactParams()) -> dict:
    """Image-level flags from artifact masks (all of one resolution): name -> bool.

    A flag is raised when the mask covers more than its ``*_min_frac`` of the image; the
    ruler and dark-corner flags by any pixel of their mask. Hair is counted outside the
    lesion (dilated by 4 px) and ink outside it (dilated by 2 px) when ``lesion_mask`` is
    given, because pigment network answers the black-hat and blue-grey structures the ink rule.
    """
    masks = dict(masks)
    if lesion_mask is not None:
        lesion_mask = np.asarray(lesion_mask, dtype=bool)
        if "hair" in masks:
            masks["hair"] = masks["hair"] & ~ndi.binary_dilation(lesion_mask, iterations=4)
        if "ink" in masks:  # blue-grey lesion structure is not ink
            masks["ink"] = masks["ink"] & ~ndi.binary_dilation(lesion_mask, iterations=2)
    frac = {k: float(np.mean(v)) if np.size(v) else 0.0 for k, v in masks.items()}
    return {
        "hair": frac.get("hair", 0) > params.hair_min_frac,
        "ruler": frac.get("ruler", 0) > 0,
        "ink": frac.get("ink", 0) > params.ink_min_frac,
        "dark_corner": frac.get("dark_corner", 0) > 0,
        "gel_bubble": frac.get("gel_bubble", 0) > params.bubble_min_frac,
        "gel_border": frac.get("gel_border", 0) > params.gel_border_min_frac,
        "patches": frac.get("patches", 0) > params.patch_min_frac,
    }


def detect_artifacts(image, *, lesion_mask=None, params: LesionParams = LesionParams(),
                     artifact_params: ArtifactParams = ArtifactParams()) -> dict:
    """Pixel masks of the artifacts of one image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        sRGB image.
    lesion_mask : ndarray, shape (H, W), bool, optional
        The lesion (estimated with :func:`segment_lesion` when omitted); used to keep lesion
        structure out of the gel-border rule.
    params, artifact_params : LesionParams, ArtifactParams

    Returns
    -------
    dict
        ``name -> (H, W) bool`` for every name in :data:`ARTIFACT_NAMES` (all-False masks for
        absent artifacts). Image-level flags: :func:`artifact_flags` on this dict.
    """
    wi, _lesion, masks = analyse_masks(image, lesion_mask=lesion_mask, params=params,
                                       artifact_params=artifact_params)
    return {k: _resize_mask(v, wi.shape) for k, v in masks.items()}
