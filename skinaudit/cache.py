"""A content-addressed cache of per-image results (scores, masks, ITA, CAMs).

An entry's key is the SHA-256 of the image file's bytes, the stage name, and every
parameter that affects the result (as canonical JSON), so an entry can never be served after
the image or a parameter changes: the key simply differs. Values are dicts of numpy arrays
and JSON scalars, stored as one ``.npz`` per entry, written atomically (temp file +
``os.replace``), so an interrupted run leaves either a whole entry or none.

The cache is an optimisation only: a missing, unreadable or corrupt entry is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from .imageio import file_sha256 as image_digest  # SHA-256 of a file's bytes (hex)

__all__ = ["ResultCache", "image_digest", "default_cache_dir"]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$SKINAUDIT_CACHE``, else ``$XDG_CACHE_HOME/skinaudit``, else ``~/.cache/skinaudit``."""
    if os.environ.get("SKINAUDIT_CACHE"):
        return Path(os.environ["SKINAUDIT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "skinaudit"


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


class ResultCache:
    """Per-image results keyed by (image bytes, stage, parameters).

    Parameters
    ----------
    root : path
        Folder of the cache (created on first write).
    """

    def __init__(self, root):
        self.root = Path(root)
        self._root = os.fspath(self.root)
        self.hits = 0
        self.misses = 0
        self.stats: dict[str, dict[str, int]] = {}  # stage -> {"hits": n, "misses": n}

    def _count(self, key: str, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        stage = key.rsplit("-", 1)[0]
        self.stats.setdefault(stage, {"hits": 0, "misses": 0})[outcome] += 1

    def reset_stats(self) -> None:
        self.hits = self.misses = 0
        self.stats = {}

    def key(self, digest: str, stage: str, params: dict) -> str:
        h = hashlib.sha256()
        h.update(digest.encode())
        h.update(b"\0" + stage.encode() + b"\0")
        h.update(_canonical(params).encode())
        return f"{stage}-{h.hexdigest()}"

    def _path(self, key: str) -> str:
        # A plain string, not a Path: pathlib interns every path component (sys.intern), so one
        # Path per entry grows the interpreter's interned-string table with the number of images
        # (its table had grown to 3.7 MB at 6,000 images, measured with tracemalloc).
        return os.path.join(self._root, key[-2:], f"{key}.npz")

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not os.path.isfile(path):
            self._count(key, "misses")
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                out = {k: npz[k] for k in npz.files}
        except Exception as exc:  # noqa: BLE001 - a corrupt entry is recomputed, never fatal
            log.warning("cache entry %s unreadable (%s); recomputing", path, exc)
            self._count(key, "misses")
            return None
        self._count(key, "hits")
        return {k: (v.item() if v.ndim == 0 else v) for k, v in out.items()}

    def put(self, key: str, value: dict) -> None:
        path = self._path(key)
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **{k: np.asarray(v) for k, v in value.items()})
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
