"""Loading ``torch.export`` archives (``.pt2``) without running code from them.

TorchScript is deprecated in the pinned torch, and ``torch.export`` archives are its successor.
But ``torch.export.load`` is documented to "use pickle under the hood": a weight or constant
marked ``use_pickle`` is read with ``torch.load(weights_only=False)``, custom and opaque objects
with pickle, and the sample inputs fall back to ``weights_only=False`` when the safe load
fails. :func:`load_exported` therefore

1. reads the archive's own JSON configuration first and refuses (``UnsafeCheckpointError``)
   an archive holding anything that would be unpickled: a weight or tensor constant stored
   with ``use_pickle``, a custom or opaque object constant, or a legacy pickled weights file;
2. loads it with every ``torch.load`` inside forced to ``weights_only=True`` (no fallback), so
   even a part the scan does not know about cannot run code;
3. returns the program's module (an ``fx.GraphModule`` of ATen operations: it runs no Python
   from the file).

Grad-CAM++ needs named layers with forward hooks, which an exported program flattens away:
such a model is scored, not explained (say so; audit the state dict with ``--arch`` for CAMs).
"""
from __future__ import annotations

import contextlib
import json
import zipfile
from pathlib import Path

from .errors import ModelError, UnsafeCheckpointError

__all__ = ["is_exported_program", "load_exported", "scan_exported"]

_TENSOR_CONSTANT = "tensor_"  # torch.export.pt2_archive.constants.TENSOR_CONSTANT_FILENAME_PREFIX


def is_exported_program(path) -> bool:
    """Whether ``path`` is a ``torch.export`` archive (a zip with ``archive_format`` = ``pt2``)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.split("/", 1)[-1] == "archive_format":
                return zf.read(name).strip() == b"pt2"
    return False


def scan_exported(path) -> None:
    """Refuse an archive whose loading would unpickle anything (see the module docstring)."""
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        for name in names:
            rel = name.split("/", 1)[-1]
            if rel.startswith(("data/weights/", "data/constants/")) and rel.endswith(".pt"):
                raise UnsafeCheckpointError(f"{path}: a torch.export archive with legacy pickled weights or constants "
                                            f"({rel}); loading it could run code, so it is refused")
            if not rel.endswith("_config.json") or not rel.startswith(("data/weights/", "data/constants/")):
                continue
            try:
                config = json.loads(zf.read(name)).get("config", {})
            except (ValueError, AttributeError):
                raise ModelError(f"{path}: unreadable torch.export archive ({rel} is not valid JSON)") from None
            for fqn, meta in config.items():
                pickled = bool(meta.get("use_pickle")) or (rel.startswith("data/constants/")
                                                           and not str(meta.get("path_name", "")).startswith(_TENSOR_CONSTANT))
                if pickled:
                    raise UnsafeCheckpointError(
                        f"{path}: the torch.export archive stores {fqn!r} as a pickled object; loading it could run "
                        "code, so it is refused (export plain tensors only)")


@contextlib.contextmanager
def _weights_only():
    """Every ``torch.load`` inside forced to ``weights_only=True``, without fallback."""
    import torch

    real = torch.load

    def safe(f, *args, **kwargs):
        kwargs["weights_only"] = True
        return real(f, *args, **kwargs)

    torch.load = safe
    try:
        yield
    finally:
        torch.load = real


def load_exported(path):
    """The module of the ``torch.export`` archive ``path``, loaded without running code from it."""
    import torch

    path = Path(path)
    scan_exported(path)
    try:
        with _weights_only():
            program = torch.export.load(str(path))
    except UnsafeCheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged archive
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a loadable torch.export archive ({first})") from None
    return program.module()
