"""The training folder (isic2018-task1-train-256) loaded once into uint8 arrays, and the
deterministic train/validation split.

Split: an image is in the validation split when the first byte of SHA-1 of its id, taken mod 100,
is below ``val_percent`` (15 by default): stable across machines and independent of file order.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .preprocess import art_input

__all__ = ["FLAGS", "is_validation", "load_folder"]

#: the artifact flags of artifacts.csv (Bissoto et al.), in the order of the detector's outputs
FLAGS = ("hair", "ruler", "ink", "dark_corner", "gel_bubble", "gel_border", "patches")


def is_validation(image_id: str, val_percent: int = 15) -> bool:
    """True when ``image_id`` belongs to the validation split (module docstring)."""
    h = hashlib.sha1(image_id.encode()).digest()
    return int.from_bytes(h[:4], "big") % 100 < val_percent


def load_folder(root, *, seg_store: int = 192, art_shape=(192, 256)) -> dict:
    """Every image of ``root`` (images/<id>.jpg, masks/<id>_segmentation.png, artifacts.csv).

    Returns
    -------
    dict with ``ids`` (list of str), ``seg_images`` (N, s, s, 3) uint8 and ``seg_masks`` (N, s, s)
    uint8 0-255 at ``s = seg_store`` (squashed, bilinear), ``art_images`` (N, h, w, 3) uint8
    (landscape, ``art_shape``), ``flags`` (N, len(FLAGS)) float32 and ``val`` (N,) bool.
    """
    root = Path(root)
    table = pd.read_csv(root / "artifacts.csv").set_index("isic_id")
    ids = sorted(table.index)
    n = len(ids)
    seg_images = np.zeros((n, seg_store, seg_store, 3), np.uint8)
    seg_masks = np.zeros((n, seg_store, seg_store), np.uint8)
    art_images = np.zeros((n, art_shape[0], art_shape[1], 3), np.uint8)
    for k, i in enumerate(ids):
        img = Image.open(root / "images" / f"{i}.jpg").convert("RGB")
        m = Image.open(root / "masks" / f"{i}_segmentation.png").convert("L")
        seg_images[k] = np.asarray(img.resize((seg_store, seg_store), Image.BILINEAR))
        seg_masks[k] = np.asarray(m.resize((seg_store, seg_store), Image.BILINEAR))
        art_images[k] = art_input(np.asarray(img), art_shape)
    flags = table.loc[ids, list(FLAGS)].to_numpy().astype(np.float32)
    val = np.array([is_validation(i) for i in ids])
    return {"ids": ids, "seg_images": seg_images, "seg_masks": seg_masks, "art_images": art_images,
            "flags": flags, "val": val}
