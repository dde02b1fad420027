"""The working copy of one image: a small resampled copy and the maps that segmentation,
artifact detection and ITA share, built once per image."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .images import channel_mean, resize_image, validate_image, working_shape
from .morphology import border_labels, closing
from .params import LesionParams

__all__ = ["WorkingImage"]


class WorkingImage:
    """The working copy of one image and the intermediate maps every stage shares.

    Built once per image by :func:`~skinaudit.lesion.analyse_masks`. The working copy has a long
    side of at most ``params.work_size`` px (box-averaged; never enlarged).

    Parameters
    ----------
    image : array_like, shape (H, W, 3), uint8 (or floats in [0, 1])
        sRGB image.
    params : LesionParams

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The validated full-size image.
    shape : tuple (H, W)
        Full-size shape.
    scale : float
        Working size / full size (<= 1).
    raw : ndarray, shape (h, w, 3), float32 in [0, 1]
        Box-averaged working copy.
    sample : ndarray, shape (h, w, 3), float32 in [0, 1]
        Nearest pixels on the working grid, for colour statistics (averaging sRGB values biases
        L* of textured skin).
    raw_lum : ndarray, shape (h, w), float32
        Channel mean of ``raw``.
    hair_response, hair_pixels : ndarray, shape (h, w)
        Grey closing (``params.hair_kernel`` square) minus luminance, and where it exceeds
        ``params.hair_contrast``.
    rgb, lum : ndarray
        ``raw`` with hair pixels replaced by the closing ("DullRazor"-like fill, Lee et al.
        1997), and its channel mean.
    lab : ndarray, shape (h, w, 3), float64
        CIELAB (D65) of ``raw`` (not hair-filled: thin ink lines would be filled).
    dark_corner : ndarray, shape (h, w), bool
        Pixels of ``lum`` < ``params.dark_level`` connected to the border (vignette, frame).
    patches : ndarray, shape (h, w), bool
        Large vivid-colour regions (C*ab > ``params.patch_chroma``, or > 0.7 x that for green,
        cyan and blue hues; not lesion-like hues) touching the border: stickers.
    field : ndarray, shape (h, w), bool
        Field of view: not within 2 px of ``dark_corner`` or ``patches`` (everything when that
        leaves under 20% of the image).
    centre_weight : ndarray, shape (h, w), float
        ``max(1.2 - r, 0.05)``, ``r`` the distance to the centre in half-sides.
    """

    def __init__(self, image, params: LesionParams):
        from skimage import color

        image = validate_image(image)
        self.shape = image.shape[:2]
        s, (hs, ws) = working_shape(self.shape, params.work_size)
        self.scale = s
        small = resize_image(image, (hs, ws))
        raw = small.astype(np.float32) / 255.0
        self.raw = raw
        # actual pixels (no averaging) on the working grid, for colour statistics: averaging
        # sRGB values biases L* of textured skin (measured on phantoms, docs/skintone.md)
        self.sample = resize_image(image, (hs, ws), nearest=True).astype(np.float32) / 255.0
        lum = channel_mean(raw)
        self.raw_lum = lum
        closed = closing(raw, params.hair_kernel)  # per channel
        self.hair_response = channel_mean(closed) - lum
        hairy = self.hair_response > params.hair_contrast
        self.hair_pixels = hairy
        self.rgb = np.where(hairy[..., None], closed, raw)
        self.lab = color.rgb2lab(raw)  # raw, not hair-filled: thin ink lines would be filled
        lum_f = channel_mean(self.rgb)
        self.lum = lum_f
        dark = lum_f < params.dark_level
        lab_d, _ = ndi.label(dark)
        self.dark_corner = np.isin(lab_d, border_labels(lab_d))
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
            patches = np.isin(lab_v, big[np.isin(big, border_labels(lab_v))])
        self.patches = patches
        field = ~ndi.binary_dilation(self.dark_corner | patches, iterations=2)
        if field.sum() < 0.2 * hs * ws:  # almost all dark: analyse everything rather than nothing
            field = np.ones((hs, ws), dtype=bool)
        self.field = field
        yy, xx = np.mgrid[0:hs, 0:ws]
        self.centre_weight = np.clip(1.2 - np.hypot((yy - hs / 2) / (hs / 2), (xx - ws / 2) / (ws / 2)), 0.05, None)
