"""Inference with the shipped weights (``skinaudit/weights/segmenter.pt``, ``artifacts.pt``).

Each weight file is a plain dict ``{"state_dict": ..., "meta": ...}`` read with
``torch.load(..., weights_only=True)`` (no pickled code) into the architecture named in its meta
(:mod:`.models`); a network is loaded once per process. Inference runs on the CPU with
``THREADS`` torch threads (restored afterwards), so worker processes do not oversubscribe cores.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources

import numpy as np

from ..errors import ConfigError
from .preprocess import art_input, postprocess, refine_prob, resize_image, resize_prob, seg_input

__all__ = ["weights_path", "weights_version", "load", "lesion_probability", "segment", "artifact_scores",
           "artifact_flags", "THREADS"]

#: torch threads used for one image (the models are small; more threads only contend with workers)
THREADS = 1
_FILES = {"segmenter": "segmenter.pt", "artifacts": "artifacts.pt"}


def weights_path(which: str):
    """Path of the shipped weights ``which`` ("segmenter" or "artifacts"); ConfigError when absent."""
    if which not in _FILES:
        raise ConfigError(f"the 'which' parameter must be 'segmenter' or 'artifacts'; got {which!r}")
    p = resources.files("skinaudit").joinpath("weights", _FILES[which])
    if not p.is_file():
        raise ConfigError(f"the learned {which} weights are missing ({p}); reinstall skinaudit, or choose the "
                          f"classical method (--segmenter classical / --artifacts classical)")
    return p


@lru_cache(maxsize=None)
def weights_version(which: str) -> str:
    """First 12 hex digits of SHA-256 of the weight file (recorded in outputs and cache keys)."""
    return hashlib.sha256(weights_path(which).read_bytes()).hexdigest()[:12]


@lru_cache(maxsize=None)
def load(which: str):
    """``(model in eval mode, meta dict)`` of the shipped weights ``which``, loaded once."""
    import torch

    from .models import build_model

    with weights_path(which).open("rb") as fh:
        blob = torch.load(fh, map_location="cpu", weights_only=True)
    meta = blob["meta"]
    model = build_model(meta["arch"], **meta["kwargs"])
    model.load_state_dict(blob["state_dict"])
    # channels-last: oneDNN's depthwise convolutions run about 1.5x faster on one core in that layout
    model = _fuse_batchnorm(model.eval()).to(memory_format=torch.channels_last)
    shape = (int(meta["input_size"]),) * 2 if which == "segmenter" else tuple(meta["input_shape"])
    return _frozen(model, shape), meta


def _frozen(model, shape):
    """``model`` traced on a (1, 3, *shape) input and frozen (TorchScript, built here from the
    architecture's own code, never read from a file): the same outputs bit for bit, without
    Python's per-module call overhead (the segmenter runs in about 60% of the eager time on one
    core). The eager model when tracing is unavailable or fails."""
    import warnings

    import torch

    x = torch.zeros(1, 3, *shape).contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.9 marks jit.trace / freeze deprecated
            with torch.no_grad():
                traced = torch.jit.freeze(torch.jit.trace(model, x, check_trace=False).eval())
                probe = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
                probe = probe.contiguous(memory_format=torch.channels_last)
                if not torch.equal(traced(probe), model(probe)):  # a cheaper check than jit's own
                    return model
        return traced
    except Exception:  # noqa: BLE001  (any tracing failure: the eager model is always correct)
        return model


def _fuse_batchnorm(model):
    """Fold every BatchNorm that follows a convolution into it (eval mode; same outputs to ~1e-5,
    about a third less time on one core)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for mod in model.modules():
        if isinstance(mod, nn.Sequential) and len(mod) >= 2 and isinstance(mod[0], nn.Conv2d) \
                and isinstance(mod[1], nn.BatchNorm2d):
            mod[0] = fuse_conv_bn_eval(mod[0], mod[1])
            mod[1] = nn.Identity()
    return model


@contextmanager
def _threads(n: int):
    import torch

    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield torch
    finally:
        if old != n:
            torch.set_num_threads(old)


def _run(model, a: np.ndarray) -> np.ndarray:
    with _threads(THREADS) as torch, torch.inference_mode():
        x = torch.from_numpy(np.array(a, dtype=np.float32)).permute(2, 0, 1)[None].div_(255)
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.sigmoid(model(x)).contiguous().numpy()[0]


def lesion_probability(image: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Per-pixel lesion probability of an RGB image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    shape : (h, w), optional
        Output size; the image's own (H, W) by default.

    Returns
    -------
    ndarray, shape ``shape``, float32 in [0, 1]
    """
    model, meta = load("segmenter")
    prob = _run(model, seg_input(image, int(meta["input_size"])))[0]
    return resize_prob(prob, tuple(shape) if shape is not None else image.shape[:2])


def segment(image: np.ndarray, shape: tuple[int, int] | None = None, colours: np.ndarray | None = None) -> np.ndarray:
    """Lesion mask from :func:`lesion_probability`: refined by the image's colours at the output
    size when the weights' meta says so (:func:`~skinaudit.learned.preprocess.refine_prob` with
    ``meta["refine"]``), > the stored threshold (0.5), the component with the largest probability
    mass, holes filled. Shape ``shape`` (default the image's), bool.

    ``colours``, optional: the image already resampled to ``shape`` (uint8, or floats in [0, 1]),
    used for the refinement instead of resizing ``image`` again (the lesion stage passes its
    working copy)."""
    _model, meta = load("segmenter")
    shape = tuple(shape) if shape is not None else image.shape[:2]
    prob = lesion_probability(image, shape)
    if meta.get("refine"):
        if colours is None:
            colours = resize_image(image, shape)
        elif tuple(np.shape(colours)[:2]) != shape:
            raise ValueError(f"colours have shape {np.shape(colours)[:2]}, not the output shape {shape}")
        prob = refine_prob(colours, prob, **meta["refine"])
    return postprocess(prob, float(meta.get("threshold", 0.5)))


def artifact_scores(image: np.ndarray) -> dict:
    """Probability of each artifact flag of the learned detector: ``name -> float in [0, 1]``
    (names of :data:`skinaudit.learned.data.FLAGS`)."""
    model, meta = load("artifacts")
    p = _run(model, art_input(image, tuple(meta["input_shape"])))
    return {name: float(v) for name, v in zip(meta["flags"], p)}


def artifact_flags(image: np.ndarray) -> dict:
    """Image-level flags: ``name -> bool``, score >= the flag's threshold (tuned for F1 on the
    validation split of the training folder and stored with the weights)."""
    _model, meta = load("artifacts")
    return {k: bool(v >= meta["thresholds"][k]) for k, v in artifact_scores(image).items()}
