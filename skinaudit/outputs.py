"""The files an audit writes: one canonical JSON and CSV serialisation (the output folder that
changes all at once or not at all is :mod:`skinaudit.output_folder`).

Every writer of ``audit.json``, ``metrics.json`` and the CSV tables goes through
:func:`write_json` / :func:`write_csv`, so the same result always gives the same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ._jsonsafe import json_safe

__all__ = ["JSON_FORMAT", "safe_name", "dump_json", "write_json", "write_csv", "read_csv", "neutralise_formulas",
           "restore_formulas", "RowRecords"]

#: The one JSON format of every file the audit writes (sorted keys: byte-stable).
JSON_FORMAT = {"indent": 2, "sort_keys": True, "ensure_ascii": False, "allow_nan": False}
#: Rows per block when a table is written as CSV (pandas' default block is 100,000 cells,
#: converted to one Python string each: 6 MB for the skin-tone table at 6,000 images).
CSV_ROWS = 512


def safe_name(image_id) -> str:
    """A file-name-safe, collision-free form of an image id."""
    import hashlib
    import re

    text = str(image_id)
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80]
    return clean if clean == text else f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def dump_json(data) -> str:
    """``data`` (made JSON-safe: NaN and inf become null) as the text of an output file."""
    return json.dumps(json_safe(data), **JSON_FORMAT) + "\n"


def write_json(path: Path, data) -> None:
    """``dump_json(data)`` written to ``path`` as the encoder produces it (no whole-file string);
    ``data`` must already be JSON-safe (it may hold :class:`RowRecords`)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, **JSON_FORMAT)
        fh.write("\n")


#: First characters that make a spreadsheet read a cell as a formula (OWASP's list), and the
#: quote that neutralises them (quoted too, so the escaping can be undone exactly).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _escaped(value):
    return "'" + value if isinstance(value, str) and value[:1] in FORMULA_START else value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and column name that starts with ``= + - @``, a tab, a
    carriage return or ``'`` prefixed with ``'``, so a spreadsheet shows it as text instead of
    running it (an image id ``=HYPERLINK(...)`` becomes ``'=HYPERLINK(...)``). Numbers are
    untouched; :func:`restore_formulas` undoes it exactly. The input is not modified."""
    out = None
    for k, col in enumerate(frame.columns):
        values = frame.iloc[:, k]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        hit = values.map(lambda v: isinstance(v, str) and v[:1] in FORMULA_START).to_numpy(dtype=bool)
        if hit.any():
            out = frame.copy() if out is None else out
            out.iloc[hit, k] = ["'" + v for v in values[hit]]
    names = [_escaped(c) for c in frame.columns]
    if names != list(frame.columns):
        out = (frame.copy() if out is None else out).set_axis(names, axis=1)
    return frame if out is None else out


def restore_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """The inverse of :func:`neutralise_formulas` (for tables read back from an audit folder)."""
    def undo(v):
        return v[1:] if isinstance(v, str) and v[:1] == "'" and v[1:2] in FORMULA_START else v

    out = frame.set_axis([undo(c) for c in frame.columns], axis=1)
    for k in range(out.shape[1]):
        values = out.iloc[:, k]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            out.iloc[:, k] = values.map(undo)
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A table as CSV, written a block of rows at a time, spreadsheet formulas neutralised
    (:func:`neutralise_formulas`)."""
    neutralise_formulas(frame).to_csv(path, index=False, chunksize=CSV_ROWS)


def read_csv(path, **kwargs) -> pd.DataFrame:
    """A CSV table of an audit folder as it was before :func:`write_csv` neutralised formulas."""
    return restore_formulas(pd.read_csv(path, **kwargs))


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
