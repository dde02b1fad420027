"""Per-image illuminant correction before ITA (``ItaParams.ita_correction``).

Colour casts are handled explicitly, never silently. The default keeps the measured b*
(``"none"``), because whole-image colour constancy removes the skin tone it should measure
(measured in docs/skintone.md). ``"specular"`` corrects the illuminant from specular highlights
only: a von Kries scaling of linear sRGB that makes the highlights neutral (dichromatic
reflection, Lee 1986), which does not consume the skin's own colour. ``"shades_of_gray"``
(Finlayson & Trezzi 2004, Minkowski p = 6 over the field of view) is there to measure what the
common preprocessing does. The dataset-level cast step is in :mod:`skinaudit.skintone.cast`.
"""
from __future__ import annotations

import numpy as np

from ..lesion import resize_mask

__all__: list[str] = []


def _srgb_to_linear(v):
    """IEC 61966-2-1 sRGB decoding of values in [0, 1]."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(v):
    """IEC 61966-2-1 sRGB encoding, clipped to [0, 1]."""
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
        full = resize_mask(specular, wi.shape, conservative=False) if specular.shape != tuple(wi.shape) else specular
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


def _correct(raw: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] (..., 3) scaled by per-channel linear-light ``gains`` (3,)."""
    return _linear_to_srgb(_srgb_to_linear(raw.astype(np.float64)) * gains)
