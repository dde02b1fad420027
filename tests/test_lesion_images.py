"""Image helpers of the lesion package: input check, resampling, mask resizing, colour reductions."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import color

from skinaudit.errors import ImageError
from skinaudit.lesion import images as im


def test_validate_image_accepts_uint8_and_unit_floats():
    a = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    assert im.validate_image(a) is a
    f = a / 255.0
    assert np.array_equal(im.validate_image(f), a)
    assert im.validate_image(f.astype(np.float32)).dtype == np.uint8


@pytest.mark.parametrize("arr,match", [
    (np.zeros((10, 10), np.uint8), "expected an .H, W, 3. RGB array"),
    (np.zeros((10, 10, 4), np.uint8), "got shape"),
    (np.zeros((7, 10, 3), np.uint8), "10x7 px, too small"),
    (np.zeros((10, 10, 3), np.int16), "expected a uint8 array"),
    (np.full((10, 10, 3), 2.0), "floats in .0, 1."),
])
def test_validate_image_refuses(arr, match):
    with pytest.raises(ImageError, match=match):
        im.validate_image(arr)


def test_resize_mask():
    m = np.zeros((40, 60), bool)
    m[10:30, 20:40] = True
    same = im.resize_mask(m, (40, 60))
    assert np.array_equal(same, m) and same is not m
    up = im.resize_mask(m, (80, 120))
    assert up.shape == (80, 120) and up.dtype == bool and up[20:60, 40:80].all() and up.sum() == 4 * m.sum()
    # the all-False shortcut gives what resampling would
    assert not im.resize_mask(np.zeros((40, 60), bool), (13, 17)).any()
    # a 1-px line survives a conservative shrink, not a plain one
    line = np.zeros((40, 60), bool)
    line[:, 31] = True
    assert im.resize_mask(line, (10, 15), conservative=True).any()
    assert not im.resize_mask(line, (10, 15)).any()


@pytest.mark.parametrize("shape,long_side,expected", [
    ((450, 600), 128, (96, 128)), ((600, 450), 128, (128, 96)), ((100, 90), 128, (100, 90)),
    ((2000, 10), 128, (128, 8)), ((9, 9), 256, (9, 9)),
])
def test_working_shape(shape, long_side, expected):
    s, hw = im.working_shape(shape, long_side)
    assert hw == expected and s <= 1


def test_resize_image():
    a = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert im.resize_image(a, (30, 40)) is a
    box = im.resize_image(a, (15, 20))
    assert box.shape == (15, 20, 3) and abs(int(box[0, 0, 0]) - a[:2, :2, 0].mean()) <= 1
    near = im.resize_image(a, (15, 20), nearest=True)
    assert np.isin(near[..., 0], a[..., 0]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channel_mean_equals_numpy_mean(dtype):
    a = np.random.default_rng(2).random((31, 17, 3)).astype(dtype)
    out = im.channel_mean(a)
    ref = a.mean(axis=2)
    assert out.dtype == ref.dtype and np.array_equal(out, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hsv_equals_skimage(dtype):
    rng = np.random.default_rng(3)
    rgb = rng.random((40, 50, 3)).astype(dtype)
    rgb[0, :6] = [(0, 0, 0), (1, 1, 1), (0.5, 0.5, 0.5), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    rgb[1, :3] = [(1, 0, 1), (0.2, 0.2, 0.6), (0.6, 0.2, 0.2)]
    value, sat, hue = im.hsv(rgb)
    ref = color.rgb2hsv(rgb)
    assert value.dtype == sat.dtype == hue.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert np.allclose(value, ref[..., 2], rtol=0, atol=tol)
    assert np.allclose(sat, ref[..., 1], rtol=0, atol=tol)
    dh = (hue - ref[..., 0] * 360 + 180) % 360 - 180  # degrees, circular
    assert np.abs(dh).max() < 1e4 * tol and (hue >= 0).all() and (hue < 360).all()
    assert hue[0, 0] == hue[0, 1] == hue[0, 2] == 0 and sat[0, 0] == 0
    assert np.allclose(hue[0, 3:6], (0, 120, 240)) and np.isclose(hue[1, 0], 300)
