"""Lesion segmentation and artifact masks for dermoscopy and clinical photos.

The classical methods here need no weights; by default (``LesionParams.segmenter``,
``ArtifactParams.detector`` = ``"auto"``) the lesion mask and the image-level artifact flags come
from the small learned networks of :mod:`skinaudit.learned` when torch is importable.

Everything runs on a small working copy of the image (long side ``LesionParams.work_size``
pixels, box-averaged; hair at ``ArtifactParams.hair_size``, rulers at up to ``ruler_size``);
masks returned by the public functions are resized back to the image's full size.

Modules, one idea each:

- :mod:`.params`: :class:`LesionParams` and :class:`ArtifactParams`, validated when built.
- :mod:`.images`: input check, resampling, mask resizing, per-pixel colour reductions.
- :mod:`.morphology`: fast square grey morphology and connected-component helpers.
- :mod:`.working`: :class:`WorkingImage`, the working copy and the maps every stage shares.
- :mod:`.segmentation`: :func:`segment_lesion` (the algorithm is in that module's docstring).
- :mod:`.hair`, :mod:`.ruler`: the two shape-based artifact detectors.
- :mod:`.artifacts`: every artifact mask and flag (:func:`detect_artifacts`,
  :func:`artifact_flags`), and :func:`analyse_masks`, the shared pass used by ITA.

Measured quality and the history of each choice are in ``docs/skintone.md``.
"""
from __future__ import annotations

from .artifacts import (ARTIFACT_NAMES, analyse_masks, artifact_flags, detect_artifacts, image_artifact_flags,
                        masks_of_flagged, methods_used)
from .images import resize_mask, validate_image
from .params import ArtifactParams, LesionParams
from .segmentation import segment_lesion
from .working import WorkingImage

__all__ = [
    "ARTIFACT_NAMES",
    "LesionParams",
    "ArtifactParams",
    "segment_lesion",
    "detect_artifacts",
    "artifact_flags",
    "image_artifact_flags",
    "methods_used",
    "masks_of_flagged",
    "analyse_masks",
    "WorkingImage",
    "resize_mask",
    "validate_image",
]
