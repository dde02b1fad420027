"""The skin sample of one image: which pixels count as skin, and the robust colour of them.

Skin is every pixel that is neither the lesion dilated by a safety margin
(``ItaParams.lesion_margin``, ``lesion_margin_radius``, ``skin_margin``) nor any artifact of
:func:`skinaudit.lesion.detect_artifacts` dilated by ``artifact_margin``; or, for the naive
``border`` method, a frame along the image's edges. Its colour is a robust statistic of the
CIELAB values (``ItaParams.statistic``).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .params import ItaParams, check_instance

__all__ = ["skin_mask"]


def skin_mask(lesion, artifact_masks, *, params: ItaParams = ItaParams()) -> np.ndarray:
    """Pixels of the skin sample, at the size of the lesion mask.

    Parameters
    ----------
    lesion : ndarray of bool, shape (h, w)
        The lesion (e.g. the working-size mask of :func:`skinaudit.lesion.analyse_masks`).
    artifact_masks : dict of str to ndarray of bool, shape (h, w)
        Pixels to exclude (hair, ruler, ...), each dilated by ``params.artifact_margin`` pixels.
    params : ItaParams
        ``method``, ``border_width``, ``lesion_margin``, ``lesion_margin_radius``,
        ``skin_margin``, ``min_skin_fraction``, ``artifact_margin``.

    Returns
    -------
    ndarray of bool, shape (h, w)
        ``segmentation``: pixels farther than ``m`` px from the lesion (Euclidean distance
        transform) and not excluded, with ``m = max(lesion_margin * max(h, w),
        lesion_margin_radius * sqrt(area / pi))``. With ``skin_margin='shrink'`` ``m`` is
        lowered (never below the first term) until at least
        ``max(16, 2 * min_skin_fraction * h * w)`` pixels remain. No lesion: every pixel not
        excluded. ``border``: a frame ``round(border_width * max(h, w))`` px wide, not excluded.
    """
    check_instance(params, "params", ItaParams)
    lesion = np.asarray(lesion, dtype=bool)
    h, w = lesion.shape
    excluded = np.zeros((h, w), dtype=bool)
    for m in artifact_masks.values():
        excluded |= m
    if params.artifact_margin:
        excluded = ndi.binary_dilation(excluded, iterations=int(params.artifact_margin))
    if params.method == "border":
        bw = max(1, int(round(params.border_width * max(h, w))))
        frame = np.zeros((h, w), dtype=bool)
        frame[:bw] = frame[-bw:] = True
        frame[:, :bw] = frame[:, -bw:] = True
        return frame & ~excluded
    if not lesion.any():
        return ~excluded
    radius = math.sqrt(float(lesion.sum()) / math.pi)  # equivalent radius of the lesion
    floor = params.lesion_margin * max(h, w)
    margin = max(floor, params.lesion_margin_radius * radius)
    dist = ndi.distance_transform_edt(~lesion)
    free = dist[~excluded]
    keep = int(max(16, 2 * params.min_skin_fraction * h * w))
    if params.skin_margin == "shrink" and margin > floor and np.count_nonzero(free > margin) < keep <= free.size:
        # a large lesion: shrink the lesion-relative margin (never below the floor) so that at
        # least twice the minimum skin share remains
        margin = max(floor, float(np.partition(free, free.size - keep)[free.size - keep]) - 1e-6)
    return (dist > margin) & ~excluded


def _kept_mask(lab: np.ndarray, statistic: str, trim_sd: float) -> np.ndarray:
    """Pixels of ``lab`` (n, 3) that the statistic uses: all for ``median``, else those within
    ``trim_sd`` SD of the centre in L* and b* (all when fewer than 3 remain)."""
    if statistic == "median":
        return np.ones(len(lab), dtype=bool)
    centre = lab.mean(axis=0) if statistic == "trimmed_mean" else np.median(lab, axis=0)
    sd = lab.std(axis=0)
    keep = np.all(np.abs(lab[:, [0, 2]] - centre[[0, 2]]) <= trim_sd * sd[[0, 2]] + 1e-9, axis=1)
    return keep if keep.sum() >= 3 else np.ones(len(lab), dtype=bool)


def _robust_lab(lab: np.ndarray, statistic: str, trim_sd: float, keep: np.ndarray | None = None):
    """(L, a, b) of skin pixels ``lab`` (n, 3) by the chosen statistic (``keep``: the
    :func:`_kept_mask`, computed here when not given)."""
    if statistic == "median":
        return np.median(lab, axis=0)
    kept = lab[_kept_mask(lab, statistic, trim_sd) if keep is None else keep]
    return kept.mean(axis=0) if statistic == "trimmed_mean" else np.median(kept, axis=0)
