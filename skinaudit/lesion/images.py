"""Image helpers shared by the lesion stages: the input check, working-size resampling, mask
resizing and fast per-pixel colour reductions."""
from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import ImageError

__all__ = ["validate_image", "resize_mask", "working_shape", "resize_image", "channel_mean", "hsv"]


def validate_image(image) -> np.ndarray:
    """Check an RGB image and return it as ``uint8``.

    Parameters
    ----------
    image : array_like, shape (H, W, 3), uint8 or float
        sRGB image; floats must lie in [0, 1] (they are scaled by 255 and rounded).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        The image itself when it is already ``uint8`` (no copy).

    Raises
    ------
    ImageError
        When the array is not (H, W, 3), is smaller than 8 x 8 px, or has another dtype
        (or floats outside [0, 1]).
    """
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


def resize_mask(mask: np.ndarray, shape: tuple[int, int], *, conservative: bool = False) -> np.ndarray:
    """Resize a boolean mask with PIL.

    Parameters
    ----------
    mask : ndarray, shape (h, w), bool
    shape : (H, W)
        Target shape, in pixels.
    conservative : bool
        False: bilinear resampling of the 0/255 mask, kept where > 127 (the nearest outline).
        True: box resampling, kept where > 0 (any touched pixel: a mask that must not lose thin
        structures when shrunk).

    Returns
    -------
    ndarray, shape (H, W), bool
        A copy, also when ``shape`` is the mask's own.
    """
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


def working_shape(shape: tuple[int, ...], long_side: int) -> tuple[float, tuple[int, int]]:
    """Scale factor and (h, w) of a working copy whose long side is at most ``long_side`` px.

    ``s = min(1, long_side / max(H, W))``; each side is ``round(side * s)``, at least 8 px.
    Images are never enlarged.
    """
    h, w = shape[:2]
    s = min(1.0, long_side / max(h, w))
    return s, (max(8, round(h * s)), max(8, round(w * s)))


def resize_image(image: np.ndarray, shape: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """``uint8`` image (H, W[, 3]) resampled to ``shape`` (h, w) by PIL: box average (area
    mean), or the nearest pixel when ``nearest``. The image itself when already of that shape."""
    if tuple(image.shape[:2]) == tuple(shape):
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.NEAREST if nearest else Image.BOX))


def channel_mean(a: np.ndarray) -> np.ndarray:
    """Mean of the three channels of an (h, w, 3) float array.

    The same values and dtype as ``a.mean(axis=2)`` (the planes are added in the same order and
    divided by 3 in ``a``'s dtype); numpy's reductions over a length-3 last axis are ~10x slower
    than adding the three planes.
    """
    return (a[..., 0] + a[..., 1] + a[..., 2]) / a.dtype.type(3)


def hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSV value, saturation and hue of an (h, w, 3) RGB array in [0, 1].

    Returns
    -------
    value, saturation : ndarray, shape (h, w)
        ``max(R, G, B)`` and ``(max - min) / max`` (0 where max = 0), in [0, 1].
    hue : ndarray, shape (h, w)
        Degrees in [0, 360); 0 for grey pixels.

    All three in ``rgb``'s float dtype.

    Notes
    -----
    The hexcone model (Smith 1978), as :func:`skimage.color.rgb2hsv` (whose hue is this / 360),
    without its overhead; equal to it up to floating-point rounding.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b)  # not .max(axis=2): ~20x slower over a length-3 axis
    mn = np.minimum(np.minimum(r, g), b)
    delta = mx - mn
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1), 0)
    d = np.where(delta > 0, delta, 1)
    hue = np.where(mx == r, (g - b) / d, np.where(mx == g, 2 + (b - r) / d, 4 + (r - g) / d))
    hue = np.where(delta > 0, (hue * 60.0) % 360.0, 0.0)
    return mx, sat, hue
