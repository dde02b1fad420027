"""Hair detection: thin, dark, elongated strands found by a black-hat at ``ArtifactParams.hair_size`` px.

The black-hat follows Bevan & Atapour-Abarghouei 2022 (a grey closing minus the image; theirs
17 x 17 at full resolution, here ``hair_kernel`` px at ``hair_size``). Strands are kept by shape
(thin, long, elongated or a long network), and faint strands are grown from them by hysteresis.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .images import resize_image, resize_mask, working_shape
from .morphology import black_tophat, frame, region_moments, square_filter
from .params import ArtifactParams
from .working import WorkingImage

__all__ = ["hair_mask"]


def hair_mask(wi: WorkingImage, ap: ArtifactParams, *, dark_corner: np.ndarray, ruler: np.ndarray) -> np.ndarray:
    """Hair pixels of an image, at working size.

    Parameters
    ----------
    wi : WorkingImage
    ap : ArtifactParams
    dark_corner : ndarray, shape (h, w), bool
        Dark corner / vignette at working size (no hair is looked for within about
        ``hair_kernel`` px of it).
    ruler : ndarray, shape (h, w), bool
        Ruler marks at working size, taken out of the hair mask.

    Returns
    -------
    ndarray, shape (h, w), bool
        At ``ap.hair_size`` px (long side): components of black-hat (``hair_kernel`` square) >
        ``hair_contrast`` that are also darker than the local mean by half as much, not inside
        a bright rim (gel bubbles), not on the outermost 2 px (thin camera frame lines) and are
        hair strands (:func:`_strands`); plus faint strands grown from them at
        ``hair_low_contrast`` (hysteresis). Shrunk to working size keeping any touched pixel,
        minus ``ruler``.
    """
    _, (hs, ws) = working_shape(wi.shape, ap.hair_size)
    img = resize_image(wi.image, (hs, ws))
    g = (img[..., 0].astype(np.float32) + img[..., 1] + img[..., 2]) * np.float32(1 / 765)  # 10x .mean(axis=2)
    k = ap.hair_kernel
    blackhat = black_tophat(g, k)
    # dark corner grown by about k px (a square of the area of a radius-k diamond)
    dark_corner = resize_mask(dark_corner, (hs, ws))
    dark_corner = square_filter(dark_corner, k + 4, np.maximum)
    # hair is darker than its neighbourhood's mean; this keeps the insides of bright gel-bubble
    # rims (raised by the closing) out
    local = ndi.uniform_filter(g, size=k)
    darker = g < local - ap.hair_contrast / 2
    # ... and not enclosed by a bright rim (gel bubbles): nothing much brighter than the median
    # nearby (the median of the field of view: a black vignette would lower it and make all the
    # skin a "rim")
    ref = g[~dark_corner] if (~dark_corner).any() else g
    rim = square_filter(g, k, np.maximum) > float(np.median(ref)) + 2 * ap.bubble_contrast
    darker &= ~rim
    inner = ~frame((hs, ws), 2)  # not the outermost 2 px (thin camera frame lines)
    thin = (blackhat > ap.hair_contrast) & darker & ~dark_corner & inner
    small = wi.raw.shape[:2]
    keep = _strands(thin, ap, ap.hair_min_len)
    if ap.hair_low_contrast < ap.hair_contrast:
        # faint strands (hysteresis): components at the lower contrast that hold a pixel above
        # hair_contrast, are thin, elongated and at least hair_low_min_len px long
        low = (blackhat > ap.hair_low_contrast) & (g < local - ap.hair_low_contrast / 2) & ~rim & ~dark_corner & inner
        keep |= _strands(low, ap, ap.hair_low_min_len, seeds=thin)
    if not keep.any():
        return np.zeros(small, dtype=bool)
    return resize_mask(keep, small, conservative=True) & ~ruler


def _strands(thin: np.ndarray, ap: ArtifactParams, min_len: float, seeds=None) -> np.ndarray:
    """Pixels of the components of ``thin`` (8-connected) that are hair strands: thin (2 x the
    largest distance to the background <= ``hair_max_width``), at least ``min_len`` px long
    (major axis), elongated (major >= ``hair_min_elong`` x minor axis, or major >=
    ``hair_network_len``) and, when ``seeds`` is given, holding a seed pixel."""
    labels, n = ndi.label(thin, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros(thin.shape, dtype=bool)
    comp = region_moments(labels, n)
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
