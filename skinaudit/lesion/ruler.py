"""Ruler detection: graduation ticks and millimetre scales, at up to ``ArtifactParams.ruler_size`` px.

Thin dark marks are found by a black-hat (square of 1.5% of the long side). A ruler is either a
group of short straight parallel marks side by side and evenly spaced somewhere (graduation
ticks, anywhere in the image: ISIC ticks follow the circular field-of-view rim at any angle), or
a straight line carrying marks that repeat with a 3-16 px period (a mm scale joined to its
edge). Lengths scale with the long side (600 px reference).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .images import resize_image, working_shape
from .morphology import black_tophat, component_labels, frame, region_moments
from .params import ArtifactParams

__all__ = ["ruler_mask"]


def ruler_mask(image: np.ndarray, ap: ArtifactParams) -> np.ndarray:
    """Ruler marks of an image, at up to ``ap.ruler_size`` px (long side).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        sRGB image.
    ap : ArtifactParams

    Returns
    -------
    ndarray, shape (h, w), bool
        At the ruler search size (:func:`~skinaudit.lesion.images.working_shape` of ``image``
        and ``ap.ruler_size``): the thin dark marks (black-hat > ``ap.tick_contrast``) that are
        graduation ticks (:func:`_regular_ticks`: evenly spaced groups, or dark pairs at the
        image border) or a straight line >= ``ap.ruler_min_len`` x the long side whose side
        marks are periodic (:func:`_comb_score` >= ``ap.ruler_min_comb``).
    """
    _, (hs, ws) = working_shape(image.shape, ap.ruler_size)
    # the rounded channel mean of the full image (resizing the grey, not RGB: 3x less work)
    g = ((image[..., 0].astype(np.uint16) + image[..., 1] + image[..., 2] + 1) // 3).astype(np.uint8)
    g = resize_image(g, (hs, ws))
    long_side = max(hs, ws)
    r = long_side / 600.0
    k = max(3, round(0.0075 * long_side) * 2 + 1)
    bh = black_tophat(g, k)
    thin = bh > ap.tick_contrast * 255
    labels, n = ndi.label(thin, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros((hs, ws), dtype=bool)
    area, my, mx, major, minor, theta, ys, xs, lab = region_moments(labels, n)
    keep = np.zeros(n + 1, dtype=bool)
    tick = (area >= max(3.0, 6 * r)) & (major >= 8 * r) & (major <= 80 * r) & (major >= 4 * minor)
    tick &= area <= max(2.0, 5 * r) * major
    tick[0] = False
    idx = np.nonzero(tick)[0]
    edge = contrast = None
    if ap.ruler_edge_pairs and idx.size:
        # marks within 5 px (at 600 px) of the image border, and their mean black-hat (0-1)
        edge = np.zeros(n + 1, dtype=bool)
        edge[labels[frame((hs, ws), int(5 * r) + 1)]] = True
        contrast = np.bincount(lab, bh[ys, xs], n + 1) / (255 * np.maximum(area, 1))
        edge, contrast = edge[idx], contrast[idx]
    keep[idx[_regular_ticks(my[idx], mx[idx], major[idx], theta[idx], ap.ruler_min_ticks, 50 * r,
                            ap.ruler_gap_ratio, 2 * r, edge, contrast, ap.ruler_pair_contrast)]] = True
    lines = np.nonzero((major >= ap.ruler_min_len * long_side) & (minor <= 0.2 * major))[0]
    lines = lines[lines > 0]
    if lines.size:
        order = np.argsort(lab, kind="stable")
        starts = np.searchsorted(lab[order], lines)
        ends = np.searchsorted(lab[order], lines, side="right")
        for c, a0, a1 in zip(lines, starts, ends):
            sel = order[a0:a1]
            yy, xx = ys[sel] - my[c], xs[sel] - mx[c]
            along = xx * np.cos(theta[c]) + yy * np.sin(theta[c])
            across = yy * np.cos(theta[c]) - xx * np.sin(theta[c])
            if _comb_score(along, across, max(1.0, 2 * r), (max(2.5, 3 * r), 16 * r)) >= ap.ruler_min_comb:
                keep[c] = True
    if not keep.any():  # no ruler (most images): skip indexing the full-size label image
        return np.zeros((hs, ws), dtype=bool)
    return keep[labels]


def _regular_ticks(my, mx, length, theta, min_ticks: int, max_gap: float, gap_ratio: float = np.inf,
                   min_gap: float = 2.0, edge=None, contrast=None, pair_contrast: float = np.inf) -> np.ndarray:
    """Indices of the marks that belong to a ruler graduation: groups of >= ``min_ticks`` short
    straight marks, each with a neighbour of the same orientation (within 12 degrees) beside
    it (offset along the mark < half its length, across it 2..``max_gap`` px), both ways.

    A group of 3 or more marks is kept only when evenly spaced somewhere: sorted by position
    across the group's mean orientation, two consecutive gaps (both >= ``min_gap`` px) within a
    factor ``gap_ratio`` of each other (``inf``: no test). A group of exactly 2 marks is also kept
    when one of them is on ``edge`` (bool per mark) and their mean ``contrast`` is >=
    ``pair_contrast`` (ticks of a scale cut off at the image border)."""
    if len(my) < min(min_ticks, 2 if edge is not None else min_ticks):
        return np.zeros(0, dtype=int)
    u0, u1 = np.cos(theta), np.sin(theta)
    dx, dy = mx[None, :] - mx[:, None], my[None, :] - my[:, None]
    along = np.abs(dx * u0[:, None] + dy * u1[:, None])
    across = np.abs(dy * u0[:, None] - dx * u1[:, None])
    dth = np.abs((theta[:, None] - theta[None, :] + np.pi / 2) % np.pi - np.pi / 2)
    adj = (dth < np.radians(12)) & (along < 0.5 * np.maximum(length[:, None], length[None, :]))
    adj &= (across > 2) & (across < max_gap)
    adj &= adj.T
    lab = component_labels(adj)
    size = np.bincount(lab, minlength=len(lab))
    keep = np.zeros(len(lab), dtype=bool)
    for c in np.nonzero(size >= 2)[0]:
        m = np.nonzero(lab == c)[0]
        if len(m) >= max(min_ticks, 3) and np.isfinite(gap_ratio):
            # positions across the group's mean orientation (angles doubled: 0 and pi agree)
            z = np.exp(2j * theta[m]).sum()
            a = np.angle(z) / 2
            gaps = np.diff(np.sort(my[m] * np.cos(a) - mx[m] * np.sin(a)))
            lo, hi = np.minimum(gaps[:-1], gaps[1:]), np.maximum(gaps[:-1], gaps[1:])
            keep[m] = bool(((hi <= gap_ratio * lo) & (lo >= min_gap)).any())
        elif len(m) >= min_ticks:
            keep[m] = True
        elif len(m) == 2 and edge is not None and edge[m].any() and contrast[m].mean() >= pair_contrast:
            keep[m] = True
    return np.nonzero(keep)[0]


def _comb_score(a: np.ndarray, p: np.ndarray, off: float, periods: tuple[float, float]) -> float:
    """Periodicity of the marks hanging off a straight line (a ruler's mm graduation joined to
    its edge): pixels more than ``off`` px from the line's median offset, counted per px along
    it; the strongest power at a period in ``periods`` over the mean power."""
    side = np.abs(p - np.median(p)) > off
    if side.sum() < 10:
        return 0.0
    hist = np.bincount((a[side] - a.min()).astype(int), minlength=int(np.ptp(a)) + 1).astype(float)
    spec = np.abs(np.fft.rfft(hist - hist.mean())) ** 2
    freq = np.fft.rfftfreq(hist.size)
    band = (freq >= 1 / periods[1]) & (freq <= 1 / periods[0])
    if not band.any() or spec[1:].mean() <= 0:
        return 0.0
    return float(spec[band].max() / spec[1:].mean())
