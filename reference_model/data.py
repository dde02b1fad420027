"""Training data: labels, lesion-grouped folds, an in-memory image cache, augmentations.

Labels come from :func:`skinaudit.data.load_isic` (ISIC 2018 Task 3 one-hot CSV or the
HAM10000 metadata CSV). Images are decoded once with :func:`skinaudit.imageio.read_image`
and squashed to ``size x size`` with PIL's bilinear filter, exactly as
:class:`skinaudit.models.Preprocess` does at audit time, then kept as one ``uint8`` tensor
``(N, 3, size, size)`` (5,984 images at 128 px: 294 MB; at 299 px: 1.6 GB).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skinaudit.errors import ConfigError, DataError
from skinaudit.models import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["make_folds", "lesion_leakage", "load_images", "ImageTensorDataset", "training_transform",
           "normalize", "resize_like_audit"]

log = logging.getLogger(__name__)


def make_folds(labels, groups=None, *, n_splits: int = 3, split: str = "grouped", random_state: int = 42):
    """Assign each image to one of ``n_splits`` validation folds.

    Parameters
    ----------
    labels : array (n,) of {0, 1}
        Binary labels (1 = malignant); every fold keeps about the same malignant share.
    groups : array (n,) of str, optional
        Lesion ids (HAM10000 ``lesion_id``). Required for ``split="grouped"``.
    n_splits : int
        Number of folds (paper: 3).
    split : {"grouped", "stratified"}
        ``grouped``: :class:`sklearn.model_selection.StratifiedGroupKFold` on ``groups``, so
        no lesion has images in two folds; ``stratified``: the paper's
        :class:`~sklearn.model_selection.StratifiedKFold`, blind to lesions.
    random_state : int
        Seed of the shuffle.

    Returns
    -------
    folds : ndarray (n,) of int
        Fold index in ``[0, n_splits)``; fold ``k`` is the validation set of model ``k``.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(labels).astype(int)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise DataError("labels must be a 1-D array of 0 (benign) and 1 (malignant)")
    counts = np.bincount(y, minlength=2)
    if counts.min() < n_splits:
        raise DataError(f"each class needs at least n_splits={n_splits} images to make stratified folds; "
                        f"got {counts[0]} benign and {counts[1]} malignant")
    folds = np.full(len(y), -1, dtype=int)
    if split == "grouped":
        if groups is None:
            raise ConfigError("grouped folds need lesion ids (the HAM10000 metadata CSV has 'lesion_id'); "
                              "pass that CSV as --labels, or choose the paper's ungrouped split with "
                              "--split stratified")
        g = np.asarray(groups).astype(str)
        if g.shape != y.shape:
            raise DataError(f"groups must have one lesion id per image; got {g.shape} for {y.shape} labels")
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        parts = splitter.split(np.zeros(len(y)), y, g)
    elif split == "stratified":
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
        parts = splitter.split(np.zeros(len(y)), y)
    else:
        raise ConfigError(f"the 'split' parameter must be 'grouped' or 'stratified'; got {split!r}")
    for k, (_, val) in enumerate(parts):
        folds[val] = k
    assert (folds >= 0).all()
    return folds


def lesion_leakage(groups, folds) -> dict:
    """How many lesions have images in more than one fold (train/validation leakage).

    Parameters
    ----------
    groups : array (n,) of str
        Lesion id of each image.
    folds : array (n,) of int
        Fold of each image (from :func:`make_folds`).

    Returns
    -------
    dict
        ``n_images``, ``n_lesions``, ``n_multi_image_lesions`` (lesions with >= 2 images:
        the only ones that can leak), ``n_leaking_lesions`` (lesions in >= 2 folds),
        ``n_leaking_images`` (their images), ``leaking_image_share`` (= n_leaking_images /
        n_images).
    """
    df = pd.DataFrame({"g": np.asarray(groups).astype(str), "f": np.asarray(folds)})
    if len(df) == 0:
        raise DataError("lesion_leakage needs at least one image")
    per = df.groupby("g")["f"].agg(["size", "nunique"])
    leaking = per[per["nunique"] > 1]
    return {"n_images": int(len(df)), "n_lesions": int(len(per)),
            "n_multi_image_lesions": int((per["size"] > 1).sum()),
            "n_leaking_lesions": int(len(leaking)), "n_leaking_images": int(leaking["size"].sum()),
            "leaking_image_share": float(leaking["size"].sum() / len(df))}


def resize_like_audit(image: np.ndarray, size: int) -> np.ndarray:
    """Squash an ``(H, W, 3) uint8`` image to ``(size, size, 3)`` with PIL bilinear.

    The same operation as :class:`skinaudit.models.Preprocess` (before normalisation), so
    a model trained on these pixels sees the same input at audit time.
    """
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def load_images(paths, *, size: int, progress=None):
    """Decode and resize every image once into a ``uint8`` tensor ``(N, 3, size, size)``.

    Uses :func:`skinaudit.imageio.read_image` (EXIF, modes, decompression-bomb guard) and
    :func:`resize_like_audit`. Raises :class:`~skinaudit.errors.ImageError` on the first
    unreadable file (training data must be clean). ``progress`` is an optional
    ``progress(iterable, total=, desc=)`` wrapper.
    """
    import torch

    from skinaudit.imageio import read_image

    paths = list(paths)
    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    it = enumerate(paths)
    if progress is not None:
        it = progress(it, total=len(paths), desc=f"decoding images @{size}px")
    for i, p in it:
        out[i] = torch.from_numpy(resize_like_audit(read_image(p), size).transpose(2, 0, 1).copy())
    return out


def normalize(x_uint8):
    """``uint8 (N, 3, H, W)`` -> float32 scaled to [0, 1] and ImageNet-normalised."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x_uint8.device).view(-1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x_uint8.device).view(-1, 3, 1, 1)
    x = x_uint8.float().div_(255.0)
    return (x - mean) / std


def training_transform(config):
    """The training augmentation of one ``uint8 (3, H, W)`` image tensor (torchvision v2).

    Random rotation (+-``rotation_degrees``), horizontal and vertical flips (p = 0.5 each),
    colour jitter (brightness, contrast, saturation = ``jitter``; hue = ``jitter / 4``),
    then scaling to [0, 1], ImageNet normalisation and random erasing (p = ``erasing_p``).
    Validation and test images are only normalised (:func:`normalize`).
    """
    import torch
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomRotation(config.rotation_degrees),
        v2.RandomHorizontalFlip(0.5),
        v2.RandomVerticalFlip(0.5),
        v2.ColorJitter(brightness=config.jitter, contrast=config.jitter, saturation=config.jitter,
                       hue=min(0.5, config.jitter / 4)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.RandomErasing(p=config.erasing_p),
    ])


@dataclass
class ImageTensorDataset:
    """A map-style torch dataset over a ``uint8`` image tensor and labels.

    ``transform`` (e.g. :func:`training_transform`) maps a ``uint8 (3, H, W)`` tensor to a
    normalised float tensor; without it the image is only normalised. Items are
    ``(image float32 (3, H, W), label int64)``.
    """

    images: object
    labels: np.ndarray
    transform: object = None

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        import torch

        img = self.images[i]
        x = self.transform(img) if self.transform is not None else normalize(img[None])[0]
        return x, torch.tensor(int(self.labels[i]), dtype=torch.long)
