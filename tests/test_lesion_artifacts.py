"""Artifact masks and flags: phantoms with known artifacts, drawn marks, then real images."""
from __future__ import annotations

import numpy as np
import pytest

from skinaudit import lesion as le
from skinaudit.errors import ImageError
from skinaudit.phantoms import PhantomSpec, make_phantom


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


def test_analyse_masks_shapes_and_given_mask():
    ph = make_phantom(PhantomSpec(seed=2, size=200))
    wi, lesion, masks = le.analyse_masks(ph.image, lesion_mask=ph.mask)
    small = wi.raw.shape[:2]
    assert tuple(masks) == le.ARTIFACT_NAMES
    assert lesion.shape == small and all(m.shape == small and m.dtype == bool for m in masks.values())
    assert np.array_equal(lesion, le.resize_mask(ph.mask, small, conservative=True))


def test_bad_inputs_raise():
    with pytest.raises(ImageError, match="shape"):
        le.detect_artifacts(np.zeros((64, 64, 3), dtype=np.uint8), lesion_mask=np.zeros((10, 10), bool))


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
