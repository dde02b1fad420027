"""The skin sample (skinaudit.skintone.sample.skin_mask): pixel counts known in advance."""
from __future__ import annotations

import numpy as np

from skinaudit import skintone as st


def test_no_lesion_keeps_every_pixel_but_the_dilated_artifacts():
    lesion = np.zeros((40, 40), dtype=bool)
    hair = np.zeros((40, 40), dtype=bool)
    hair[20, 20] = True
    skin = st.skin_mask(lesion, {"hair": hair})
    assert skin.sum() == 40 * 40 - 5  # the pixel and its 4 neighbours (one dilation, cross element)
    none = st.skin_mask(lesion, {"hair": hair}, params=st.ItaParams(artifact_margin=0))
    assert none.sum() == 40 * 40 - 1


def test_border_frame_width():
    lesion = np.zeros((60, 60), dtype=bool)
    frame = st.skin_mask(lesion, {}, params=st.ItaParams(method="border", border_width=0.1))
    assert frame.sum() == 60 * 60 - 48 * 48 and not frame[6:54, 6:54].any()


def test_margin_grows_with_the_lesion_and_shrinks_only_when_asked():
    yy, xx = np.mgrid[:100, :100]
    lesion = (yy - 50) ** 2 + (xx - 50) ** 2 < 45 ** 2  # fills most of the frame
    p = dict(lesion_margin=0.05, lesion_margin_radius=0.5, min_skin_fraction=0.03)
    shrunk = st.skin_mask(lesion, {}, params=st.ItaParams(**p))
    full = st.skin_mask(lesion, {}, params=st.ItaParams(skin_margin="full", **p))
    assert shrunk.sum() >= 2 * 0.03 * 100 * 100 > full.sum()
    assert not (shrunk & lesion).any() and not (full & lesion).any()
