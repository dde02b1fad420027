"""Image and mask reading: every file mode converts or fails with a reason naming the file."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from skinaudit import imageio
from skinaudit.errors import ImageError
from skinaudit.imageio import read_image, read_mask


def _rgb(h=48, w=64):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "LA", "I;16"])
def test_modes_convert_to_rgb(tmp_path, mode):
    base = Image.fromarray(_rgb())
    if mode == "I;16":
        arr = (np.linspace(0, 65535, 48 * 64).reshape(48, 64)).astype(np.uint16)
        img = Image.fromarray(arr)  # uint16 -> mode I;16
        path = tmp_path / "x16.png"
    else:
        img = base.convert(mode)
        path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    img.save(path)
    out = read_image(path)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    if mode == "I;16":  # 16-bit scaled to 8-bit, not clipped to white
        assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and 100 < out[24, 32, 0] < 160


def test_rgba_transparent_pixels_become_white(tmp_path):
    arr = np.zeros((40, 40, 4), np.uint8)
    arr[..., 3] = 0
    Image.fromarray(arr, "RGBA").save(tmp_path / "t.png")
    assert read_image(tmp_path / "t.png").min() == 255


def test_exif_orientation_applied(tmp_path):
    img = Image.fromarray(_rgb(40, 80))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (80, 40, 3)


def test_bad_files_raise_with_path(tmp_path):
    cases = {}
    (tmp_path / "zero.jpg").write_bytes(b"")
    cases["zero.jpg"] = "empty"
    (tmp_path / "text.jpg").write_text("this is not an image")
    cases["text.jpg"] = "not a readable image"
    buf = io.BytesIO()
    Image.fromarray(_rgb(200, 200)).save(buf, format="JPEG")
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cases["trunc.jpg"] = "corrupt or truncated"
    Image.fromarray(_rgb(20, 20)).save(tmp_path / "tiny.png")
    cases["tiny.png"] = "smaller than the 32 px minimum"
    cases["missing.png"] = "file not found"
    for name, reason in cases.items():
        with pytest.raises(ImageError, match=reason) as err:
            read_image(tmp_path / name)
        assert name in str(err.value)


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    Image.fromarray(_rgb(100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(imageio, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(ImageError, match="decompression bomb"):
        read_image(tmp_path / "big.png")


def test_masks(tmp_path):
    m = np.zeros((48, 64), np.uint8)
    m[10:20, 10:30] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png", shape=(48, 64))
    assert mask.dtype == bool and mask.sum() == 200
    Image.fromarray((m > 0).astype(np.uint8)).save(tmp_path / "m01.png")  # 0/1 masks
    assert read_mask(tmp_path / "m01.png").sum() == 200
    with pytest.raises(ImageError, match="mask is 64x48 px but its image is 32x32 px"):
        read_mask(tmp_path / "m.png", shape=(32, 32))
    assert read_mask(tmp_path / "m.png").shape == (48, 64)
    assert imageio.mask_is_binary(tmp_path / "m.png")
    soft = m.copy()
    soft[10, 10:30] = 128
    Image.fromarray(soft).save(tmp_path / "soft.png")
    assert not imageio.mask_is_binary(tmp_path / "soft.png")


@pytest.mark.realdata
def test_real_image_and_mask(shared_data):
    root = shared_data("isic-uda1")
    img = read_image(root / "images" / "ISIC_0000000.jpg")
    mask = read_mask(root / "masks" / "ISIC_0000000_segmentation.png", shape=img.shape)
    assert img.ndim == 3 and 0.01 < mask.mean() < 0.9


def test_truncated_image_refused_even_after_weasyprint_import(tmp_path):
    pytest.importorskip("weasyprint")
    import weasyprint  # noqa: F401  (sets PIL's LOAD_TRUNCATED_IMAGES = True globally)

    buf = io.BytesIO()
    Image.fromarray(_rgb(200, 200)).save(buf, format="JPEG")
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated"):
        read_image(tmp_path / "trunc.jpg")
