"""Ruler detection on drawn graduations and scales, then real images."""
from __future__ import annotations

import numpy as np
import pytest

from skinaudit import lesion as le
from skinaudit.errors import ConfigError
from skinaudit.lesion.ruler import ruler_mask


def _skin(h=450, w=600, level=200):
    rng = np.random.default_rng(1)
    return np.clip(level + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)


def _ticks(img, xs, y0=150, length=22, value=70):
    """Vertical 1-px ticks at columns ``xs`` (``length`` px down from row ``y0``)."""
    for x in xs:
        img[y0:y0 + length, x] = value
    return img


def test_mm_scale_joined_to_its_edge_is_a_ruler_and_a_plain_line_is_not():
    img = _skin()
    img[400:402, 100:400] = 60  # the scale's edge
    for x in range(100, 400, 6):  # 1 px ticks every 6 px, longer every 5th
        img[390 if (x - 100) % 30 else 384:400, x] = 60
    assert ruler_mask(img, le.ArtifactParams()).any()
    plain = _skin()
    plain[400:402, 100:400] = 60
    assert not ruler_mask(plain, le.ArtifactParams()).any()


def test_graduation_ticks_anywhere_are_a_ruler_and_scattered_marks_are_not():
    img = _skin()
    for i in range(6):  # six parallel diagonal ticks along a diagonal, like a ruler at the rim
        y0, x0 = 60 + 18 * i, 420 + 18 * i
        for t in range(22):
            img[y0 + t, x0 - t] = 70
    assert ruler_mask(img, le.ArtifactParams()).any()
    rng = np.random.default_rng(3)
    scattered = _skin()
    for _ in range(6):
        y0, x0 = rng.integers(40, 400), rng.integers(40, 560)
        ang = rng.uniform(0, np.pi)
        for t in range(22):
            scattered[int(y0 + t * np.sin(ang)), int(x0 + t * np.cos(ang))] = 70
    assert not ruler_mask(scattered, le.ArtifactParams()).any()


def test_irregular_parallel_streaks_are_not_a_ruler_and_evenly_spaced_ticks_are():
    # three parallel marks with gaps 6 and 16 px (pigment streaks, hair pieces): not a scale
    assert not ruler_mask(_ticks(_skin(), [200, 206, 222]), le.ArtifactParams()).any()
    # four with gaps 5, 14, 30: no two consecutive gaps alike
    assert not ruler_mask(_ticks(_skin(), [200, 205, 219, 249]), le.ArtifactParams()).any()
    # evenly spaced somewhere (a missing tick elsewhere in the group is allowed)
    assert ruler_mask(_ticks(_skin(), [200, 210, 220]), le.ArtifactParams()).any()
    assert ruler_mask(_ticks(_skin(), [200, 210, 220, 240]), le.ArtifactParams()).any()
    # the test disabled: any three parallel marks side by side count, as before
    loose = le.ArtifactParams(ruler_gap_ratio=float("inf"))
    assert ruler_mask(_ticks(_skin(), [200, 206, 222]), loose).any()


def test_two_dark_ticks_at_the_border_are_a_ruler_with_edge_pairs():
    pairs = le.ArtifactParams(ruler_edge_pairs=True)
    corner = _ticks(_skin(), [40, 55], y0=0, value=40)  # two dark ticks cut off by the top edge
    assert ruler_mask(corner, pairs).any()
    assert not ruler_mask(corner, le.ArtifactParams()).any()  # off by default
    # the same pair away from the border, or faint (hair-like), is not a ruler
    assert not ruler_mask(_ticks(_skin(), [40, 55], y0=150, value=40), pairs).any()
    faint = _ticks(_skin(), [40, 55], y0=0, value=int(_skin()[200, 40, 0]) - 20)
    assert not ruler_mask(faint, pairs).any()
    with pytest.raises(ConfigError):
        le.ArtifactParams(ruler_gap_ratio=0.9)


def test_ruler_mask_is_at_the_search_size():
    img = _ticks(_skin(900, 1200), [400, 420, 440], length=44)
    m = ruler_mask(img, le.ArtifactParams())
    assert m.shape == (480, 640) and m.dtype == bool and m.any()


@pytest.mark.realdata
def test_rulers_on_isic_uda1(shared_data):
    """Rulers checked by eye: graduation ticks at the field-of-view rim (0283, 0098, 0420) and mm
    scales joined to their edge (0492, 0536); three images without one."""
    from skinaudit.imageio import read_image

    root = shared_data("isic-uda1")
    cases = {"ISIC_0000283": True, "ISIC_0000098": True, "ISIC_0000420": True, "ISIC_0000492": True,
             "ISIC_0000536": True, "ISIC_0000001": False, "ISIC_0000013": False, "ISIC_0000022": False}
    for image_id, has_ruler in cases.items():
        img = read_image(root / "images" / f"{image_id}.jpg")
        _wi, lesion, masks = le.analyse_masks(img)
        assert le.artifact_flags(masks, lesion_mask=lesion)["ruler"] == has_ruler, image_id
