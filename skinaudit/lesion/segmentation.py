"""Lesion segmentation without trained weights, on the working copy of an image.

Steps of :func:`segment_working` (the choices and their measured effects are in
``docs/skintone.md``, "Choices, references and measured effects"):

1. Hair removal and field of view (:class:`~skinaudit.lesion.working.WorkingImage`): a per-channel
   grey closing fills hair ("DullRazor"-like, Lee et al. 1997); dark pixels connected to the
   image border (vignette, black frame) and vivid coloured patches touching it (stickers) leave
   the analysis.
2. Blue channel (the best lesion/skin contrast here), Otsu threshold (Otsu 1979) over the field
   of view.
3. Shading: the blue channel is divided by a plane fitted to the pixels above that first
   threshold (the skin) and Otsu's threshold is recomputed; it is then shifted ``skin_bias`` of
   the way towards the skin median, because human outlines include the faint lesion periphery.
4. The connected component with the largest centre-weighted area (weight raised to
   ``centre_power``), holes filled, closed.
5. Refinement for small lesions on uneven skin (where step 4 picks a ragged darker skin region
   that holds the lesion): steps 3-4 are repeated inside that region with its own Otsu
   threshold, and the darker core replaces it when its contrast to a 3-px ring (median outside
   minus median inside) exceeds ``refine_contrast`` times the region's.
6. The closings treat the outside of the image as skin and peel the outer 2 px off a lesion cut
   by the frame; those pixels are put back where they are dark at the global threshold.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .. import learned
from ..learned import resolve
from .images import resize_mask
from .morphology import fill_holes, frame
from .params import LesionParams
from .working import WorkingImage

__all__ = ["segment_lesion", "segment_working"]


def segment_working(wi: WorkingImage, params: LesionParams) -> np.ndarray:
    """Lesion mask of a working copy (steps in the module docstring).

    Parameters
    ----------
    wi : WorkingImage
    params : LesionParams

    Returns
    -------
    ndarray, shape (h, w), bool
        At working size; all False when no lesion-like region is found.
    """
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
    if (m & frame(m.shape, 4)).any():
        m = _restore_frame(m, (s < _biased_threshold(vals, t, params.skin_bias)) & wi.field)
    return m


def _biased_threshold(vals: np.ndarray, t: float, skin_bias: float) -> float:
    """``t`` shifted ``skin_bias`` of the way to the median of the ``vals`` above it."""
    skin = vals[vals > t]
    return t + skin_bias * (float(np.median(skin)) - t) if skin.size else t


def _restore_frame(m: np.ndarray, dark: np.ndarray, width: int = 2) -> np.ndarray:
    """``m`` plus the ``dark`` pixels on the outer ``width`` px of the image within ``width`` px
    of ``m`` (a closing with a zero border removes them from a lesion cut by the frame)."""
    return m | (frame(m.shape, width) & dark & ndi.binary_dilation(m, iterations=width))


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
    return fill_holes(ndi.binary_closing(m, iterations=2, border_value=0))


def _ring_contrast(s: np.ndarray, m: np.ndarray, field: np.ndarray, width: int = 3) -> float:
    """Median of ``s`` on a ``width``-px ring around ``m`` (inside ``field``) minus its median in ``m``."""
    ring = ndi.binary_dilation(m, iterations=width) & ~m & field
    if not ring.any() or not m.any():
        return 0.0
    return float(np.median(s[ring]) - np.median(s[m]))


def segment_lesion(image, *, params: LesionParams = LesionParams()) -> np.ndarray:
    """Segment the lesion of a dermoscopy image.

    ``params.segmenter`` chooses the method: the learned U-Net (:func:`skinaudit.learned.segment`)
    or the classical steps of this module's docstring (no trained weights); ``"auto"`` is learned
    when torch is importable.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        sRGB image (floats in [0, 1] are accepted and scaled).
    params : LesionParams
        Segmentation method and the classical algorithm's parameters.

    Returns
    -------
    ndarray, shape (H, W), bool
        True = lesion. All False when no lesion-like region is found.

    Raises
    ------
    ImageError
        When the image is not an (H, W, 3) RGB array of at least 8 x 8 px.
    """
    if resolve(params.segmenter, "segmenter") == "learned":
        from .images import validate_image

        image = validate_image(image)
        return learned.segment(image, image.shape[:2])
    wi = WorkingImage(image, params)
    return resize_mask(segment_working(wi, params), wi.shape)
