"""Grad-CAM++ explanations that are measured, not only looked at.

The paper explains its ResNet50 with Grad-CAM++ (Chattopadhay et al. 2018,
arXiv:1710.11063) on ``layer4[-1]``, sharpened to the top 25% of activations, and shows
original / raw heatmap / sharpened overlay triptychs for TP, TN, FN and FP cases (its
Fig. 8). This module does the same through pytorch-grad-cam's ``GradCAMPlusPlus`` and then
*measures* each map against the lesion mask (Quantus definitions):

* relevance mass  = sum(cam * mask) / sum(cam)                 (Arras et al. 2022)
* pointing game   = mask[argmax(cam)]                          (Zhang et al. 2018)
* top-k IoU       = |keep & mask| / |keep | mask|, keep = cam >= quantile(cam, 1 - keep_top)

Choices worth knowing (see docs/explanations.md):

* **Class target.** ``target="malignant"`` (default) explains the malignant logit: the
  logit itself for a one-logit head, column ``positive_index`` for a two-logit head (the
  paper's ``ClassifierOutputTarget(1)``). pytorch-grad-cam's ``BinaryClassifierOutputTarget``
  multiplies the single logit by +1/-1 from the *category* it is given (its issue #428):
  called with the predicted class of a false negative it explains the benign evidence,
  whose gradients are the negation of the malignant ones, so Grad-CAM++'s ReLU on the
  gradients keeps the opposite regions. Here the sign is fixed by the named class.
  ``"benign"`` and ``"predicted"`` are available too.
* **Borrowed model.** Hooks are registered for the call only and always released; the
  caller's train/eval mode, ``requires_grad`` flags and ``.grad`` tensors are restored (the
  library's ``BaseCAM`` calls ``model.eval()`` and ``model.zero_grad()`` on the caller's model).
* **Cheaper backward.** Grad-CAM++ needs only d(score)/d(activation) at the target layer.
  Parameter gradients are switched off and the target layer's output is made a leaf of the
  graph, so the backward pass runs through the head only; the activations and gradients,
  hence the maps, are the same as pytorch-grad-cam's own call (a test checks it).
* **TorchScript** modules run no Python hooks: they are refused with a clear ModelError;
  load the state dict with its architecture instead.
"""
from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError, MissingDependencyError, ModelError

__all__ = [
    "DEFAULT_TARGET_LAYERS",
    "default_target_layer",
    "resolve_layer",
    "compute_cams",
    "sharpen",
    "overlay",
    "localisation_scores",
    "localisation_table",
    "localisation_by_group",
    "triptych_cases",
    "save_triptych",
]

log = logging.getLogger(__name__)

#: Default Grad-CAM++ layer per torchvision family (class name -> dotted path): the last
#: convolutional block before global pooling (pytorch-grad-cam's README choices).
DEFAULT_TARGET_LAYERS = {
    "ResNet": "layer4.-1",
    "DenseNet": "features.-1",
    "EfficientNet": "features.-1",
    "MobileNetV2": "features.-1",
    "MobileNetV3": "features.-1",
    "ConvNeXt": "features.-1",
    "VGG": "features.-1",
    "SqueezeNet": "features.-1",
    "RegNet": "trunk_output.-1",
    "Inception3": "Mixed_7c",
    "GoogLeNet": "inception5b",
    "MNASNet": "layers.-1",
    "ShuffleNetV2": "conv5",
}

TARGETS = ("malignant", "benign", "predicted")
BACKENDS = ("gradcam++", "captum")


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependencyError("torch", "torch", "Computing Grad-CAM++ explanations") from None
    return torch


# ----------------------------------------------------------------------------------------
# layers
# ----------------------------------------------------------------------------------------

def resolve_layer(module, path: str):
    """Find a submodule by dotted path, with integer (also negative) indices.

    ``"layer4.-1"``, ``"layer4[-1]"``, ``"features.7"`` and ``"features[-1].0"`` are all
    accepted. A part that is a child's name wins over an index.

    Returns
    -------
    (name, layer) : (str, torch.nn.Module)
        ``name`` is the canonical dotted name (as in ``named_modules()``).
    """
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"the 'target_layer' parameter must be a dotted path such as 'layer4.-1'; got {path!r}")
    parts = [p for p in re.sub(r"\[\s*(-?\d+)\s*\]", r".\1", path.strip()).split(".") if p]
    cur = module
    for depth, part in enumerate(parts):
        children = dict(cur.named_children())
        if part in children:
            cur = children[part]
        elif re.fullmatch(r"-?\d+", part) and children:
            try:
                cur = list(children.values())[int(part)]
            except IndexError:
                raise ConfigError(f"layer {path!r}: index {part} is out of range at "
                                  f"{'.'.join(parts[:depth]) or 'the model'}, which has {len(children)} "
                                  "children") from None
        else:
            where = ".".join(parts[:depth]) or "the model"
            names = ", ".join(list(children)[:12]) or "none"
            raise ConfigError(f"unknown layer {path!r}: {where} has no child {part!r} (children: {names})")
    for name, sub in module.named_modules():
        if sub is cur:
            return name, cur
    raise AssertionError("a resolved submodule is always among named_modules()")  # pragma: no cover


def default_target_layer(module) -> str:
    """The default Grad-CAM++ layer of a model, as a dotted path.

    torchvision families use :data:`DEFAULT_TARGET_LAYERS` (``layer4[-1]`` for ResNets, as
    in the paper); any other model falls back to its last ``Conv2d`` (logged).
    """
    torch = _torch()
    key = type(module).__name__
    if key in DEFAULT_TARGET_LAYERS:
        return resolve_layer(module, DEFAULT_TARGET_LAYERS[key])[0]
    last = None
    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.Conv2d):
            last = name
    if last is None:
        raise ConfigError(f"{key} has no Conv2d layer and no known default; name the layer to explain "
                          "with target_layer (a dotted path such as 'layer4.-1')")
    log.info("no default Grad-CAM++ layer for %s; using its last Conv2d %r", key, last)
    return last


# ----------------------------------------------------------------------------------------
# the borrowed model
# ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _borrowed(module):
    """Eval mode, no parameter gradients; restore mode, flags and ``.grad`` afterwards."""
    was_training = module.training
    modes = [(m, m.training) for m in module.modules()]
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    try:
        module.eval()
        for p in params:
            p.requires_grad_(False)
        yield module
    finally:
        for p, f, g in zip(params, flags, grads):
            p.requires_grad_(f)
            p.grad = g
        for m, t in modes:
            m.training = t
        module.training = was_training


def _leaf_hook(_module, _inputs, output):
    """Make the target layer's output a graph leaf so backward stops there."""
    if not hasattr(output, "detach"):
        raise ModelError("the target layer returns a tuple or a non-tensor; choose a layer whose output "
                         "is one (n, C, h, w) feature map")
    if output.ndim != 4:
        raise ModelError(f"the target layer's output has shape {tuple(output.shape)}; Grad-CAM++ needs a "
                         "convolutional (n, C, h, w) feature map: choose another target_layer")
    return output.detach().requires_grad_(True)


class _BinaryTarget:
    """Score to differentiate for one image's raw output (one or two logits)."""

    def __init__(self, target: str, positive_index: int):
        self.target = target
        self.positive_index = positive_index

    def __call__(self, out):
        z = out.reshape(-1)
        if z.numel() == 1:
            if self.target == "malignant":
                return z[0]
            if self.target == "benign":
                return -z[0]
            return z[0] if z[0].detach().item() >= 0 else -z[0]
        if z.numel() == 2:
            pos = self.positive_index
            if self.target == "malignant":
                return z[pos]
            if self.target == "benign":
                return z[1 - pos]
            return z[int(z.detach().argmax())]
        raise ModelError(f"the model returned {z.numel()} outputs per image; a binary classifier returns one "
                         "logit or two")


def _unpack_model(model, preprocess, positive_index):
    torch = _torch()
    from .models import Preprocess, TorchModel

    if isinstance(model, TorchModel):
        module, pre, pos = model.module, model.preprocess, model.positive_index
    elif isinstance(model, torch.nn.Module):
        module, pre, pos = model, preprocess or Preprocess(), positive_index
    else:
        raise ConfigError("Grad-CAM++ needs a TorchModel or an eager torch.nn.Module; got "
                          f"{type(model).__name__} (precomputed scores, ONNX and Python callables have no "
                          "layers to explain)")
    if isinstance(module, torch.jit.ScriptModule):
        raise ModelError("TorchScript models cannot be explained: Grad-CAM++ needs Python forward hooks, which "
                         "ScriptModules do not run; save the weights with torch.save(model.state_dict(), path) "
                         "and load them with load_model(path, arch=...) (CLI: --arch)")
    if pos not in (0, 1):
        raise ConfigError(f"the 'positive_index' parameter must be 0 or 1; got {pos}")
    first = next(module.parameters(), None)  # inputs go where the weights are; the model is not moved
    return module, pre, pos, first.device if first is not None else torch.device("cpu")


def _resize(cam: np.ndarray, shape) -> np.ndarray:
    import cv2

    if cam.shape == tuple(shape):
        return cam.astype(np.float32, copy=False)
    out = cv2.resize(cam.astype(np.float32), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0)


def _scale(raw: np.ndarray) -> np.ndarray:
    """Per-map min-max scaling to [0, 1] (an all-constant map becomes all zero)."""
    raw = raw - raw.min(axis=(1, 2), keepdims=True)
    top = raw.max(axis=(1, 2), keepdims=True)
    return np.divide(raw, top, out=np.zeros_like(raw), where=top > 0).astype(np.float32)


def compute_cams(model, images: Sequence[np.ndarray], *, target_layer=None, target: str = "malignant",
                 backend: str = "gradcam++", batch_size: int = 8, preprocess=None, positive_index: int = 1,
                 progress=None) -> list[np.ndarray]:
    """Grad-CAM++ maps of a binary classifier, one per image, at each image's own size.

    Parameters
    ----------
    model : TorchModel or torch.nn.Module
        An eager model (``skinaudit.models.load_model(path, arch=...)`` for a state dict).
        Its outputs are one logit ``(n, 1)`` or two logits ``(n, 2)``. TorchScript is refused.
    images : sequence of (H, W, 3) uint8 arrays
        sRGB images of any sizes; preprocessed exactly as for scoring (``model.preprocess``,
        or ``preprocess`` / the default :class:`~skinaudit.models.Preprocess` for a bare module).
    target_layer : str or torch.nn.Module, optional
        Dotted path (``"layer4.-1"``, ``"layer4[-1]"``, ``"features.7"``) or the layer
        itself; default :func:`default_target_layer` (``layer4[-1]`` for ResNets).
    target : {"malignant", "benign", "predicted"}
        Class whose score is differentiated (see the module docstring and issue #428).
    backend : {"gradcam++", "captum"}
        ``"gradcam++"``: pytorch-grad-cam's GradCAMPlusPlus (the paper's method).
        ``"captum"``: captum's LayerGradCam (plain Grad-CAM), a cross-check.
    batch_size : int
        Images per forward/backward pass (>= 1).
    preprocess : skinaudit.models.Preprocess, optional
        For a bare module only (default 299 px, ImageNet statistics).
    positive_index : int
        Malignant column of a two-logit bare module (a TorchModel carries its own).
    progress : callable, optional
        tqdm-like ``progress(iterable, total=, desc=)``.

    Returns
    -------
    list of (H_i, W_i) float32 arrays in [0, 1]
        Per-image min-max scaled maps (ReLU of the weighted activations); an all-zero map means
        no positive evidence for the target at that layer. Stack them with ``np.stack`` when all
        images share one size.
    """
    torch = _torch()
    if target not in TARGETS:
        raise ConfigError(f"the 'target' parameter must be one of {', '.join(TARGETS)}; got {target!r}")
    if backend not in BACKENDS:
        raise ConfigError(f"the 'backend' parameter must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"the 'batch_size' parameter must be an integer >= 1; got {batch_size!r}")
    module, pre, pos, device = _unpack_model(model, preprocess, positive_index)
    images = list(images)
    if isinstance(target_layer, torch.nn.Module):
        if not any(sub is target_layer for sub in module.modules()):
            raise ConfigError("the 'target_layer' module is not a submodule of the model")
        layer = target_layer
    else:
        layer = resolve_layer(module, target_layer if target_layer is not None else default_target_layer(module))[1]
    starts = range(0, len(images), batch_size)
    if progress is not None:
        starts = progress(starts, total=len(starts), desc=f"Grad-CAM ({backend})")
    out: list[np.ndarray] = []
    handle = cam = None
    with _borrowed(module), torch.inference_mode(False), torch.enable_grad():
        try:
            if backend == "gradcam++":
                try:
                    from pytorch_grad_cam import GradCAMPlusPlus
                except ImportError:  # pragma: no cover - depends on the install
                    raise MissingDependencyError("grad-cam", "torch", "Grad-CAM++ explanations") from None
                cam = GradCAMPlusPlus(model=module, target_layers=[layer])
                handle = layer.register_forward_hook(_leaf_hook, prepend=True)
                tgt = _BinaryTarget(target, pos)
                for start in starts:
                    batch = images[start:start + batch_size]
                    x = torch.from_numpy(pre(batch)).to(device)
                    maps = cam(input_tensor=x, targets=[tgt] * len(batch))
                    cam.outputs = None  # drop the retained graph now, not at the next batch
                    cam.activations_and_grads.clear()
                    out.extend(_resize(m, img.shape[:2]) for m, img in zip(maps, batch))
            else:
                out = _captum_cams(module, layer, images, starts, pre, device, target, pos, batch_size)
        except RuntimeError as exc:
            raise ModelError(f"Grad-CAM failed on the model: {str(exc).splitlines()[0]}") from None
        finally:
            if handle is not None:
                handle.remove()
            if cam is not None:
                cam.activations_and_grads.release()
    return out


def _captum_cams(module, layer, images, starts, pre, device, target, pos, batch_size):
    torch = _torch()
    try:
        from captum.attr import LayerGradCam
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependencyError("captum", "torch", "The captum Grad-CAM backend") from None

    def two_columns(x):  # one logit z -> (-z, z) so both heads take a class index
        o = module(x)
        o = o.reshape(o.shape[0], -1)
        if o.shape[1] == 1:
            return torch.cat([-o, o], dim=1)
        if o.shape[1] != 2:
            raise ModelError(f"the model returned {o.shape[1]} outputs per image; a binary classifier "
                             "returns one logit or two")
        return o

    handle = layer.register_forward_hook(_leaf_hook, prepend=True)
    out = []
    try:
        lgc = LayerGradCam(two_columns, layer)
        for start in starts:
            batch = images[start:start + batch_size]
            x = torch.from_numpy(pre(batch)).to(device)
            with torch.no_grad():
                raw = module(x).reshape(len(batch), -1)
            malignant = 1 if raw.shape[1] == 1 else pos  # the (-z, z) view puts a single logit in column 1
            view = torch.cat([-raw, raw], dim=1) if raw.shape[1] == 1 else raw
            if target == "malignant":
                idx = [malignant] * len(batch)
            elif target == "benign":
                idx = [1 - malignant] * len(batch)
            else:
                idx = [int(i) for i in view.argmax(dim=1)]
            attr = lgc.attribute(x, target=idx, relu_attributions=True)
            up = torch.nn.functional.interpolate(attr.detach(), size=x.shape[-2:], mode="bilinear",
                                                 align_corners=False)
            maps = _scale(up[:, 0].cpu().numpy())
            out.extend(_resize(m, img.shape[:2]) for m, img in zip(maps, batch))
    finally:
        handle.remove()
    return out


# ----------------------------------------------------------------------------------------
# sharpening, overlays, triptychs
# ----------------------------------------------------------------------------------------

def _check_keep_top(keep_top: float) -> float:
    k = float(keep_top)
    if not 0.0 < k <= 1.0:
        raise ConfigError(f"the 'keep_top' parameter must be in (0, 1]; got {keep_top}")
    return k


def _as_cam(cam) -> np.ndarray:
    c = np.asarray(cam, dtype=np.float32)
    if c.ndim not in (2, 3) or c.size == 0:
        raise DataError(f"a CAM must be an (H, W) or (n, H, W) array; got shape {c.shape}")
    if not np.all(np.isfinite(c)) or c.min() < 0:
        raise DataError("a CAM must hold finite values >= 0")
    return c


def _keep_region(cam2d: np.ndarray, keep_top: float) -> np.ndarray:
    """Pixels at or above the (1 - keep_top) quantile of a map, excluding zeros."""
    q = np.quantile(cam2d, 1.0 - keep_top)
    return (cam2d >= q) & (cam2d > 0)


def sharpen(cam, *, keep_top: float = 0.25) -> np.ndarray:
    """Keep the top ``keep_top`` fraction of activations of each map, zero the rest.

    ``keep = cam >= quantile(cam, 1 - keep_top) and cam > 0`` per map (the paper's top 25%);
    kept values are unchanged. Ties at the quantile are kept, so slightly more than
    ``keep_top`` of the pixels can survive on a map with plateaus.

    Parameters
    ----------
    cam : (H, W) or (n, H, W) array, values >= 0
    keep_top : float in (0, 1]

    Returns
    -------
    float32 array of the same shape.
    """
    c = _as_cam(cam)
    k = _check_keep_top(keep_top)
    maps = c[None] if c.ndim == 2 else c
    out = np.stack([np.where(_keep_region(m, k), m, 0.0) for m in maps]).astype(np.float32)
    return out[0] if c.ndim == 2 else out


def overlay(image, cam, *, alpha: float = 0.5, cmap: str = "jet", skip_zero: bool = False) -> np.ndarray:
    """Blend a heatmap onto an image: ``(1 - alpha) * image + alpha * cmap(cam)``, RGB uint8.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB
    cam : (H, W) array in [0, 1] (same size as the image)
    alpha : float in [0, 1]
        Heatmap weight.
    cmap : str
        A matplotlib colormap name (RGB order; never OpenCV's BGR).
    skip_zero : bool
        Leave pixels where ``cam == 0`` untouched (for sharpened maps).
    """
    from matplotlib import colormaps

    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"the image must be an (H, W, 3) uint8 RGB array; got {img.shape} {img.dtype}")
    c = _as_cam(cam)
    if c.shape != img.shape[:2]:
        raise DataError(f"the CAM's shape {c.shape} differs from the image's {img.shape[:2]}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ConfigError(f"the 'alpha' parameter must be in [0, 1]; got {alpha}")
    if cmap not in colormaps:
        raise ConfigError(f"unknown matplotlib colormap {cmap!r}")
    heat = colormaps[cmap](np.clip(c, 0, 1))[..., :3] * 255.0
    w = np.full(c.shape, float(alpha))
    if skip_zero:
        w[c <= 0] = 0.0
    out = (1.0 - w[..., None]) * img.astype(np.float64) + w[..., None] * heat
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


KINDS = ("TP", "TN", "FN", "FP")


def triptych_cases(y_true, y_pred, scores, *, per_kind: int = 2, ids=None) -> dict[str, list]:
    """A deterministic choice of TP, TN, FN and FP cases to show (the paper's Fig. 8).

    Per kind, the most confident cases first: TP and FP by decreasing score, TN and FN by
    increasing score (an FN with the lowest score is the most confidently missed); ties keep
    the dataset order.

    Returns
    -------
    dict kind -> list of ``ids`` (or positions when ``ids`` is None), at most ``per_kind``
    each, for kinds ``"TP", "TN", "FN", "FP"`` (a kind with no case gets an empty list).
    """
    y = np.asarray(y_true)
    p = np.asarray(y_pred)
    s = np.asarray(scores, dtype=float)
    if not (y.shape == p.shape == s.shape) or y.ndim != 1:
        raise DataError(f"y_true, y_pred and scores must be 1-D of one length; got {y.shape}, {p.shape}, {s.shape}")
    if not (np.isin(y, (0, 1)).all() and np.isin(p, (0, 1)).all()):
        raise DataError("y_true and y_pred must hold 0 (benign) or 1 (malignant)")
    if not isinstance(per_kind, (int, np.integer)) or per_kind < 0:
        raise ConfigError(f"the 'per_kind' parameter must be an integer >= 0; got {per_kind!r}")
    labels = np.arange(len(y)) if ids is None else np.asarray(list(ids), dtype=object)
    if len(labels) != len(y):
        raise DataError(f"{len(labels)} ids for {len(y)} cases")
    sel = {"TP": (y == 1) & (p == 1), "TN": (y == 0) & (p == 0), "FN": (y == 1) & (p == 0), "FP": (y == 0) & (p == 1)}
    out = {}
    for kind in KINDS:
        where = np.flatnonzero(sel[kind])
        key = -s[where] if kind in ("TP", "FP") else s[where]
        chosen = where[np.argsort(key, kind="stable")[:per_kind]]
        out[kind] = [labels[i].item() if hasattr(labels[i], "item") else labels[i] for i in chosen]
    return out


def save_triptych(rows, path, *, keep_top: float = 0.25, alpha: float = 0.5, cmap: str = "jet",
                  dpi: int = 120) -> Path:
    """Write a PNG with one row per case: original, raw heatmap, sharpened overlay.

    Parameters
    ----------
    rows : sequence of (label, image, cam)
        ``label`` a row title (e.g. ``"FN  ISIC_0000123  p=0.21"``), ``image`` (H, W, 3) uint8
        RGB, ``cam`` (H, W) in [0, 1].
    path : str or Path
        Output PNG (parent folders are created).
    keep_top, alpha, cmap : as in :func:`sharpen` and :func:`overlay`.

    Returns
    -------
    Path of the written file.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = list(rows)
    if not rows:
        raise DataError("save_triptych needs at least one (label, image, cam) row")
    fig = Figure(figsize=(9, 3 * len(rows)), dpi=dpi)
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, (label, image, cam) in enumerate(rows):
        panels = [(np.asarray(image), "original"), (overlay(image, cam, alpha=1.0, cmap=cmap), "raw heatmap"),
                  (overlay(image, sharpen(cam, keep_top=keep_top), alpha=alpha, cmap=cmap, skip_zero=True),
                   f"top {keep_top:.0%} overlay")]
        for c, (panel, title) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title if r == 0 else "", fontsize=9)
        axes[r, 0].set_ylabel(str(label), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


# ----------------------------------------------------------------------------------------
# localisation against the lesion mask
# ----------------------------------------------------------------------------------------

LOCALISATION_COLUMNS = ("relevance_mass", "pointing_game", "iou_top", "lesion_area_frac", "reason")


def localisation_scores(cam, lesion_mask, *, keep_top: float = 0.25) -> dict:
    """How much of a map falls on the lesion (Quantus definitions).

    * ``relevance_mass = sum(cam * mask) / sum(cam)`` in [0, 1]; a map that ignores the lesion
      scores about ``lesion_area_frac``.
    * ``pointing_game = mask[argmax(cam)]`` (first maximum in row-major order), 1.0 or 0.0.
    * ``iou_top = |keep & mask| / |keep | mask|`` with ``keep`` the :func:`sharpen` region.

    Parameters
    ----------
    cam : (H, W) array >= 0
    lesion_mask : (H, W) bool (given or estimated), same size
    keep_top : float in (0, 1]

    Returns
    -------
    dict with ``relevance_mass``, ``pointing_game``, ``iou_top`` (floats; NaN when undefined),
    ``lesion_area_frac`` and ``reason`` ("" or why the scores are NaN: an all-zero map, an
    empty mask).
    """
    c = _as_cam(cam)
    m = np.asarray(lesion_mask).astype(bool)
    if c.ndim != 2 or c.shape != m.shape:
        raise DataError(f"the CAM {c.shape} and the lesion mask {m.shape} must be 2-D of one shape")
    k = _check_keep_top(keep_top)
    area = float(m.mean())
    nan = {"relevance_mass": np.nan, "pointing_game": np.nan, "iou_top": np.nan, "lesion_area_frac": area}
    if not m.any():
        return {**nan, "reason": "empty lesion mask"}
    total = float(c.sum(dtype=np.float64))
    if total <= 0:
        return {**nan, "reason": "all-zero CAM (no positive evidence at the target layer)"}
    keep = _keep_region(c, k)
    return {
        "relevance_mass": float(c[m].sum(dtype=np.float64) / total),
        "pointing_game": float(m.flat[int(np.argmax(c))]),
        "iou_top": float((keep & m).sum() / (keep | m).sum()),
        "lesion_area_frac": area,
        "reason": "",
    }


def localisation_table(cams, lesion_masks, *, ids=None, keep_top: float = 0.25) -> pd.DataFrame:
    """:func:`localisation_scores` for many images: DataFrame ``image_id`` + its keys."""
    cams, lesion_masks = list(cams), list(lesion_masks)
    if len(cams) != len(lesion_masks):
        raise DataError(f"{len(cams)} CAMs for {len(lesion_masks)} lesion masks")
    ids = list(range(len(cams))) if ids is None else list(ids)
    if len(ids) != len(cams):
        raise DataError(f"{len(ids)} ids for {len(cams)} CAMs")
    rows = [{"image_id": i, **localisation_scores(c, m, keep_top=keep_top)} for i, c, m in zip(ids, cams, lesion_masks)]
    return pd.DataFrame(rows, columns=["image_id", *LOCALISATION_COLUMNS])


def localisation_by_group(df: pd.DataFrame, groups, *, reference=None, alpha: float = 0.05, n_boot: int = 2000,
                          random_state=0) -> pd.DataFrame:
    """Localisation per skin-tone group, with intervals, and each group's gap to a reference.

    Parameters
    ----------
    df : DataFrame
        Output of :func:`localisation_table` (``relevance_mass``, ``pointing_game``, ``iou_top``).
    groups : str or array-like
        A column of ``df`` or one group label per row (e.g. the ITA group). Rows whose group
        is missing are left out of the group rows but counted in ``"all"``. The label
        ``"all"`` is the overall row's: given to every row it yields that row alone; mixed
        with other labels it is refused.
    reference : optional
        The group the others are compared with; default the group with the most valid rows.
    alpha : float in (0, 1)
        1 - confidence level of the intervals.
    n_boot : int
        Bootstrap resamples for the means and their differences (percentile intervals).
    random_state : int or numpy Generator

    Returns
    -------
    DataFrame, one row per group then ``"all"``:

    * ``group, n, n_valid`` (``n_valid``: rows with defined scores);
    * ``pointing_game, pointing_game_lo, pointing_game_hi``: hit rate, Wilson interval;
    * ``relevance_mass, iou_top`` (+ ``_lo``, ``_hi``): means, percentile bootstrap;
    * ``reference``; ``pointing_game_diff`` (+ ``_lo``, ``_hi``): group rate minus the
      reference's, Newcombe hybrid-score interval (statsmodels ``confint_proportions_2indep``);
      ``relevance_mass_diff`` (+ ``_lo``, ``_hi``): difference of means, groups resampled
      independently. NaN on the reference and ``"all"`` rows;
    * ``reason``: "" or why a value is NaN.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

    need = {"relevance_mass", "pointing_game", "iou_top"}
    if not isinstance(df, pd.DataFrame) or not need <= set(df.columns):
        raise DataError(f"localisation_by_group needs a DataFrame with columns {sorted(need)}")
    g = df[groups] if isinstance(groups, str) and groups in df.columns else pd.Series(np.asarray(groups, dtype=object))
    if len(g) != len(df):
        raise DataError(f"{len(g)} group labels for {len(df)} rows")
    if not 0.0 < float(alpha) < 1.0:
        raise ConfigError(f"the 'alpha' parameter must be in (0, 1); got {alpha}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ConfigError(f"the 'n_boot' parameter must be an integer >= 100; got {n_boot!r}")
    rng = np.random.default_rng(random_state)
    g = pd.Series(g.to_numpy(), index=df.index)
    names = list(pd.unique(g.dropna()))
    try:
        names = sorted(names)
    except TypeError:
        pass
    if names == ["all"]:                 # one label for every row: only the overall row
        names = []
    elif "all" in names:
        raise ConfigError("a group may not be named 'all', the name of the overall row; rename it")
    cols = ["relevance_mass", "pointing_game", "iou_top"]
    valid = {name: df[g == name].dropna(subset=cols) for name in names}
    valid["all"] = df.dropna(subset=cols)
    if reference is None and names:
        reference = max(names, key=lambda k: len(valid[k]))
    elif reference is not None and reference not in names:
        raise ConfigError(f"the 'reference' group {reference!r} is not among the groups: {names}")
    q = (alpha / 2, 1 - alpha / 2)
    boots: dict = {}

    def boot_means(name, col):
        x = valid[name][col].to_numpy(float)
        if (name, col) not in boots:
            boots[(name, col)] = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
        return boots[(name, col)]

    rows = []
    for name in [*names, "all"]:
        v = valid[name]
        n_valid = len(v)
        row = {"group": name, "n": int(len(df) if name == "all" else (g == name).sum()), "n_valid": n_valid,
               "reference": reference}
        for col in ("pointing_game", "relevance_mass", "iou_top"):
            row.update({col: np.nan, f"{col}_lo": np.nan, f"{col}_hi": np.nan})
        for col in ("pointing_game_diff", "relevance_mass_diff"):
            row.update({col: np.nan, f"{col}_lo": np.nan, f"{col}_hi": np.nan})
        reasons = []
        if n_valid == 0:
            row["reason"] = "no image with a defined localisation score"
            rows.append(row)
            continue
        hits = int(v["pointing_game"].sum())
        lo, hi = proportion_confint(hits, n_valid, alpha=alpha, method="wilson")
        row.update({"pointing_game": hits / n_valid, "pointing_game_lo": float(lo), "pointing_game_hi": float(hi)})
        for col in ("relevance_mass", "iou_top"):
            lo, hi = np.quantile(boot_means(name, col), q)
            row.update({col: float(v[col].mean()), f"{col}_lo": float(lo), f"{col}_hi": float(hi)})
        if n_valid == 1:
            reasons.append("one image: the bootstrap interval is degenerate")
        ref = valid.get(reference) if reference is not None else None
        if name in ("all", reference):
            reasons.append("the reference group" if name == reference else "all groups together")
        elif ref is None or len(ref) == 0:
            reasons.append("no reference group with defined scores")
        else:
            ref_hits = int(ref["pointing_game"].sum())
            lo, hi = confint_proportions_2indep(hits, n_valid, ref_hits, len(ref), method="newcomb", compare="diff",
                                                alpha=alpha)
            diffs = boot_means(name, "relevance_mass") - boot_means(reference, "relevance_mass")
            dlo, dhi = np.quantile(diffs, q)
            row.update({"pointing_game_diff": hits / n_valid - ref_hits / len(ref), "pointing_game_diff_lo": float(lo),
                        "pointing_game_diff_hi": float(hi),
                        "relevance_mass_diff": float(v["relevance_mass"].mean() - ref["relevance_mass"].mean()),
                        "relevance_mass_diff_lo": float(dlo), "relevance_mass_diff_hi": float(dhi)})
        row["reason"] = "; ".join(r for r in reasons if r.startswith("one image") or r.startswith("no reference"))
        rows.append(row)
    return pd.DataFrame(rows)
