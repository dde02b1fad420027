"""Counterfactual skin tone: recolour the skin around a lesion, keep the lesion, re-score.

An observational comparison of skin-tone groups depends on the grouping being right. This
module intervenes instead: it keeps every lesion pixel and moves only the colour of the
surrounding skin along the ITA scale, then asks whether the model's score moves
(:func:`counterfactual_test`, in :mod:`skinaudit.counterfactual_stats`).

Method (:func:`recolour_skin`)
------------------------------
1. **Which pixels move.** Every pixel outside the lesion, a thin kept ring round it
   (``keep_margin``: 1% of the long side with a given mask, 3% with an estimated one, which
   may miss the lesion's rim) and the artifacts of :func:`skinaudit.lesion.detect_artifacts`
   (enlarged to full size keeping every touched pixel). The lesion, the ring and hair, ruler,
   ink, vignette, bubbles and stickers are copied bit-identically. The skin between the ring
   and the ITA estimator's wider safety margin is recoloured too: keeping it would leave a
   halo of the original skin colour round every lesion, which a model could still read.
2. **The skin centre** (L*m, b*m) is the estimator's own statistic, on its own skin sample
   (:func:`skinaudit.skintone.skin_mask`: beyond the safety margin, without artifacts) (``ItaParams.statistic``,
   default the trimmed median) of the skin pixels' CIELAB (skimage ``rgb2lab``, D65).
3. **The target colour.** ITA is the angle of the point (b*, L* - 50) around (0, 50) in the
   b*-L* plane. The target centre lies on the circle of radius ``r`` at the target angle:
   ``L*t = 50 + r sin(ITA)``, ``b*t = r cos(ITA)``, with ``r`` = 25 by default (``radius``;
   None keeps the image's own distance ``hypot(L*m - 50, b*m)``, at least 10), so every
   image gets the same skin centre at a level: L* 71.7 / b* 12.5 at 60 degrees, 67.7 / 17.7
   at 45, 61.7 / 22.1 at 28, 54.3 / 24.6 at 10 and 41.4 / 23.5 at -20 (typical light
   dermoscopy skin, L* 65 / b* 16, has r = 22; the circle keeps b* in the 12-25 range of
   measured skin). a* is left as it is.
4. **Texture.** Each pixel keeps its deviation from the skin centre: ``L*' = L*t + k (L* - L*m)``
   with ``k = L*t / L*m`` (lightness variation scales with lightness, as a reflectance
   change would), ``b*' = b*t + (b* - b*m)``, ``a*' = a*``. Shading, hair-free texture and
   vignetting inside the skin therefore move with the mean (a constant offset of the local
   skin mean). Because the trimmed median is equivariant under this map, the measured centre
   lands on the target up to the blend band (part of the sample), sRGB gamut clipping and
   8-bit rounding; ``refine`` passes re-measure the recoloured skin and move the aim by the
   remaining error (Newton steps with the sample's mean blend weight as the gain), keeping
   the closest pass.
5. **Blend.** The recolouring weight rises linearly from 0 at the kept ring's outer edge to 1
   ``band`` x the long side further out (default 2%; shorter where the skin is a thin ring, so
   that 70% of the estimator's skin sample is moved fully) (``lab = lab0 + w (lab' - lab0)``),
   so no hard seam circles the lesion. Artifact edges are not blended (a hair stays a hair). A
   skin sample with L* < ``min_lightness`` (a black frame taken for skin) or too few pixels is
   refused.

Limits (stated in docs/counterfactual.md and the report)
--------------------------------------------------------
This is a colour shift of the skin, not darker skin. Under a dermatoscope darker skin also
differs in melanin distribution (a more visible pigment network on the skin, different
contrast of the lesion to its surroundings, lesions that themselves look different in
darker skin), in light scattering and in the camera's exposure. None of that is simulated;
the lesion (and the rim of skin a human mask includes) keeps the colours it had on the
original (usually light) skin. The
test therefore measures the model's dependence on the *colour of the surrounding skin*, one
route by which skin tone can reach a score -- a `not_detected` verdict does not show the model
is fair on darker skin, and a `sensitive` verdict shows a dependence on skin colour that real
darker skin would also trigger. Artifacts are recoloured with the skin (their contrast kept in
proportion), so a specular highlight is dimmed on darker skin, which a real reflection would not be.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .errors import ConfigError
from .lesion import ArtifactParams, LesionParams, analyse_masks
from .lesion.images import resize_mask, validate_image
from .skintone import ItaParams, skin_mask
from .skintone.ita import ita_degrees
from .skintone.sample import _robust_lab

__all__ = ["DEFAULT_LEVELS", "Recoloured", "recolour_skin", "target_lab", "seam_energy", "recolour_regions"]

#: Default target ITA levels in degrees (lightest to darkest), spanning dermatology's range.
DEFAULT_LEVELS = (60.0, 45.0, 28.0, 10.0, -20.0)
#: Default skin parameters: the estimator's, without the dataset cast step (per image it is a no-op).
COUNTERFACTUAL_ITA = ItaParams(ita_correction="none")


def target_lab(L, b, ita, *, radius: float | None = 25.0, min_radius: float = 10.0):
    """The skin centre (L*, b*) rotated to ``ita`` degrees around (b* = 0, L* = 50).

    ``r = radius``, or when None ``max(hypot(L - 50, b), min_radius)``; returns ``(50 + r sin(ita), r cos(ita))``,
    whose ITA = arctan((L* - 50) / b*) is ``ita`` (for ``ita`` in (-90, 90)).
    """
    ita = float(ita)
    if not -90.0 < ita < 90.0:
        raise ConfigError(f"a target ITA must be in (-90, 90) degrees; got {ita}")
    if radius is None:
        r = max(math.hypot(float(L) - 50.0, float(b)), float(min_radius))
    elif not 0 < float(radius) <= 60:
        raise ConfigError(f"the 'radius' parameter must be in (0, 60]; got {radius}")
    else:
        r = float(radius)
    t = math.radians(ita)
    return 50.0 + r * math.sin(t), r * math.cos(t)


@dataclass
class Recoloured:
    """The recoloured versions of one image.

    ``images``: one (H, W, 3) uint8 per level; ``levels``: the target ITA of each (degrees);
    ``weight``: (H, W) float in [0, 1], the recolouring weight (0 = pixel copied unchanged);
    ``sample``: (H, W) bool, the skin sample whose centre is moved; ``zone``: (H, W) bool, the
    lesion and the kept ring round it (none with a given mask);
    ``original``: ``(L*, b*, ITA)`` of the skin centre before; ``achieved``: the same statistic
    of each recoloured image's skin (its own measurement, before the working-size estimator).
    """

    images: list
    levels: tuple
    weight: np.ndarray
    sample: np.ndarray
    zone: np.ndarray
    original: tuple
    achieved: list


def recolour_regions(image, mask=None, *, params: ItaParams = COUNTERFACTUAL_ITA, band: float = 0.03,
                     keep_margin: float | None = None,
                     lesion_params: LesionParams = LesionParams(),
                     artifact_params: ArtifactParams = ArtifactParams()):
    """Where one image is recoloured, and the skin sample that sets its colour.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    mask : ndarray of bool, shape (H, W), optional
        The lesion; estimated by the segmentation of :mod:`skinaudit.lesion` when None.
    params : ItaParams
        The skin sample of the estimator (its margin and artifact margin): the pixels whose
        colour is measured and moved to the target.
    band : float, in [0, 0.5)
        Width of the linear blend from the kept zone outward, as a fraction of the long side.
    keep_margin : float in [0, 0.2], optional
        A ring round the lesion, as a fraction of the long side, that is copied unchanged:
        default 0.01 when ``mask`` is given (a human mask is trusted up to its edge) and 0.03
        when the lesion is estimated (a segmentation can miss the lesion's rim).

    Returns
    -------
    weight : ndarray of float, shape (H, W), in [0, 1]
        0 on the lesion, the ``keep_margin`` ring and every detected artifact pixel (copied
        unchanged); rises linearly over ``band`` x the long side from the ring's outer edge (or
        over the distance that leaves 70% of the skin sample at weight 1 when that is shorter: a
        thin ring of skin), so the skin is recoloured up to the lesion -- including the wider
        safety margin the ITA estimator leaves out of its sample. The artifacts' own safety
        margin is skin and is recoloured (otherwise each hair would keep a halo of the original skin).
    sample : ndarray of bool, shape (H, W)
        The estimator's skin sample (:func:`skinaudit.skintone.skin_mask`) at full size: the
        pixels whose robust colour is measured and moved to the target.
    zone : ndarray of bool, shape (H, W)
        The lesion and the kept ring (the seam of :func:`seam_energy` is at its outer edge).
    """
    image = validate_image(image)
    if not 0.0 <= float(band) < 0.5:
        raise ConfigError(f"the 'band' parameter must be in [0, 0.5); got {band}")
    if keep_margin is None:
        keep_margin = 0.0 if mask is not None else 0.02
    if not 0.0 <= float(keep_margin) <= 0.2:
        raise ConfigError(f"the 'keep_margin' parameter must be in [0, 0.2]; got {keep_margin}")
    _wi, lesion, masks = analyse_masks(image, lesion_mask=mask, params=lesion_params, artifact_params=artifact_params)
    full = image.shape[:2]
    sample = resize_mask(skin_mask(lesion, masks, params=params), full)
    lesion_full = (np.asarray(mask, dtype=bool) if mask is not None
                   else resize_mask(lesion, full, conservative=True))
    zone = lesion_full.copy()
    ring = float(keep_margin) * max(full)
    if ring > 0 and zone.any() and not zone.all():
        zone = ndi.distance_transform_edt(~zone) <= ring
    keep = zone
    px = float(band) * max(full)
    sample &= ~keep
    if px > 0 and zone.any():
        dist = ndi.distance_transform_edt(~zone)
        if sample.any():  # a thin ring of skin: narrow the band so 70% of the sample moves fully
            px = min(px, max(1.0, float(np.quantile(dist[sample], 0.3))))
        w = np.clip(dist / px, 0.0, 1.0)
    else:
        w = np.ones(full)
    w[keep] = 0.0
    return w, sample, zone


def _lab(rgb8: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(rgb8.reshape(-1, 1, 3).astype(np.float64) / 255.0).reshape(-1, 3)


def _rgb8(lab: np.ndarray) -> np.ndarray:
    from skimage.color import lab2rgb

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*negative Z values.*", category=UserWarning)
        rgb = lab2rgb(lab.reshape(-1, 1, 3)).reshape(-1, 3)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def recolour_skin(image, mask=None, *, levels=DEFAULT_LEVELS, params: ItaParams = COUNTERFACTUAL_ITA,
                  band: float = 0.03, keep_margin: float | None = None, refine: int = 2,
                  radius: float | None = 25.0, min_lightness: float = 20.0, regions=None,
                  lesion_params: LesionParams = LesionParams(),
                  artifact_params: ArtifactParams = ArtifactParams()) -> Recoloured:
    """Recolour the skin of one image to each target ITA, keeping the lesion bit-identical.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        sRGB image.
    mask : ndarray of bool, shape (H, W), optional
        The lesion; estimated with the segmentation of :mod:`skinaudit.lesion` when None.
    levels : sequence of float
        Target ITA values in degrees, each in (-90, 90).
    params : ItaParams
        The skin sample (margin, artifact margin) and the statistic of the skin centre.
    band : float, in [0, 0.5)
        Width of the blend from the kept ring outward, as a fraction of the long side.
    keep_margin : float in [0, 0.2], optional
        The ring round the lesion copied unchanged (fraction of the long side); default 0.01
        with a given mask, 0.03 with an estimated one (see :func:`recolour_regions`).
    refine : int, >= 0
        Passes that re-measure the recoloured skin and correct the aim by the residual divided
        by the sample's mean blend weight (a Newton step; the aim stays within 40 units of the
        target colour); the pass whose measured ITA is closest to the target is kept.
    radius : float or None
        Distance of the target skin centre from (b* 0, L* 50) in the b*-L* plane (see
        :func:`target_lab`); default 25 (every image gets the same skin colour at a level);
        None keeps the image's own distance (at least 10).
    min_lightness : float
        A skin centre darker than this L* is refused (DataError): a frame taken for skin.
    regions : (weight, sample), optional
        A precomputed :func:`recolour_regions` (the masks are then not recomputed).

    Returns
    -------
    Recoloured
        Raises :class:`~skinaudit.errors.ConfigError` for bad options and
        :class:`~skinaudit.errors.DataError` when the image has too few skin pixels to recolour.
    """
    from .errors import DataError

    image = validate_image(image)
    levels = tuple(float(v) for v in levels)
    if not levels:
        raise ConfigError("the 'levels' parameter needs at least one target ITA")
    for v in levels:
        target_lab(50.0, 10.0, v)  # validates the range
    if int(refine) != refine or refine < 0:
        raise ConfigError(f"the 'refine' parameter must be an integer >= 0; got {refine!r}")
    if regions is None:
        regions = recolour_regions(image, mask, params=params, band=band, keep_margin=keep_margin,
                                   lesion_params=lesion_params,
                                   artifact_params=artifact_params)
    w, sample, zone = np.asarray(regions[0], dtype=float), np.asarray(regions[1], dtype=bool), regions[2]
    if w.shape != image.shape[:2] or sample.shape != w.shape:
        raise ConfigError(f"the regions have shape {w.shape}, not the image's {image.shape[:2]}")
    flat = image.reshape(-1, 3)
    idx = np.flatnonzero(w.ravel() > 0)
    in_sample = sample.ravel()[idx]
    if in_sample.sum() < max(16, params.min_skin_fraction * w.size):
        raise DataError(f"too few skin pixels to recolour ({int(in_sample.sum())} of {w.size})")
    ws = w.ravel()[idx][:, None]
    # the blend band lies inside the skin sample: a pass moves the sample's centre by about the
    # mean weight of its pixels times the change of the aim (Newton step with that gain)
    gain = float(np.clip(ws[in_sample].mean(), 0.2, 1.0))
    lab0 = _lab(flat[idx])
    Lm, _am, bm = (float(v) for v in _robust_lab(lab0[in_sample], params.statistic, params.trim_sd))
    if Lm < min_lightness:
        raise DataError(f"the skin sample has L* {Lm:.1f} < {min_lightness:g}: a black frame or vignette taken for "
                        f"skin, not recoloured")
    out, achieved = [], []
    for ita in levels:
        Lt, bt = target_lab(Lm, bm, ita, radius=radius)
        aim_L, aim_b, best = Lt, bt, None
        for step in range(int(refine) + 1):
            new = lab0.copy()
            new[:, 0] = aim_L + (Lt / Lm if Lm > 1 else 1.0) * (lab0[:, 0] - Lm)
            new[:, 2] = aim_b + (lab0[:, 2] - bm)
            rgb = _rgb8(lab0 + ws * (new - lab0))
            got = _robust_lab(_lab(rgb[in_sample]), params.statistic, params.trim_sd)
            miss = abs(float(ita_degrees(got[0], got[2])) - ita) if got[2] > 0 else np.inf
            if best is None or miss < best[0]:
                best = (miss, rgb, (float(got[0]), float(got[2]), float(ita_degrees(got[0], got[2]))))
            # Newton step on the sample's centre, kept within 40 units of the target colour
            aim_L = float(np.clip(aim_L + (Lt - float(got[0])) / gain, max(5.0, Lt - 40), min(98.0, Lt + 40)))
            aim_b = float(np.clip(aim_b + (bt - float(got[2])) / gain, bt - 40, bt + 40))
        img = flat.copy()
        img[idx] = best[1]
        out.append(img.reshape(image.shape))
        achieved.append(best[2])
    return Recoloured(images=out, levels=levels, weight=w, sample=sample, zone=zone,
                      original=(Lm, bm, float(ita_degrees(Lm, bm))), achieved=achieved)


def seam_energy(image, zone, *, width: int = 3) -> float:
    """Mean squared per-pixel gradient of L* (Sobel / 8 per axis) on the pixels outside
    ``zone`` within ``width`` px of its edge, in (L* units per px)^2.

    With ``zone`` = the kept zone (:attr:`Recoloured.zone`: the lesion and its kept ring) it
    measures the seam the recolouring leaves where the untouched zone meets the moved skin; with ``zone`` = the
    lesion mask, on an original image, the natural edge of the lesion (the reference range).
    NaN when ``zone`` is empty or everything.
    """
    from skimage.color import rgb2lab

    zone = np.asarray(zone, dtype=bool)
    if not zone.any() or zone.all():
        return float("nan")
    band = ndi.binary_dilation(zone, iterations=int(width)) & ~zone
    L = rgb2lab(np.asarray(image, dtype=np.float64) / 255.0)[..., 0]
    g = ndi.sobel(L, axis=0) ** 2 + ndi.sobel(L, axis=1) ** 2
    return float(g[band].mean() / 64.0)
