"""Resampling shared by training and inference (torch-free: numpy and Pillow only).

- Segmenter input: the whole image squashed to ``size x size`` (aspect not kept; the output
  probability map is resized back to the image's own shape).
- Artifact input: the image turned landscape (transposed when taller than wide) and resized to
  ``(height, width)`` = (192, 256) by default, about the native resolution of the training folder.

Pillow's bilinear ``resize`` widens its filter when it shrinks, so downsampling is antialiased.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["seg_input", "art_input", "resize_prob"]


def _as_uint8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float64) * (255.0 if a.max(initial=0) <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])


def seg_input(image: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8: ``image`` (H, W, 3) resized bilinearly, aspect not kept."""
    return np.asarray(Image.fromarray(_as_uint8(image)).resize((size, size), Image.BILINEAR))


def art_input(image: np.ndarray, shape: tuple[int, int] = (192, 256)) -> np.ndarray:
    """(h, w, 3) uint8 with ``(h, w) = shape``: ``image`` made landscape, then resized bilinearly."""
    a = _as_uint8(image)
    if a.shape[0] > a.shape[1]:
        a = np.ascontiguousarray(a.transpose(1, 0, 2))
    return np.asarray(Image.fromarray(a).resize((shape[1], shape[0]), Image.BILINEAR))


def resize_prob(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A float32 map in [0, 1] resized bilinearly to ``shape`` = (H, W)."""
    im = Image.fromarray(np.asarray(prob, dtype=np.float32), mode="F")
    return np.asarray(im.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)
