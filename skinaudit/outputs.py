"""The files an audit writes: one canonical JSON and CSV serialisation, and an output folder
that changes all at once or not at all.

Every writer of ``audit.json``, ``metrics.json`` and the CSV tables goes through
:func:`write_json` / :func:`write_csv`, so the same result always gives the same bytes.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ._jsonsafe import json_safe
from .errors import ConfigError

__all__ = ["JSON_FORMAT", "dump_json", "write_json", "write_csv", "RowRecords", "atomic_output_dir"]

#: The one JSON format of every file the audit writes (sorted keys: byte-stable).
JSON_FORMAT = {"indent": 2, "sort_keys": True, "ensure_ascii": False, "allow_nan": False}
#: Rows per block when a table is written as CSV (pandas' default block is 100,000 cells,
#: converted to one Python string each: 6 MB for the skin-tone table at 6,000 images).
CSV_ROWS = 512


def dump_json(data) -> str:
    """``data`` (made JSON-safe: NaN and inf become null) as the text of an output file."""
    return json.dumps(json_safe(data), **JSON_FORMAT) + "\n"


def write_json(path: Path, data) -> None:
    """``dump_json(data)`` written to ``path`` as the encoder produces it (no whole-file string);
    ``data`` must already be JSON-safe (it may hold :class:`RowRecords`)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, **JSON_FORMAT)
        fh.write("\n")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A table as CSV, written a block of rows at a time."""
    frame.to_csv(path, index=False, chunksize=CSV_ROWS)


class RowRecords(list):
    """A DataFrame's rows as the JSON array ``json_safe(frame.to_dict(orient="records"))``,
    made a block of rows at a time while :func:`json.dump` walks it, so writing audit.json
    never holds one dict per image. Only for the pure-Python encoder (``indent`` set)."""

    def __init__(self, frame: pd.DataFrame, block: int = 1024):
        super().__init__()
        self._frame, self._block = frame, block

    def __len__(self) -> int:
        return len(self._frame)

    def __iter__(self):
        for start in range(0, len(self._frame), self._block):
            yield from json_safe(self._frame.iloc[start:start + self._block].to_dict(orient="records"))


class atomic_output_dir:
    """Context manager: write into a staging folder beside ``out_dir``; on success move
    each file into ``out_dir`` (``os.replace``, atomic per file), on any error or
    interruption delete the staging folder and leave ``out_dir`` as it was."""

    def __init__(self, out_dir):
        self.out = Path(out_dir).absolute()  # the staging folder must not be a relative path

    def __enter__(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"{self.out}: the output path exists and is not a folder")
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=self.out.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self.out.mkdir(parents=True, exist_ok=True)
                for src in sorted(self.tmp.rglob("*")):
                    dst = self.out / src.relative_to(self.tmp)
                    if src.is_dir():
                        dst.mkdir(parents=True, exist_ok=True)
                    else:
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(src, dst)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False

