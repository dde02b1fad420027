"""Any classifier through one protocol: images in, P(malignant) out.

A :class:`ScoreModel` has a ``name`` and ``predict_proba(images) -> scores`` where
``images`` is a list of ``(H, W, 3)`` ``uint8`` sRGB arrays (any sizes) and ``scores`` a
``(n,)`` float array in [0, 1]. Adapters:

* :class:`CallableModel` - any Python function (scikit-learn pipelines, remote services...);
* :class:`TorchModel` - an eager ``torch.nn.Module`` (also what Grad-CAM++ needs);
* :func:`load_model` - a file: TorchScript, a state dict plus a torchvision architecture
  name (loaded with ``torch.load(weights_only=True)``: no code in the file is run), or an
  ONNX graph (``[onnx]`` extra);
* :class:`PrecomputedScores` - a CSV ``image_id,score`` of scores made elsewhere.

One-logit heads are read through a sigmoid, two-logit heads through a softmax (column 1 =
malignant, configurable). Preprocessing defaults to the paper's: resize to 299x299,
ImageNet mean/std.
"""
from __future__ import annotations

import logging
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd
from PIL import Image

from .errors import ConfigError, DataError, MissingDependencyError, ModelError, UnsafeCheckpointError

__all__ = [
    "ScoreModel",
    "Preprocess",
    "CallableModel",
    "TorchModel",
    "OnnxModel",
    "PrecomputedScores",
    "load_model",
    "ModelInfo",
    "read_model_info",
    "build_torchvision_model",
    "probabilities_from_outputs",
    "score_dataset",
]

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@runtime_checkable
class ScoreModel(Protocol):
    """Images in, P(malignant) out."""

    name: str

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:  # pragma: no cover - protocol
        ...


@dataclass(frozen=True)
class Preprocess:
    """Resize (squash) to ``size`` x ``size`` with bilinear filtering, scale to [0, 1],
    normalise with ``mean`` / ``std`` per channel; NCHW float32 out."""

    size: int = 299
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if not 16 <= int(self.size) <= 4096:
            raise ConfigError(f"the 'image_size' parameter must be in [16, 4096]; got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("mean and std need three values each, std > 0")

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(images), 3, self.size, self.size), dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ModelError(f"images must be (H, W, 3) uint8 arrays; got {img.shape} {img.dtype}")
            if img.shape[:2] != (self.size, self.size):
                img = np.asarray(Image.fromarray(img).resize((self.size, self.size), Image.BILINEAR))
            out[i] = (img.transpose(2, 0, 1).astype(np.float32) / 255.0 - mean) / std
        return out


def probabilities_from_outputs(out: np.ndarray, *, positive_index: int = 1) -> np.ndarray:
    """Turn raw model outputs into P(malignant).

    ``(n,)`` or ``(n, 1)`` logits -> sigmoid; ``(n, 2)`` logits -> softmax column
    ``positive_index``. Anything else is not a binary classifier and raises ModelError.
    """
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1):
        z = out.reshape(-1)
        p = np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))
    elif out.ndim == 2 and out.shape[1] == 2:
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e[:, positive_index] / e.sum(axis=1)
    else:
        raise ModelError(
            f"the model returned outputs of shape {out.shape}; a binary classifier must return one logit "
            "(n, 1) or two logits (n, 2) per image")
    if not np.all(np.isfinite(p)):
        raise ModelError("the model returned non-finite outputs (NaN or inf)")
    return p


def _check_scores(scores, n: int, name: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.shape[0] != n:
        raise ModelError(f"model '{name}' returned {s.shape[0]} scores for {n} images")
    if not np.all(np.isfinite(s)) or s.min(initial=0) < 0 or s.max(initial=0) > 1:
        raise ModelError(f"model '{name}' returned scores outside [0, 1] or not finite; "
                         "a ScoreModel must return P(malignant)")
    return s


def _file_model_identity(model) -> dict | None:
    """Model file hash + preprocessing + head reading, or None for in-memory models."""
    if not getattr(model, "path", None):
        return None
    if getattr(model, "_sha256", None) is None:
        from .imageio import file_sha256

        model._sha256 = file_sha256(model.path)
    import dataclasses

    return {"model_sha256": model._sha256, "preprocess": dataclasses.asdict(model.preprocess),
            "positive_index": model.positive_index, "arch": getattr(model, "arch", None)}


class CallableModel:
    """Wrap ``fn(images: list of (H, W, 3) uint8) -> (n,) P(malignant)`` as a ScoreModel."""

    def __init__(self, fn: Callable[[Sequence[np.ndarray]], Sequence[float]], *, name: str | None = None):
        if not callable(fn):
            raise ConfigError(f"CallableModel needs a callable; got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.path = None

    def predict_proba(self, images):
        return _check_scores(self.fn(list(images)), len(images), self.name)


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - depends on the install
        raise MissingDependencyError("torch", "torch", "Scoring a PyTorch model") from None
    return torch


class TorchModel:
    """An eager or TorchScript ``torch.nn.Module`` as a ScoreModel.

    Parameters
    ----------
    module : torch.nn.Module
        Maps a float NCHW batch to logits ``(n, 1)`` or ``(n, 2)``.
    preprocess : Preprocess
        Resize and normalisation (default: 299 px, ImageNet statistics).
    positive_index : int
        Column of the malignant class for two-logit heads.
    device : str
        ``"cpu"``, ``"cuda"``, or ``"auto"`` (CUDA when available).
    """

    def __init__(self, module, *, preprocess: Preprocess | None = None, positive_index: int = 1,
                 device: str = "cpu", name: str | None = None, path=None, arch: str | None = None):
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise ConfigError(f"TorchModel needs a torch.nn.Module; got {type(module).__name__}")
        if positive_index not in (0, 1):
            raise ConfigError(f"the 'positive_index' parameter must be 0 or 1; got {positive_index}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)  # an absent or unknown device fails here, not mid-audit
        except (RuntimeError, AssertionError, TypeError) as exc:
            raise ConfigError(f"the 'device' parameter {device!r} cannot be used here "
                              f"({str(exc).splitlines()[0][:160]}); use cpu, cuda, cuda:N or auto") from None
        self.module = module
        self.preprocess = preprocess or Preprocess()
        self.positive_index = positive_index
        self.name = name or type(module).__name__
        self.path = str(path) if path else None
        self.arch = arch
        self.is_scripted = isinstance(module, torch.jit.ScriptModule)
        #: A torch.export program (``.pt2``): scored like any module, but its layers are flattened
        self.is_exported = isinstance(module, torch.fx.GraphModule) and str(path or "").lower().endswith(".pt2")

    def cache_params(self) -> dict | None:
        """Identity of this model for the per-image score cache (None: not cacheable)."""
        return _file_model_identity(self)

    def forward_logits(self, images) -> np.ndarray:
        torch = _torch()
        x = torch.from_numpy(self.preprocess(images)).to(self.device)
        was_training = getattr(self.module, "training", False)
        if not self.is_exported:  # an exported program is frozen in the mode it was exported in
            self.module.eval()
        try:
            self.module.to(self.device)
            with torch.inference_mode():
                out = self.module(x)
        except RuntimeError as exc:
            raise ModelError(f"model '{self.name}' failed on a batch of shape {tuple(x.shape)}: "
                             f"{str(exc).splitlines()[0]}") from None
        finally:
            if not self.is_exported:
                self.module.train(was_training)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.detach().float().cpu().numpy()

    def predict_proba(self, images):
        return _check_scores(probabilities_from_outputs(self.forward_logits(images),
                                                        positive_index=self.positive_index),
                             len(images), self.name)


class OnnxModel:
    """An ONNX graph run by onnxruntime (CPU), same preprocessing and heads as TorchModel."""

    def __init__(self, path, *, preprocess: Preprocess | None = None, positive_index: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("onnxruntime", "onnx", "Scoring an ONNX model") from None
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own base types
            raise ModelError(f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})") from None
        if positive_index not in (0, 1):
            raise ConfigError(f"the 'positive_index' parameter must be 0 or 1; got {positive_index}")
        self.input_name = self.session.get_inputs()[0].name
        self.preprocess = preprocess or Preprocess()
        self.positive_index = positive_index
        self.name = Path(path).name
        self.path = str(path)

    def cache_params(self) -> dict | None:
        return _file_model_identity(self)

    def predict_proba(self, images):
        out = self.session.run(None, {self.input_name: self.preprocess(images)})[0]
        return _check_scores(probabilities_from_outputs(out, positive_index=self.positive_index),
                             len(images), self.name)


class PrecomputedScores:
    """Scores made elsewhere, from a CSV ``image_id,score`` (score = P(malignant) in [0, 1])."""

    def __init__(self, scores: pd.Series, *, name: str = "precomputed scores", path=None):
        self.scores = scores
        self.name = name
        self.path = str(path) if path else None

    @classmethod
    def from_csv(cls, path) -> "PrecomputedScores":
        from .data import preview, read_table

        path = Path(path)
        df = read_table(path, "scores")
        if not {"image_id", "score"} <= set(df.columns):
            raise DataError(f"{path}: a scores CSV needs the columns image_id,score; found {list(df.columns)[:10]}")
        ids = df["image_id"].astype(str).str.strip()
        dup = ids[ids.duplicated()].unique()
        if len(dup):
            raise DataError(f"{path}: {len(dup)} duplicate image id(s): {preview(dup)}")
        score = pd.to_numeric(df["score"], errors="coerce")
        bad = ids[~np.isfinite(score) | (score < 0) | (score > 1)]
        if len(bad):
            raise DataError(f"{path}: scores must be finite probabilities in [0, 1]; {len(bad)} are not "
                            f"(NaN, inf, text or out of range), e.g. {preview(bad)}")
        return cls(pd.Series(score.to_numpy(float), index=ids.to_numpy(), name="score"), name=path.name, path=path)

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        from .data import preview

        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in self.scores.index]
        if missing:
            raise DataError(f"{self.path or self.name}: no score for {len(missing)} image(s) of the dataset: "
                            f"{preview(missing)}")
        extra = self.scores.index.difference(pd.Index(ids))
        if len(extra):
            raise DataError(f"{self.path or self.name}: {len(extra)} scored image id(s) are not in the dataset: "
                            f"{preview(sorted(extra))}")
        return self.scores.loc[ids].to_numpy(dtype=float)

    def predict_proba(self, images):  # pragma: no cover - scores are looked up by id
        raise ModelError("precomputed scores are looked up by image id, not computed from pixels")


# ----------------------------------------------------------------------------------------
# building torchvision models and loading files
# ----------------------------------------------------------------------------------------

def _last_linear(model):
    torch = _torch()
    name = None
    for n, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            name = n
    if name is None:
        raise ModelError(f"{type(model).__name__} has no Linear layer to use as a classification head")
    return name


def _set_submodule(model, path: str, new) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, new)


def build_torchvision_model(arch: str, *, num_outputs: int = 2, paper_head: bool = False, dropout: float = 0.4):
    """A randomly initialised torchvision classifier with a binary head (nothing downloaded).

    ``paper_head=True`` replaces the head with the paper's ``Sequential(Dropout(p),
    Linear(in, num_outputs))`` (so a ResNet's keys are ``fc.1.weight`` / ``fc.1.bias``);
    otherwise with ``Linear(in, num_outputs)`` under the standard name (``fc.weight``).
    """
    torch = _torch()
    import torchvision

    if num_outputs not in (1, 2):
        raise ConfigError(f"a binary head has 1 or 2 outputs; got {num_outputs}")
    available = set(torchvision.models.list_models(module=torchvision.models))
    if arch not in available:
        close = sorted(a for a in available if arch.split("_")[0][:5] in a)[:8]
        raise ConfigError(f"unknown architecture {arch!r}; torchvision classifiers include "
                          f"{', '.join(close or sorted(available)[:8])}")
    kwargs = {"weights": None}
    if arch.startswith("inception") or arch.startswith("googlenet"):
        kwargs.update(aux_logits=False, init_weights=True)
    model = torchvision.models.get_model(arch, **kwargs)
    head = _last_linear(model)
    in_features = model.get_submodule(head).in_features
    linear = torch.nn.Linear(in_features, num_outputs)
    parent_path, _, leaf = head.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else None
    if (paper_head and isinstance(parent, torch.nn.Sequential) and len(parent) == 2 and leaf == "1"
            and isinstance(parent[0], torch.nn.Dropout)):
        # the family already ends in Dropout + Linear (EfficientNet, MobileNet...): set its p,
        # do not stack a second dropout (keys stay classifier.1.weight)
        parent[0] = torch.nn.Dropout(dropout)
        parent[1] = linear
        return model
    _set_submodule(model, head, torch.nn.Sequential(torch.nn.Dropout(dropout), linear) if paper_head else linear)
    return model


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.split("/", 1)[-1].startswith("code/") for n in names) and any(
        n.endswith("constants.pkl") for n in names)


def _is_pickle(path: Path, limit: int = 1 << 20) -> bool:
    """Whether ``path`` holds a pickle (what ``torch.save`` writes): torch's zip archive of one,
    a stream opening with the pickle protocol header, or one whose opening bytes parse as
    pickle opcodes up to STOP. Read with :mod:`pickletools` only: nothing is executed."""
    import io
    import pickletools

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith(".pkl") for n in zf.namelist())
    with open(path, "rb") as fh:
        head = fh.read(limit)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO 2..5
        return True
    ops = 0
    try:
        for op, _, _ in pickletools.genops(io.BytesIO(head)):  # protocol 0 / 1: text-like opcodes
            ops += 1
            if op.name == "STOP":
                return ops >= 3
    except Exception:  # noqa: BLE001 - pickletools raises ValueError and others on non-pickle bytes
        return False
    return False


def _not_a_model(path: Path) -> ModelError:
    return ModelError(f"{path}: not a recognised model file: not TorchScript, not ONNX (name it *.onnx) and not a "
                      "readable PyTorch checkpoint (torch.save of a state dict)")


def _load_state_dict(path: Path, arch: str | None):
    torch = _torch()
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not _is_pickle(path):  # random bytes: torch's unpickler fails on them too
            raise _not_a_model(path) from None
        raise UnsafeCheckpointError(
            f"{path}: refused to load: the checkpoint is a pickle that would run code or build arbitrary "
            f"objects ({str(exc).splitlines()[0][:160]}). Export the model safely instead: "
            "torch.jit.save(torch.jit.script(model), 'model.pt') for TorchScript, or "
            "torch.save(model.state_dict(), 'model_state.pt') and pass --arch") from None
    except Exception as exc:  # noqa: BLE001 - torch raises KeyError, RuntimeError... on junk files
        if not _is_pickle(path):
            raise _not_a_model(path) from None
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({str(exc).splitlines()[0][:200]})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(hasattr(v, "shape") for v in obj.values()):
        raise ModelError(f"{path}: the checkpoint holds no state dict of tensors")
    obj = {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel / DDP prefixes
    if arch is None:
        raise ModelError(f"{path} is a state dict; name its architecture with --arch (e.g. --arch resnet50)")
    model = build_torchvision_model(arch, num_outputs=2)
    head = _last_linear(model)
    if f"{head}.weight" in obj:
        n_out, paper = obj[f"{head}.weight"].shape[0], False
    elif f"{head}.1.weight" in obj:
        n_out, paper = obj[f"{head}.1.weight"].shape[0], True
    else:
        raise ModelError(f"{path}: no head weights '{head}.weight' or '{head}.1.weight' for architecture {arch!r}; "
                         f"is --arch right?")
    if n_out not in (1, 2):
        raise ModelError(f"{path}: the head has {n_out} outputs; skinaudit audits binary classifiers "
                         "(1 logit with sigmoid or 2 logits with softmax)")
    model = build_torchvision_model(arch, num_outputs=n_out, paper_head=paper)
    missing = sorted(set(model.state_dict()) - set(obj))
    unexpected = sorted(set(obj) - set(model.state_dict()))
    if missing or unexpected:
        raise ModelError(f"{path}: the state dict does not fit architecture {arch!r} "
                         f"(missing {len(missing)} keys, e.g. {missing[:3]}; "
                         f"unexpected {len(unexpected)}, e.g. {unexpected[:3]})")
    try:
        model.load_state_dict(obj, strict=True)
    except RuntimeError as exc:
        detail = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc)[:200])
        raise ModelError(f"{path}: the state dict does not fit architecture {arch!r} ({detail})") from None
    return model.eval()


def load_model(path, *, arch: str | None = None, image_size: int = 299, positive_index: int = 1,
               device: str = "cpu", mean=IMAGENET_MEAN, std=IMAGENET_STD):
    """Load a model file as a ScoreModel.

    * ``.onnx`` -> :class:`OnnxModel` (needs the ``[onnx]`` extra);
    * a ``torch.export`` archive (``.pt2``) -> :class:`TorchModel`, loaded without unpickling
      anything (:mod:`skinaudit.pt2`); scored, not explained (its layers are flattened);
    * a TorchScript archive -> :class:`TorchModel` (no Python hooks: Grad-CAM++ needs an
      eager model, see :mod:`skinaudit.explain`);
    * otherwise a state dict (``torch.load(weights_only=True)``, never unpickling code)
      of the torchvision architecture ``arch``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise ModelError(f"{path}: model file is empty")
    pre = Preprocess(size=image_size, mean=tuple(mean), std=tuple(std))
    if path.suffix.lower() == ".onnx":
        return OnnxModel(path, preprocess=pre, positive_index=positive_index)
    torch = _torch()
    from .pt2 import is_exported_program, load_exported

    if is_exported_program(path):  # torch.export (.pt2), loaded without unpickling anything
        return TorchModel(load_exported(path), preprocess=pre, positive_index=positive_index, device=device,
                          name=path.name, path=path)
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                # torch 2.14 marks TorchScript deprecated; it stays the safe, code-free format we accept.
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as exc:
            raise ModelError(f"{path}: not a loadable TorchScript file ({str(exc).splitlines()[0]})") from None
        return TorchModel(module.eval(), preprocess=pre, positive_index=positive_index, device=device,
                          name=path.name, path=path)
    module = _load_state_dict(path, arch)
    return TorchModel(module, preprocess=pre, positive_index=positive_index, device=device,
                      name=f"{path.name} ({arch})", path=path, arch=arch)


#: The file beside a model that ``python -m reference_model train`` writes (arch, image size,
#: the threshold chosen on validation for each exported file).
MODEL_INFO = "model_info.json"


@dataclass(frozen=True)
class ModelInfo:
    """What a ``model_info.json`` beside a model file says about that file.

    ``arch`` (torchvision name) and ``image_size`` (px, square) apply to every model file of
    the folder; ``threshold`` (P(malignant) >= threshold is malignant, in [0, 1]) is the one
    recorded for this file's name, None when the file has none; ``threshold_source`` says
    how it was chosen (e.g. ``"validation"``), or None.
    """

    path: Path
    arch: str | None = None
    image_size: int | None = None
    threshold: float | None = None
    threshold_source: str | None = None


def read_model_info(model_path) -> ModelInfo | None:
    """The :class:`ModelInfo` of the ``model_info.json`` beside ``model_path``, or None when
    there is none.

    Fields read (all optional): ``arch`` (a string), ``image_size`` (an integer in
    [16, 4096]) and ``thresholds`` (file name -> number in [0, 1]; the entry for
    ``model_path``'s name is used, with ``threshold_details[name]`` marking it as chosen on
    validation) or a single ``threshold``. A file that is not a JSON object or whose fields
    have the wrong type or range raises :class:`ModelError` naming the file and the field.
    """
    import json
    import math

    model_path = Path(model_path)
    path = model_path.with_name(MODEL_INFO)
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(info, dict):
        raise ModelError(f"{path}: must hold a JSON object; got {type(info).__name__}")

    def bad(field, want, got):
        return ModelError(f"{path}: '{field}' must be {want}; got {got!r}")

    arch = info.get("arch")
    if arch is not None and (not isinstance(arch, str) or not arch.strip()):
        raise bad("arch", "a torchvision architecture name", arch)
    size = info.get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 4096):
        raise bad("image_size", "an integer in [16, 4096]", size)
    thresholds = info.get("thresholds", {})
    if not isinstance(thresholds, dict):
        raise bad("thresholds", "an object of file name -> threshold", thresholds)
    field, threshold = f"thresholds.{model_path.name}", thresholds.get(model_path.name)
    if threshold is None and "threshold" in info:
        field, threshold = "threshold", info["threshold"]
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not math.isfinite(threshold) or not 0 <= threshold <= 1):
        raise bad(field, "a number in [0, 1]", threshold)
    details = info.get("threshold_details")
    source = ("validation" if threshold is not None and field != "threshold" and isinstance(details, dict)
              and isinstance(details.get(model_path.name), dict) and "validation" in details[model_path.name]
              else None)
    return ModelInfo(path=path, arch=arch, image_size=size,
                     threshold=None if threshold is None else float(threshold), threshold_source=source)


def score_batch(model, paths) -> tuple[list[float], list[str]]:
    """Scores and statuses of one batch of image files (an unreadable file: NaN and its reason); the one
    scoring step of every executor (:mod:`skinaudit.executors`)."""
    from .errors import ImageError
    from .imageio import read_image

    images, where, status = [], [], ["ok"] * len(paths)
    for k, path in enumerate(paths):
        try:
            images.append(read_image(path))
            where.append(k)
        except ImageError as exc:
            status[k] = exc.reason
    scores = np.full(len(paths), np.nan)
    if images:
        scores[where] = model.predict_proba(images)
    return scores.tolist(), status


def score_batches(model, batches, *, desc: str = "", progress=None):
    """Yield :func:`score_batch` of each batch of image paths, in this process, in order."""
    it = batches if progress is None else progress(batches, total=len(batches), desc=desc)
    for paths in it:
        yield score_batch(model, paths)


def score_dataset(model, dataset, *, batch_size: int = 16, strict: bool = False, progress=None,
                  cache=None, executor=None) -> pd.DataFrame:
    """Score every image of ``dataset`` with ``model``.

    Returns a DataFrame ``image_id, score, status`` in the dataset's order; ``status`` is
    ``"ok"`` or the reason an image could not be scored (unreadable, too small, ...), in
    which case ``score`` is NaN. ``strict=True`` raises on the first such image instead.
    ``progress`` is an optional tqdm-like wrapper ``progress(iterable, total=, desc=)``.
    ``cache`` (a :class:`~skinaudit.cache.ResultCache`) reuses scores of file-backed models
    keyed by image bytes, model file hash and preprocessing. ``executor`` (an
    :class:`~skinaudit.executors.Executor`) runs the batches (default: in this process; a
    :class:`~skinaudit.executors.RayExecutor` scores them on an actor pool, one model copy
    per actor); each batch is scored as it is given, so the scores do not depend on it.
    """
    from .errors import ImageError

    if batch_size < 1:
        raise ConfigError(f"the 'batch_size' parameter must be at least 1; got {batch_size}")
    ids = [str(i) for i in dataset.ids]
    if isinstance(model, PrecomputedScores):
        return pd.DataFrame({"image_id": ids, "score": model.lookup(ids), "status": "ok"})
    if not isinstance(model, ScoreModel):
        raise ConfigError(f"the model must be a ScoreModel (with predict_proba); got {type(model).__name__}")
    identity = model.cache_params() if cache is not None and hasattr(model, "cache_params") else None
    scores = np.full(len(ids), np.nan)
    status = ["ok"] * len(ids)
    keys: list[str | None] = [None] * len(ids)
    paths = dataset.image_paths
    todo = list(range(len(ids)))
    if identity is not None:
        from .cache import image_digest

        todo = []
        for k, path in enumerate(paths):
            try:
                keys[k] = cache.key(image_digest(path), "score", identity)
            except OSError:
                todo.append(k)
                continue
            hit = cache.get(keys[k])
            if hit is not None:
                scores[k] = float(hit["score"])
            else:
                todo.append(k)
    batches = [todo[start:start + batch_size] for start in range(0, len(todo), batch_size)]
    path_batches = [[paths[k] for k in batch] for batch in batches]
    scorer = score_batches if executor is None else executor.score
    results = scorer(model, path_batches, desc=f"scoring ({model.name})", progress=progress)
    for batch, (batch_scores, batch_status) in zip(batches, results):
        for k, score, reason in zip(batch, batch_scores, batch_status):
            if reason != "ok":
                if strict:
                    raise ImageError(paths[k], reason)
                status[k] = reason
                continue
            scores[k] = score
            if keys[k] is not None:
                cache.put(keys[k], {"score": scores[k]})
    return pd.DataFrame({"image_id": ids, "score": scores, "status": status})
