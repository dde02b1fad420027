"""Artifact masks and image-level artifact flags; the shared lesion + artifact pass of one image.

Each artifact gives a pixel mask (excluded from the skin sample) and an image-level flag
(:func:`artifact_flags`), with thresholds in :class:`~skinaudit.lesion.params.ArtifactParams`.
Measured quality per artifact, and what each rule was tuned on, are in ``docs/skintone.md``.

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
               ``hair_low_min_len`` px). :mod:`.hair`
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
               ``ruler_min_comb``: a mm scale joined to its edge).
               :mod:`.ruler`
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
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .. import learned
from ..errors import ImageError
from ..learned import resolve
from .hair import hair_mask
from .images import hsv, resize_mask
from .morphology import border_labels, white_tophat
from .params import ArtifactParams, LesionParams
from .ruler import ruler_mask
from .segmentation import segment_working
from .working import WorkingImage

__all__ = ["ARTIFACT_NAMES", "analyse_masks", "artifact_flags", "image_artifact_flags", "detect_artifacts",
           "masks_of_flagged", "methods_used"]

#: Artifact names, in output column order.
ARTIFACT_NAMES = ("hair", "ruler", "ink", "dark_corner", "gel_bubble", "gel_border", "patches")


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


def _artifact_masks(wi: WorkingImage, ap: ArtifactParams, lesion: np.ndarray) -> dict:
    """The artifact masks (table in the module docstring) at working size."""
    h, w = wi.lum.shape
    lum = wi.raw_lum
    # dark corner: pixels darker than dark_corner_ratio x the skin median, connected to the
    # border; kept only when the darkest corner patch's ratio is under dark_corner_ratio
    ratio = _corner_ratio(lum, lesion)
    skin_level = float(np.median(lum[~lesion])) if (~lesion).any() else float(np.median(lum))
    lab_d, _ = ndi.label(lum < ap.dark_corner_ratio * skin_level)
    dark_rel = np.isin(lab_d, border_labels(lab_d)) | wi.dark_corner
    if not ratio < ap.dark_corner_ratio:
        dark_rel = wi.dark_corner & np.zeros_like(wi.dark_corner)
    ruler = resize_mask(ruler_mask(wi.image, ap), wi.raw.shape[:2], conservative=True)
    hair = hair_mask(wi, ap, dark_corner=dark_rel, ruler=ruler)
    value, sat, hue_deg = hsv(wi.raw)
    ink = (hue_deg >= 250) & (hue_deg <= 290) & (sat >= 100 / 255) & (value >= 60 / 255)
    # blue surgical marker (most PAD-UFES-20 marks): dark, strongly blue in CIELAB
    lab = wi.lab
    lab_hue = np.degrees(np.arctan2(lab[..., 2], lab[..., 1])) % 360
    ink |= (lab[..., 2] < ap.ink_max_b) & (lab[..., 0] < ap.ink_max_L) & (lab_hue >= 230) & (lab_hue <= 320)
    ink = ndi.binary_opening(ink) & ~wi.dark_corner
    brighter = lum > skin_level + ap.bubble_contrast
    specular = (value > ap.specular_value) & (sat < ap.specular_saturation) & brighter
    tophat = white_tophat(lum, 5)
    bubble = (specular | ((tophat > ap.bubble_contrast) & brighter)) & wi.field
    # gel border: a bright smooth band along the border, clearly brighter than the skin
    skin_ref = wi.field & ~lesion & ~bubble
    gel_border = np.zeros((h, w), dtype=bool)
    if skin_ref.sum() > 16:
        med = float(np.median(lum[skin_ref]))
        bright = ndi.binary_opening(lum > med + ap.gel_border_contrast, iterations=2) & wi.field & ~lesion
        lab_b, n = ndi.label(bright)
        if n:
            gel_border = np.isin(lab_b, border_labels(lab_b))
    return {"hair": hair, "ruler": ruler, "ink": ink, "dark_corner": dark_rel, "gel_bubble": bubble,
            "gel_border": gel_border, "patches": wi.patches}


def analyse_masks(image, *, lesion_mask=None, params: LesionParams = LesionParams(),
                  artifact_params: ArtifactParams = ArtifactParams()):
    """Working-size lesion and artifact masks of one image (shared by segmentation and ITA).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        sRGB image.
    lesion_mask : ndarray, shape (H, W), bool, optional
        The lesion; segmented when omitted (``params.segmenter``: the learned U-Net at working
        size, or :func:`~skinaudit.lesion.segmentation.segment_working`). A given mask is shrunk
        to working size keeping any touched pixel.
    params, artifact_params : LesionParams, ArtifactParams

    Returns
    -------
    wi : WorkingImage
    lesion : ndarray, shape (h, w), bool
        At working size.
    masks : dict
        ``name -> (h, w) bool`` at working size, one per :data:`ARTIFACT_NAMES`.

    Raises
    ------
    ImageError
        When the image is unusable or ``lesion_mask``'s shape differs from the image's.
    """
    wi = WorkingImage(image, params)
    if lesion_mask is None:
        if resolve(params.segmenter, "segmenter") == "learned":
            lesion = learned.segment(wi.image, wi.rgb.shape[:2], colours=wi.raw)
        else:
            lesion = segment_working(wi, params)
    else:
        lm = np.asarray(lesion_mask).astype(bool)
        if lm.shape != tuple(wi.shape):
            raise ImageError("<mask>", f"lesion mask shape {lm.shape} differs from the image's {tuple(wi.shape)}")
        lesion = resize_mask(lm, wi.rgb.shape[:2], conservative=True)
    masks = _artifact_masks(wi, artifact_params, lesion)
    return wi, lesion, masks


def artifact_flags(masks: dict, *, lesion_mask=None, params: ArtifactParams = ArtifactParams()) -> dict:
    """Image-level flags from artifact masks (all of one resolution).

    Parameters
    ----------
    masks : dict
        ``name -> (h, w) bool`` (names of :data:`ARTIFACT_NAMES`; missing ones count as empty).
    lesion_mask : ndarray, shape (h, w), bool, optional
        The lesion at the masks' resolution.
    params : ArtifactParams

    Returns
    -------
    dict
        ``name -> bool`` for every name of :data:`ARTIFACT_NAMES`. A flag is raised when the
        mask covers more than its ``*_min_frac`` of the image; the ruler and dark-corner flags
        by any pixel of their mask. Hair is counted outside the lesion dilated by 4 px and ink
        outside it dilated by 2 px when ``lesion_mask`` is given, because pigment network
        answers the black-hat and blue-grey structures the ink rule.
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


def image_artifact_flags(image, masks: dict, *, lesion_mask=None,
                         params: ArtifactParams = ArtifactParams()) -> dict:
    """Image-level artifact flags by the method of ``params.detector``.

    Learned: :func:`skinaudit.learned.artifact_flags` of ``image`` (``masks`` unused); classical:
    :func:`artifact_flags` of ``masks`` (and ``lesion_mask``, at the masks' resolution).

    Returns
    -------
    dict
        ``name -> bool`` for every name of :data:`ARTIFACT_NAMES`.
    """
    if resolve(params.detector, "artifacts") == "learned":
        flags = learned.artifact_flags(image)
        return {k: bool(flags[k]) for k in ARTIFACT_NAMES}
    return artifact_flags(masks, lesion_mask=lesion_mask, params=params)


def methods_used(params: LesionParams = LesionParams(), artifact_params: ArtifactParams = ArtifactParams(), *,
                 mask_given: bool = False) -> dict:
    """Which segmentation and artifact flags a run uses: ``{"segmenter": "given" | "learned" |
    "classical", "artifact_detector": "learned" | "classical"}`` (``"auto"`` resolved)."""
    return {"segmenter": "given" if mask_given else resolve(params.segmenter, "segmenter"),
            "artifact_detector": resolve(artifact_params.detector, "artifacts")}


def detect_artifacts(image, *, lesion_mask=None, params: LesionParams = LesionParams(),
                     artifact_params: ArtifactParams = ArtifactParams()) -> dict:
    """Pixel masks of the artifacts of one image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        sRGB image.
    lesion_mask : ndarray, shape (H, W), bool, optional
        The lesion (estimated with :func:`~skinaudit.lesion.segment_lesion` when omitted); used
        to keep lesion structure out of the gel-border rule.
    params, artifact_params : LesionParams, ArtifactParams

    Returns
    -------
    dict
        ``name -> (H, W) bool`` for every name in :data:`ARTIFACT_NAMES` (all-False masks for
        absent artifacts), from the pixel rules whatever ``artifact_params.detector`` (no
        pixel-level labels exist to learn them from; :func:`masks_of_flagged` keeps those of
        the flagged artifacts). Classical image-level flags: :func:`artifact_flags` on this dict.
    """
    wi, _lesion, masks = analyse_masks(image, lesion_mask=lesion_mask, params=params,
                                       artifact_params=artifact_params)
    return {k: resize_mask(v, wi.shape) for k, v in masks.items()}


def masks_of_flagged(masks: dict, flags: dict) -> dict:
    """``masks`` with the mask of every artifact whose image-level flag is False emptied (the
    learned flags decide which classical pixel masks count, e.g. in the failure modes).

    Parameters
    ----------
    masks : dict
        ``name -> ndarray of bool`` (:func:`detect_artifacts`).
    flags : dict
        ``name -> bool`` (:func:`image_artifact_flags`); a name it lacks keeps its mask.
    """
    return {k: v if flags.get(k, True) else np.zeros_like(v) for k, v in masks.items()}
