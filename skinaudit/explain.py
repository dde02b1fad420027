"""Grad-CAM++ maps of a binary skin-lesion classifier (the torch part of the explanations).

The paper explains its ResNet50 with Grad-CAM++ (Chattopadhay et al. 2018,
arXiv:1710.11063) on ``layer4[-1]``. :func:`compute_cams` does the same through
pytorch-grad-cam's ``GradCAMPlusPlus`` and returns plain ``(H, W)`` float32 maps in [0, 1];
sharpening, overlays, triptychs and the localisation scores of those maps against the lesion
mask are numeric and live in :mod:`skinaudit.localisation` (no torch).

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

torch, pytorch-grad-cam and captum are imported inside the functions that use them.
"""
from __future__ import annotations

import contextlib
import logging
import re
from typing import Sequence

import numpy as np

from .errors import ConfigError, MissingDependencyError, ModelError
from .validation import check_choice, check_int

__all__ = [
    "DEFAULT_TARGET_LAYERS",
    "TARGETS",
    "BACKENDS",
    "default_target_layer",
    "resolve_layer",
    "compute_cams",
    "cam_grid",
    "MIN_CAM_GRID",
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

#: Classes whose score :func:`compute_cams` can differentiate.
TARGETS = ("malignant", "benign", "predicted")
#: Grad-CAM implementations of :func:`compute_cams`.
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

    Parameters
    ----------
    module : torch.nn.Module
        The model to search.
    path : str
        Dotted path of child names and integer indices.

    Returns
    -------
    (name, layer) : (str, torch.nn.Module)
        ``name`` is the canonical dotted name (as in ``named_modules()``).

    Raises
    ------
    ConfigError
        When a part names no child or an index is out of range (the message lists the
        children that exist).
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

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    str
        Canonical dotted name of the layer (e.g. ``"layer4.1"`` for a ResNet18).
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


#: The coarsest native CAM grid on which skinaudit scores localisation (pointing game, relevance
#: mass, IoU) and applies the localisation-based failure rules: 7 x 7, the grid of a ResNet50's
#: last block at its standard 224 px input, the setting in which Grad-CAM and Grad-CAM++ were
#: evaluated. On a 3 x 3 map each cell is a ninth of the image: a centred lesion holds the middle
#: cell, so "the peak is on the lesion" says little about where the model looked.
MIN_CAM_GRID = 7


def cam_grid(model, target_layer=None) -> tuple[int, int]:
    """The native (rows, columns) grid of the Grad-CAM++ map of ``model`` (a TorchModel or an
    eager module with its preprocessing) at ``target_layer`` (default per architecture): the
    spatial size of the layer's output for one input of the model's size, before the map is
    upsampled to the image."""
    torch = _torch()
    module, pre, _, device = _unpack_model(model, None, getattr(model, "positive_index", 1))
    name, layer = resolve_layer(module, target_layer or default_target_layer(module))
    seen = {}

    def hook(_m, _i, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        seen["shape"] = tuple(out.shape)

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            was_training = module.training
            module.eval()
            module(torch.zeros((1, 3, pre.size, pre.size), device=device))
            module.train(was_training)
    finally:
        handle.remove()
    shape = seen.get("shape", ())
    if len(shape) < 4:
        raise ModelError(f"the target layer {name!r} gives an output of shape {shape}, not a spatial map")
    return int(shape[-2]), int(shape[-1])


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
    check_choice(target, "target", TARGETS)
    check_choice(backend, "backend", BACKENDS)
    batch_size = check_int(batch_size, "batch_size", low=1)
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
