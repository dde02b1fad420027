"""Reading images and lesion masks safely.

Every image becomes an ``(H, W, 3)`` ``uint8`` sRGB array, whatever its file mode
(grayscale, palette, RGBA, CMYK, 16-bit) and EXIF orientation; every mask becomes an
``(H, W)`` ``bool`` array (True = lesion). Anything that cannot be read raises
:class:`~skinaudit.errors.ImageError` naming the file and the problem, so the caller can
flag that one image and carry on.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError

__all__ = ["read_image", "read_mask", "file_sha256", "MIN_IMAGE_SIDE", "MAX_IMAGE_PIXELS"]

#: Images with a side shorter than this are rejected: no meaningful skin sample or CAM.
MIN_IMAGE_SIDE = 32
#: Refuse images larger than this many pixels (decompression-bomb guard; 100 MP). Pillow's own
#: guard (``PIL.Image.MAX_IMAGE_PIXELS``, about 89.5 MP: a warning, an error at twice that) is
#: not the limit: its warning is ignored here and this one applies, read from the header
#: before any pixel is decoded.
MAX_IMAGE_PIXELS = 100_000_000


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _open(path: Path) -> Image.Image:
    try:
        if not path.is_file():
            raise ImageError(path, "file not found")
        empty = path.stat().st_size == 0
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the OS, no access to a folder
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ImageError(path, f"not a usable path ({reason})") from None
    if empty:
        raise ImageError(path, "file is empty (0 bytes)")
    img = None
    try:
        with warnings.catch_warnings():
            # PIL's warnings about damaged metadata are noise here: the file either decodes or is
            # reported. Its decompression-bomb warning comes below our documented limit, which is
            # checked on the header just after opening.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageError(
                    path, f"image is {w}x{h} = {w * h:,} pixels, over the {MAX_IMAGE_PIXELS:,}-pixel limit "
                    "(possible decompression bomb)")
            # WeasyPrint sets PIL's global LOAD_TRUNCATED_IMAGES = True when imported; a truncated
            # dermoscopy image must still be reported, so load with the flag off.
            saved = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                img.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = saved
    except BaseException as exc:
        if img is not None:
            img.close()
        if isinstance(exc, ImageError):
            raise
        if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise ImageError(path, f"over the {MAX_IMAGE_PIXELS:,}-pixel limit, refused as a possible "
                                   f"decompression bomb ({exc})") from None
        if isinstance(exc, OSError) and exc.errno is not None:  # the OS refused the read (permissions...)
            raise ImageError(path, f"cannot read the file ({exc.strerror})") from None
        if isinstance(exc, UnidentifiedImageError):
            raise ImageError(path, "not a readable image (unknown or corrupt format)") from None
        if isinstance(exc, Exception):  # decoders raise many types on damaged data
            raise ImageError(path, f"corrupt or truncated image ({type(exc).__name__}: {exc})") from None
        raise
    return img


def _to_rgb_array(img: Image.Image, path: Path) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite transparent pixels on white instead of exposing undefined colours.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    rgb = img.convert("RGB")
    return np.asarray(rgb, dtype=np.uint8).copy()


def read_image(path) -> np.ndarray:
    """Read an image file as an sRGB ``(H, W, 3)`` ``uint8`` array.

    EXIF orientation is applied; grayscale, palette, RGBA (composited on white), CMYK and
    16-bit images are converted. Raises :class:`ImageError` for missing, empty, corrupt,
    non-image, oversized (over :data:`MAX_IMAGE_PIXELS`) or tiny (side under
    :data:`MIN_IMAGE_SIDE`) files.
    """
    path = Path(path)
    with _open(path) as img:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                oriented = ImageOps.exif_transpose(img)
        except Exception as exc:  # malformed EXIF must not kill the audit  # noqa: BLE001
            raise ImageError(path, f"unreadable EXIF orientation ({exc})") from None
        try:
            arr = _to_rgb_array(oriented, path)
        except Exception as exc:  # noqa: BLE001 - unusual modes that PIL cannot convert
            raise ImageError(path, f"cannot convert image mode {oriented.mode!r} to RGB ({exc})") from None
    h, w = arr.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ImageError(path, f"image is {w}x{h} px, smaller than the {MIN_IMAGE_SIDE} px minimum")
    return arr


def read_mask(path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a lesion mask as an ``(H, W)`` ``bool`` array (True = lesion).

    Accepts 0/255 or 0/1 masks in any mode (the first channel of colour masks, alpha
    ignored). Values strictly between 0 and the maximum (anti-aliased or JPEG masks) are
    binarised at half the maximum. ``shape`` is the image's ``(H, W)``; a mismatch raises
    :class:`ImageError`.
    """
    path = Path(path)
    with _open(path) as img:
        arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    arr = arr.astype(np.float64)
    top = arr.max(initial=0)
    mask = arr > (top / 2.0) if top > 0 else np.zeros(arr.shape, dtype=bool)
    if shape is not None and tuple(mask.shape) != tuple(shape[:2]):
        raise ImageError(
            path, f"mask is {mask.shape[1]}x{mask.shape[0]} px but its image is {shape[1]}x{shape[0]} px")
    return mask


def mask_is_binary(path) -> bool:
    """True when a mask file holds only two values (0 and one other)."""
    with _open(Path(path)) as img:
        arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return np.unique(arr).size <= 2
