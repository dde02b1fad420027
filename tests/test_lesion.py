"""Lesion segmentation and artifact masks: phantoms with known masks, then real images."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from skinaudit import lesion as le
from skinaudit.errors import ConfigError, ImageError
from skinaudit.phantoms import PhantomSpec, make_phantom


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
    m = le.segment_lesion(ph.image)
    assert m.shape == ph.mask.shape and m.dtype == bool
    assert jaccard(m, ph.mask) > 0.85


def test_skin_bias_reaches_segmentation():
    ph = make_phantom(PhantomSpec(seed=3, size=160))
    small = le.segment_lesion(ph.image, params=le.LesionParams(skin_bias=-0.5)).sum()
    large = le.segment_lesion(ph.image, params=le.LesionParams(skin_bias=0.9)).sum()
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
    assert jaccard(le.segment_lesion(img), lesion) > 0.9
    off = le.segment_lesion(img, params=le.LesionParams(refine_contrast=float("inf")))
    assert jaccard(off, blotch) > 0.9


def test_central_lesion_beats_a_larger_off_centre_dark_region():
    # an off-centre dark blob (ink mark, shaded skin) 5x the lesion's area wins on plain
    # centre-weighted area; the squared weight (default centre_power=2) keeps the central lesion
    yy, xx = np.mgrid[0:192, 0:256]
    lesion = np.hypot(yy - 96, xx - 128) < 14
    blob = np.hypot(yy - 40, xx - 205) < 31
    img = painted((192, 256), (lesion, (120, 80, 60)), (blob, (110, 70, 60)))
    assert jaccard(le.segment_lesion(img), lesion) > 0.9
    plain = le.segment_lesion(img, params=le.LesionParams(centre_power=1))
    assert jaccard(plain, blob) > 0.9


def test_lesion_cut_by_the_frame_keeps_its_outer_pixels():
    # the closing treats the outside as skin and used to peel the 2 outer columns off a lesion
    # running off the image (working size = image size here, so no resampling blurs it)
    yy, xx = np.mgrid[0:96, 0:128]
    lesion = np.hypot(yy - 48, xx - 100) < 36
    img = painted((96, 128), (lesion, (110, 70, 50)))
    m = le.segment_lesion(img)
    assert m[:, -2:][lesion[:, -2:]].mean() > 0.95
    assert jaccard(m, lesion) > 0.99
    assert not m[:, :2].any()


def test_fill_holes_matches_scipy():
    rng = np.random.default_rng(1)
    for _ in range(20):
        m = ndi.binary_opening(rng.random((40, 50)) < 0.6)
        assert np.array_equal(le._fill_holes(m), ndi.binary_fill_holes(m))


@pytest.mark.parametrize("name,spec", [
    ("hair", dict(hair=7)), ("ink", dict(ink=True)), ("dark_corner", dict(dark_corner=True)),
    ("gel_bubble", dict(gel_bubble=3)), ("ruler", dict(ruler=True)),
])
def test_artifact_flags_match_phantom_truth(name, spec):
    ph = make_phantom(PhantomSpec(seed=4, **spec))
    masks = le.detect_artifacts(ph.image, lesion_mask=ph.mask)
    assert set(masks) == set(le.ARTIFACT_NAMES)
    assert all(m.shape == ph.mask.shape and m.dtype == bool for m in masks.values())
    flags = le.artifact_flags(masks, lesion_mask=ph.mask)
    assert flags[name]
    truth = ph.artifact_masks[name]
    # the detected pixels overlap the drawn ones
    assert np.logical_and(masks[name], truth).sum() > 0.3 * min(truth.sum(), masks[name].sum())
    clean = le.artifact_flags(le.detect_artifacts(make_phantom(PhantomSpec(seed=4)).image))
    assert not clean[name]


def test_fast_closing_matches_scipy():
    rng = np.random.default_rng(0)
    for dtype, k in ((np.uint8, 9), (np.float32, 7), (np.uint8, 3)):
        g = (rng.random((37, 52)) * 255).astype(dtype)
        ref = ndi.grey_closing(g, size=(k, k), mode="nearest") - g
        assert np.array_equal(le._blackhat(g, k), ref)


def _skin(h=450, w=600, level=200):
    rng = np.random.default_rng(1)
    return np.clip(level + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)


def test_mm_scale_joined_to_its_edge_is_a_ruler_and_a_plain_line_is_not():
    img = _skin()
    img[400:402, 100:400] = 60  # the scale's edge
    for x in range(100, 400, 6):  # 1 px ticks every 6 px, longer every 5th
        img[390 if (x - 100) % 30 else 384:400, x] = 60
    assert le._ruler_full(img, le.ArtifactParams()).any()
    plain = _skin()
    plain[400:402, 100:400] = 60
    assert not le._ruler_full(plain, le.ArtifactParams()).any()


def test_graduation_ticks_anywhere_are_a_ruler_and_scattered_marks_are_not():
    img = _skin()
    for i in range(6):  # six parallel diagonal ticks along a diagonal, like a ruler at the rim
        y0, x0 = 60 + 18 * i, 420 + 18 * i
        for t in range(22):
            img[y0 + t, x0 - t] = 70
    assert le._ruler_full(img, le.ArtifactParams()).any()
    rng = np.random.default_rng(3)
    scattered = _skin()
    for _ in range(6):
        y0, x0 = rng.integers(40, 400), rng.integers(40, 560)
        ang = rng.uniform(0, np.pi)
        for t in range(22):
            scattered[int(y0 + t * np.sin(ang)), int(x0 + t * np.cos(ang))] = 70
    assert not le._ruler_full(scattered, le.ArtifactParams()).any()


def _ticks(img, xs, y0=150, length=22, value=70):
    """Vertical 1-px ticks at columns ``xs`` (``length`` px down from row ``y0``)."""
    for x in xs:
        img[y0:y0 + length, x] = value
    return img


def test_irregular_parallel_streaks_are_not_a_ruler_and_evenly_spaced_ticks_are():
    # three parallel marks with gaps 6 and 16 px (pigment streaks, hair pieces): not a scale
    assert not le._ruler_full(_ticks(_skin(), [200, 206, 222]), le.ArtifactParams()).any()
    # four with gaps 5, 14, 30: no two consecutive gaps alike
    assert not le._ruler_full(_ticks(_skin(), [200, 205, 219, 249]), le.ArtifactParams()).any()
    # evenly spaced somewhere (a missing tick elsewhere in the group is allowed)
    assert le._ruler_full(_ticks(_skin(), [200, 210, 220]), le.ArtifactParams()).any()
    assert le._ruler_full(_ticks(_skin(), [200, 210, 220, 240]), le.ArtifactParams()).any()
    # the test disabled: any three parallel marks side by side count, as before
    loose = le.ArtifactParams(ruler_gap_ratio=float("inf"))
    assert le._ruler_full(_ticks(_skin(), [200, 206, 222]), loose).any()


def test_two_dark_ticks_at_the_border_are_a_ruler_with_edge_pairs():
    pairs = le.ArtifactParams(ruler_edge_pairs=True)
    corner = _ticks(_skin(), [40, 55], y0=0, value=40)  # two dark ticks cut off by the top edge
    assert le._ruler_full(corner, pairs).any()
    assert not le._ruler_full(corner, le.ArtifactParams()).any()  # off by default
    # the same pair away from the border, or faint (hair-like), is not a ruler
    assert not le._ruler_full(_ticks(_skin(), [40, 55], y0=150, value=40), pairs).any()
    faint = _ticks(_skin(), [40, 55], y0=0, value=int(_skin()[200, 40, 0]) - 20)
    assert not le._ruler_full(faint, pairs).any()
    with pytest.raises(ConfigError):
        le.ArtifactParams(ruler_gap_ratio=0.9)


@pytest.mark.parametrize("seed", range(3))
def test_component_labels_closure_matches_csgraph(seed):
    rng = np.random.default_rng(seed)
    adj = rng.random((50, 50)) < 0.03
    adj |= adj.T
    fast = le._component_labels(adj)                # boolean squaring (<= 64 nodes)
    sparse = le._component_labels(adj, small=0)     # scipy csgraph
    assert np.bincount(fast).max() > 1 and np.array_equal(fast, sparse)


def test_thin_camera_frame_is_not_hair():
    img = make_phantom(PhantomSpec(seed=4, size=256)).image.copy()
    img[1, :] = img[-2, :] = img[:, 1] = img[:, -2] = 90
    _wi, lesion, masks = le.analyse_masks(img)
    assert not le.artifact_flags(masks, lesion_mask=lesion)["hair"]


def _faint_strand_image(depth, size=256, seed=0):
    """Plain skin, a dark disk lesion and a 1-px hair strand ``depth`` darker than the skin (0-1
    scale) across the skin, whose first 8 px are 0.05 darker still."""
    from skimage import draw

    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3))
    img[:] = (200, 160, 140)
    img += rng.normal(0, 1.0, (size, size, 1))
    yy, xx = np.mgrid[:size, :size]
    lesion = np.hypot(yy - size / 2, xx - size / 2) < size / 5
    img[lesion] = (120, 80, 60)
    strand, seed_piece = np.zeros((size, size), bool), np.zeros((size, size), bool)
    strand[draw.line(10, 20, 60, 240)] = True
    seed_piece[draw.line(10, 20, 12, 28)] = True
    img[strand] -= depth * 255
    img[seed_piece] -= 0.05 * 255
    return np.clip(np.round(img), 0, 255).astype(np.uint8), lesion


def test_faint_strand_grown_from_a_darker_piece_is_hair():
    # black-hat 0.033: under hair_contrast (0.04) but over hair_low_contrast (0.03); only an
    # 8-px piece (shorter than hair_min_len) passes hair_contrast and seeds the strand
    img, lesion = _faint_strand_image(0.033)
    flag = le.artifact_flags(le.detect_artifacts(img, lesion_mask=lesion), lesion_mask=lesion)["hair"]
    assert flag
    off = le.ArtifactParams(hair_low_contrast=le.ArtifactParams().hair_contrast)  # the step disabled
    masks = le.detect_artifacts(img, lesion_mask=lesion, artifact_params=off)
    assert not le.artifact_flags(masks, lesion_mask=lesion, params=off)["hair"]
    img, lesion = _faint_strand_image(0.025)  # fainter than hair_low_contrast
    assert not le.artifact_flags(le.detect_artifacts(img, lesion_mask=lesion), lesion_mask=lesion)["hair"]


def test_compact_mesh_marks_on_the_skin_are_not_hair():
    # three 17-px '#' marks of 1-px dark lines on the skin (a piece of pigment network, a cluster
    # of specks): thin and long enough, but not elongated
    ph = make_phantom(PhantomSpec(seed=1, size=256))
    img = ph.image.copy()
    for y, x in ((20, 20), (20, 215), (215, 20)):
        assert not ph.mask[y - 5:y + 25, x - 5:x + 25].any()
        for o in (5, 11):
            img[y + o, x:x + 17] = (img[y + o, x:x + 17] * 0.6).astype(np.uint8)
            img[y:y + 17, x + o] = (img[y:y + 17, x + o] * 0.6).astype(np.uint8)
    masks = le.detect_artifacts(img, lesion_mask=ph.mask)
    assert not le.artifact_flags(masks, lesion_mask=ph.mask)["hair"]
    no_elong = le.ArtifactParams(hair_min_elong=0)
    masks = le.detect_artifacts(img, lesion_mask=ph.mask, artifact_params=no_elong)
    assert le.artifact_flags(masks, lesion_mask=ph.mask, params=no_elong)["hair"]


def test_flag_thresholds_reach_the_rule():
    ph = make_phantom(PhantomSpec(seed=4, ink=True))
    masks = le.detect_artifacts(ph.image, lesion_mask=ph.mask)
    assert le.artifact_flags(masks)["ink"]
    assert not le.artifact_flags(masks, params=le.ArtifactParams(ink_min_frac=0.5))["ink"]


@pytest.mark.parametrize("kw,match", [({"work_size": 8}, "work_size"), ({"hair_kernel": 4}, "hair_kernel"),
                                      ({"skin_bias": 1.5}, "skin_bias"), ({"refine_contrast": 0.5}, "refine_contrast"),
                                      ({"centre_power": -1}, "centre_power")])
def test_bad_lesion_params_raise(kw, match):
    with pytest.raises(ConfigError, match=match):
        le.LesionParams(**kw)


def test_bad_artifact_params_raise():
    with pytest.raises(ConfigError, match="hair_min_frac"):
        le.ArtifactParams(hair_min_frac=-1)
    with pytest.raises(ConfigError, match="hair_low_contrast"):
        le.ArtifactParams(hair_low_contrast=0.05)


def test_bad_inputs_raise():
    with pytest.raises(ImageError):
        le.segment_lesion(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ImageError, match="shape"):
        le.detect_artifacts(np.zeros((64, 64, 3), dtype=np.uint8), lesion_mask=np.zeros((10, 10), bool))


@pytest.mark.realdata
def test_real_isic_masks_and_flags(shared_data):
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


@pytest.mark.realdata
def test_blue_surgical_marker_on_pad_ufes20(shared_data):
    """Images checked by eye: five with blue/violet marker around the lesion, two without."""
    from skinaudit.imageio import read_image

    root = shared_data("pad-ufes20")
    cases = {"PAT_228_348_2": True, "PAT_138_206_507": True, "PAT_323_686_356": True, "PAT_894_1679_640": True,
             "PAT_816_1544_933": True, "PAT_100_393_595": False, "PAT_100_393_898": False}
    for image_id, has_ink in cases.items():
        img = read_image(root / "images" / f"{image_id}.jpg")
        _wi, lesion, masks = le.analyse_masks(img)
        assert le.artifact_flags(masks, lesion_mask=lesion)["ink"] == has_ink, image_id


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
