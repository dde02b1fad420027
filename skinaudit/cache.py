"""A content-addressed cache of per-image results (scores, masks, ITA, CAMs).

An entry's key is the SHA-256 of the image file's bytes, the stage name, every parameter
that affects the result (as canonical JSON) and the source code of the modules that compute
the stage (:data:`STAGE_CODE`), so an entry can never be served after the image, a parameter
or the code changes (an upgrade, or a local edit without a version bump): the key simply
differs. Values are dicts of numpy arrays
and JSON scalars, stored as one ``.npz`` per entry, written atomically (temp file +
``os.replace``), so an interrupted run leaves either a whole entry or none.

Each entry also holds its own key, checked when it is read: an entry copied or swapped in under
another key is refused (a miss), never served.

The cache is an optimisation only: a missing, unreadable, corrupt or misplaced entry is
recomputed, and a cache folder that cannot be written (read-only, full, a file, a folder where
an entry should be) is reported once as a warning and the audit goes on without storing.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from .imageio import file_sha256

__all__ = ["ResultCache", "image_digest", "default_cache_dir", "source_digest", "STAGE_CODE"]

log = logging.getLogger(__name__)


def image_digest(path) -> str:
    """Hex SHA-256 of a file's bytes, remembered per (path, size, modification time, inode):
    the stages of one audit hash each image once."""
    st = os.stat(path)
    return _digest(os.fspath(path), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=1 << 16)
def _digest(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return file_sha256(path)


def default_cache_dir() -> Path:
    """``$SKINAUDIT_CACHE``, else ``$XDG_CACHE_HOME/skinaudit``, else ``~/.cache/skinaudit``."""
    if os.environ.get("SKINAUDIT_CACHE"):
        return Path(os.environ["SKINAUDIT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "skinaudit"


#: The modules whose source decides each cached stage's result; a stage not listed depends on
#: the whole package.
STAGE_CODE = {
    "score": ("models", "imageio"),
    "cam": ("explain", "models", "imageio"),
    "inspect": ("lesion", "skintone", "imageio"),
    "ita_variants": ("lesion", "skintone", "imageio"),
}


@functools.lru_cache(maxsize=None)
def source_digest(modules: tuple[str, ...] | None = None) -> str:
    """SHA-256 of the source files of ``skinaudit.<module>`` for each name, every file of a
    subpackage included (None: every module of the package). A file that cannot be read (e.g. a zipped install) contributes its name
    and the package version instead."""
    from ._version import __version__

    pkg = Path(__file__).resolve().parent
    if modules is None:
        files = sorted(pkg.rglob("*.py"))
    else:  # a module is a file ``m.py`` or a package folder ``m/``
        files = [f for m in modules for f in (sorted((pkg / m).rglob("*.py")) if (pkg / m).is_dir()
                                               else [pkg / f"{m}.py"])]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        try:
            h.update(f.read_bytes())
        except OSError:
            h.update(__version__.encode())
    return h.hexdigest()


#: Version of the entry layout (part of every key: entries of an older layout are never read).
_FORMAT = "entry-2"
#: The field of every entry holding its own key.
_KEY = "__key__"


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
        #: Why entries are no longer stored (None while the cache is writable).
        self.disabled: str | None = None
        if self.root.exists() and not self.root.is_dir():
            self._disable(f"{self.root} is not a folder")

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
        h.update(b"\0" + source_digest(STAGE_CODE.get(stage)).encode())
        h.update(b"\0" + _FORMAT.encode())
        return f"{stage}-{h.hexdigest()}"

    def _path(self, key: str) -> str:
        # A plain string, not a Path: pathlib interns every path component (sys.intern), so one
        # Path per entry grows the interpreter's interned-string table with the number of images
        # (its table had grown to 3.7 MB at 6,000 images, measured with tracemalloc).
        return os.path.join(self._root, key[-2:], f"{key}.npz")

    def _disable(self, reason: str) -> None:
        if self.disabled is None:
            self.disabled = reason
            log.warning("the per-image cache cannot be written (%s); going on without storing results "
                        "(pass --no-cache to silence this)", reason)

    def get(self, key: str) -> dict | None:
        """The entry stored under ``key``, or None (absent, unreadable, or holding another key)."""
        path = self._path(key)
        if not os.path.isfile(path):
            self._count(key, "misses")
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                out = {k: npz[k] for k in npz.files}
            if str(out.pop(_KEY)) != key:
                raise ValueError("the entry was stored under another key")
        except Exception as exc:  # noqa: BLE001 - a corrupt entry is recomputed, never fatal
            log.warning("cache entry %s unusable (%s); recomputing", path, exc)
            self._count(key, "misses")
            return None
        self._count(key, "hits")
        return {k: (v.item() if v.ndim == 0 else v) for k, v in out.items()}

    def put(self, key: str, value: dict) -> None:
        """Store ``value`` (a dict of arrays and scalars) under ``key``, atomically; a cache that
        cannot be written is reported once and no longer written."""
        if self.disabled is not None:
            return
        path = self._path(key)
        folder = os.path.dirname(path)
        tmp = None
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **{k: np.asarray(v) for k, v in value.items()}, **{_KEY: np.asarray(key)})
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            self._disable(f"{exc.strerror or exc} at {exc.filename or path}")
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
