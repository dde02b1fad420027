"""Exporting trained models in the two forms ``skinaudit run --model`` loads.

* ``model.pt``: TorchScript (``torch.jit.script``) of a :class:`~reference_model.ensemble.TTAEnsemble`
  (all fold models x TTA flips); outputs ``log`` of the averaged probabilities, which
  skinaudit's two-logit softmax turns back into exactly the averaged P(malignant).
* ``model.pt2``: the same ensemble as a ``torch.export`` archive (TorchScript's successor; a
  dynamic batch dimension), which skinaudit loads without unpickling anything
  (:mod:`skinaudit.pt2`);
* ``model_state.pt``: the state dict of the single best fold model (a plain torchvision
  architecture with the paper's head, keys ``fc.1.weight`` / ``fc.1.bias`` for a ResNet), for
  ``skinaudit run --model model_state.pt --arch <arch>``; no TTA (a state dict cannot hold an
  ensemble).

Both expect inputs as :class:`skinaudit.models.Preprocess` makes them: squashed to
``image_size x image_size`` (bilinear), ImageNet-normalised; pass ``--image-size`` to
``skinaudit run``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from skinaudit.errors import ModelError

from .train import _unwrap

__all__ = ["export_torchscript", "export_program", "save_state_dict", "write_model_info", "read_model_info",
           "audit_command",
           "MODEL_INFO"]

log = logging.getLogger(__name__)

#: Side-car file written next to the exported models (arch, image size, thresholds).
MODEL_INFO = "model_info.json"


@contextlib.contextmanager
def _quiet_jit():
    """Silence torch 2.14's FutureWarning that ``torch.jit.*`` is deprecated: TorchScript is
    still the self-contained format skinaudit loads without Python code."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..*deprecated", category=FutureWarning)
        yield


def _contiguous_cpu(module):
    return _unwrap(module).cpu().to(memory_format=torch.contiguous_format).eval()


def export_torchscript(module, path, *, example=None, atol: float = 1e-5) -> dict:
    """Script ``module`` with ``torch.jit.script`` and save it to ``path``.

    With ``example`` (a normalised float batch ``(N, 3, S, S)``) the saved file is reloaded
    and its outputs are compared with the in-memory module; a difference above ``atol``
    raises :class:`~skinaudit.errors.ModelError`. Returns ``{"path", "max_abs_diff"}``.
    """
    module = _contiguous_cpu(module)
    try:
        with _quiet_jit():
            scripted = torch.jit.script(module)
    except Exception as exc:  # noqa: BLE001 - TorchScript raises several frontend errors
        raise ModelError(f"could not script {type(module).__name__} for TorchScript export "
                         f"({type(exc).__name__}: {str(exc).strip()[:300]})") from None
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with _quiet_jit():
        torch.jit.save(scripted, str(tmp))
    os.replace(tmp, path)
    diff = float("nan")
    if example is not None:
        with _quiet_jit():
            loaded = torch.jit.load(str(path), map_location="cpu").eval()
        with torch.no_grad():
            diff = float((loaded(example) - module(example)).abs().max())
        if not diff <= atol:
            raise ModelError(f"{path}: the exported TorchScript differs from the in-memory model by {diff:.3g}")
    return {"path": str(path), "max_abs_diff": diff}


def export_program(module, path, *, example, atol: float = 1e-5) -> dict:
    """Export ``module`` with ``torch.export`` (batch dimension dynamic) to ``path`` (``.pt2``),
    reload it the way skinaudit does (:func:`skinaudit.pt2.load_exported`) and compare its
    outputs on ``example`` with the in-memory module; a difference above ``atol`` raises
    :class:`~skinaudit.errors.ModelError`. Returns ``{"path", "max_abs_diff"}``."""
    from skinaudit.pt2 import load_exported

    module = _contiguous_cpu(module)
    try:
        program = torch.export.export(module, (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types
        raise ModelError(f"could not export {type(module).__name__} with torch.export "
                         f"({type(exc).__name__}: {str(exc).strip()[:300]})") from None
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.pt2")  # torch.export warns about any other suffix
    torch.export.save(program, str(tmp))
    os.replace(tmp, path)
    with torch.no_grad():
        diff = float((load_exported(path)(example) - module(example)).abs().max())
    if not diff <= atol:
        raise ModelError(f"{path}: the exported program differs from the in-memory model by {diff:.3g}")
    return {"path": str(path), "max_abs_diff": diff}


def save_state_dict(model, path) -> dict:
    """Save ``model``'s state dict (CPU, contiguous tensors, no DDP/compile prefixes).

    Loadable with ``torch.load(weights_only=True)`` and by
    ``skinaudit.models.load_model(path, arch=...)``. Returns ``{"path", "n_tensors"}``.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return {"path": str(path), "n_tensors": len(state)}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON (numpy scalars and arrays converted; NaN as null)."""
    path = Path(path)
    text = json.dumps(_nan_to_none(obj), indent=2, default=_json_default, allow_nan=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _nan_to_none(obj):
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, (np.floating,)) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def write_model_info(out_dir, info: dict) -> Path:
    """Write :data:`MODEL_INFO` (arch, image_size, per-file thresholds...) into ``out_dir``."""
    return write_json(Path(out_dir) / MODEL_INFO, info)


def audit_command(out_dir, *, arch: str, image_size: int, threshold: float) -> str:
    """A complete ``skinaudit run`` command auditing ``out_dir/model_state.pt`` on the images and
    labels named by the shell variables ``TEST_IMAGES`` and ``TEST_LABELS`` (an ISIC 2018 Task 3
    style folder and ground-truth CSV), writing ``out_dir/audit``. The model options are spelled
    out, although skinaudit also reads them from model_info.json."""
    import shlex

    out = Path(out_dir)
    return (f"skinaudit run --model {shlex.quote(str(out / 'model_state.pt'))} --arch {arch} "
            f"--image-size {int(image_size)} --threshold {threshold:.2f} "
            f'--data isic --images "$TEST_IMAGES" --labels "$TEST_LABELS" --out {shlex.quote(str(out / "audit"))}')


def read_model_info(model_path) -> dict | None:
    """The :data:`MODEL_INFO` next to a model file, or None when there is none."""
    p = Path(model_path).with_name(MODEL_INFO)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{p}: not valid JSON ({exc})") from None
