"""Resampling shared by training and inference (torch-free: numpy and Pillow only).

- Segmenter input: the whole image squashed to ``size x size`` (aspect not kept; the output
  probability map is resized back to the image's own shape).
- Artifact input: the image turned landscape (transposed when taller than wide) and resized to
  ``(height, width)`` = (192, 256) by default, about the native resolution of the training folder.
- Segmenter output: :func:`refine_prob` sharpens the (coarse, 128-px) lesion probability with the
  image's own colours at the output resolution, then :func:`postprocess` makes the mask.

Pillow's bilinear ``resize`` widens its filter when it shrinks, so downsampling is antialiased.
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

__all__ = ["seg_input", "art_input", "resize_prob", "resize_image", "refine_prob", "postprocess"]


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


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` resized bilinearly to ``shape`` = (H, W) (itself when already so)."""
    a = _as_uint8(image)
    if a.shape[:2] == tuple(shape):
        return a
    return np.asarray(Image.fromarray(a).resize((shape[1], shape[0]), Image.BILINEAR))


def _gaussian_loglik(x: np.ndarray, sample: np.ndarray, ridge: float) -> np.ndarray:
    """Log-density (up to a constant) of every row of ``x`` (float32) under a 3-D Gaussian fitted
    to ``sample`` (covariance + ``ridge`` on the diagonal, in 8-bit RGB units squared)."""
    d = sample.astype(np.float64)
    mu = d.mean(0)
    d -= mu
    cov = (d.T @ d) / max(len(d) - 1, 1) + ridge * np.eye(3)  # np.cov's arithmetic, without its copies
    w = np.linalg.cholesky(np.linalg.inv(cov)).astype(np.float32)  # inv(cov) = w @ w.T
    z = (x - mu.astype(np.float32)) @ w
    return -0.5 * np.einsum("ni,ni->n", z, z) - np.float32(0.5 * np.log(np.linalg.det(cov)))


def refine_prob(image: np.ndarray, prob: np.ndarray, *, alpha: float = 0.25, confident: float = 0.9,
                ridge: float = 9.0, clip: float = 6.0) -> np.ndarray:
    """Lesion probability sharpened by the image's colours (a two-class colour model per image).

    A 3-D Gaussian of 8-bit RGB is fitted to the pixels the network is confident about (lesion:
    ``prob > confident``; skin: ``prob < 1 - confident``); each pixel's log-likelihood ratio
    (clipped to +-``clip``) is added, weighted by ``alpha``, to the network's logit. Where the
    network is unsure (the outline, drawn from a 128-px map) the pixel's colour decides; where it
    is sure, the colour barely matters. With fewer than 20 confident pixels of either class the
    probability is returned unchanged. ``alpha`` and ``confident`` were chosen on the validation
    split of the training folder (docs/learned_detectors.md).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        The image at the probability map's size.
    prob : ndarray, shape (H, W), float in [0, 1]

    Returns
    -------
    ndarray, shape (H, W), float32 in [0, 1]
    """
    p = np.asarray(prob, dtype=np.float32)
    les, skin = p > confident, p < 1 - confident
    if les.sum() < 20 or skin.sum() < 20:
        return p
    x = _as_uint8(image).reshape(-1, 3).astype(np.float32)
    llr = (_gaussian_loglik(x, x[les.ravel()], ridge) - _gaussian_loglik(x, x[skin.ravel()], ridge)).reshape(p.shape)
    q = np.clip(p, np.float32(1e-4), np.float32(1 - 1e-4))
    z = np.log(q / (1 - q)) + np.float32(alpha) * np.clip(llr, -clip, clip)
    return (1 / (1 + np.exp(-z))).astype(np.float32)


def postprocess(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary mask from a lesion probability map: ``prob > threshold``, the component with the
    largest probability mass, holes filled. All False when nothing exceeds the threshold."""
    m = prob > threshold
    lab, n = ndi.label(m)
    if n > 1:
        mass = ndi.sum_labels(prob, lab, np.arange(1, n + 1))
        m = lab == (1 + int(np.argmax(mass)))
    return ndi.binary_fill_holes(m) if n else m
