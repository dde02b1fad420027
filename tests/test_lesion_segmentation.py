"""Lesion segmentation: phantoms and painted images with known masks, then real images."""
from __future__ import annotations

import numpy as np
import pytest

from skinaudit import lesion as le
from skinaudit.errors import ImageError
from skinaudit.phantoms import PhantomSpec, make_phantom


#: the classical method's own tests pin it (the default is the learned U-Net when torch is
#: installed, tests/test_learned.py)
CLASSICAL = le.LesionParams(segmenter="classical")


def classical(**kw):
    return le.LesionParams(segmenter="classical", **kw)


def jaccard(a, b):
    u = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / u if u else 1.0


def painted(shape, *regions, skin=(200, 160, 140), seed=0):
    """A uint8 skin-coloured image with each (mask, RGB) region painted in, plus noise (SD 3)."""
    img = np.empty((*shape, 3))
    img[:] = skin
    for mask, rgb in regions:
        img[mask] = rgb
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed", range(4))
def test_segmentation_recovers_phantom_lesions(seed):
    ph = make_phantom(PhantomSpec(seed=seed, hair=5, dark_corner=True))
    m = le.segment_lesion(ph.image, params=CLASSICAL)
    assert m.shape == ph.mask.shape and m.dtype == bool
    assert jaccard(m, ph.mask) > 0.85


def test_skin_bias_reaches_segmentation():
    ph = make_phantom(PhantomSpec(seed=3, size=160))
    small = le.segment_lesion(ph.image, params=classical(skin_bias=-0.5)).sum()
    large = le.segment_lesion(ph.image, params=classical(skin_bias=0.9)).sum()
    assert large > small


def test_small_dark_lesion_inside_a_darker_skin_blotch_is_refined():
    # the global Otsu threshold separates light skin from a darker skin blotch; the chosen
    # region is the blotch, whose own Otsu split gives the small lesion with twice its contrast
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    img = np.empty((96, 128, 3))
    img[:] = (0.86, 0.68, 0.62)
    blotch = ((yy - 48) / 30) ** 2 + ((xx - 60) / 42) ** 2 + 0.15 * np.sin(xx / 4.0) * np.cos(yy / 5.0) < 1
    img[blotch] = (0.80, 0.60, 0.52)
    lesion = (yy - 46) ** 2 + (xx - 66) ** 2 < 7 ** 2
    img[lesion] = (0.45, 0.28, 0.20)
    img = (np.clip(img + rng.normal(0, 0.015, img.shape), 0, 1) * 255).astype(np.uint8)
    assert jaccard(le.segment_lesion(img, params=CLASSICAL), lesion) > 0.9
    off = le.segment_lesion(img, params=classical(refine_contrast=float("inf")))
    assert jaccard(off, blotch) > 0.9


def test_central_lesion_beats_a_larger_off_centre_dark_region():
    # an off-centre dark blob (ink mark, shaded skin) 5x the lesion's area wins on plain
    # centre-weighted area; the squared weight (default centre_power=2) keeps the central lesion
    yy, xx = np.mgrid[0:192, 0:256]
    lesion = np.hypot(yy - 96, xx - 128) < 14
    blob = np.hypot(yy - 40, xx - 205) < 31
    img = painted((192, 256), (lesion, (120, 80, 60)), (blob, (110, 70, 60)))
    assert jaccard(le.segment_lesion(img, params=CLASSICAL), lesion) > 0.9
    plain = le.segment_lesion(img, params=classical(centre_power=1))
    assert jaccard(plain, blob) > 0.9


def test_lesion_cut_by_the_frame_keeps_its_outer_pixels():
    # the closing treats the outside as skin and used to peel the 2 outer columns off a lesion
    # running off the image (working size = image size here, so no resampling blurs it)
    yy, xx = np.mgrid[0:96, 0:128]
    lesion = np.hypot(yy - 48, xx - 100) < 36
    img = painted((96, 128), (lesion, (110, 70, 50)))
    m = le.segment_lesion(img, params=CLASSICAL)
    assert m[:, -2:][lesion[:, -2:]].mean() > 0.95
    assert jaccard(m, lesion) > 0.99
    assert not m[:, :2].any()


def test_bad_inputs_raise():
    with pytest.raises(ImageError):
        le.segment_lesion(np.zeros((4, 4, 3), dtype=np.uint8))


@pytest.mark.realdata
def test_real_isic_masks_and_flags(shared_data):
    import pandas as pd

    from skinaudit import skintone as st
    from skinaudit.imageio import read_image, read_mask

    root = shared_data("isic-uda1")
    art = pd.read_csv(root / "artifacts.csv").set_index("isic_id")
    ids = ["ISIC_0000001", "ISIC_0000004", "ISIC_0000006", "ISIC_0000013", "ISIC_0000019", "ISIC_0000022"]
    scores = []
    for i in ids:
        img = read_image(root / "images" / f"{i}.jpg")
        truth = read_mask(root / "masks" / f"{i}_segmentation.png", shape=img.shape[:2])
        scores.append(jaccard(le.segment_lesion(img), truth))
        row = st.analyse_image(img)
        assert np.isnan(row["ita"]) or -60 <= row["ita"] <= 75
        if i in art.index:
            assert row["dark_corner"] == bool(art.loc[i, "dark_corner"])
    assert np.mean(scores) > 0.7
