"""Renderable tables and embedded figures: records become rows of typed cells, images become data URIs."""
from __future__ import annotations

import base64
import math
from pathlib import Path

from .._jsonsafe import json_safe


SCALAR = (str, int, float, bool, type(None))


# -- formatting filters (the only place numbers become text) ------------------------------


def pretty(key) -> str:
    return str(key).replace("_", " ")


_COUNT_NAMES = {"n", "n_pos", "n_neg", "tp", "fn", "tn", "fp", "count", "fn_before", "fn_after", "fp_before",
                "fp_after", "delta_fn", "delta_fp"}


_LOW_SUFFIXES = (("_lo", "_hi"), ("_low", "_high"))


def _column_kind(key: str) -> str:
    k = str(key).lower()
    if k.endswith(" ci") or k.endswith("_ci"):
        return "auto"  # an interval, written like every other
    if "share" in k or k.endswith("pct") or k.startswith("pct"):
        return "pct" if "change" not in k else "percent"
    if k == "percent" or k.endswith("_percent") or k.endswith("change pct"):
        return "percent"
    if "threshold" in k or "cut" in k:
        return "thr"
    if k.startswith("p_") or k in ("p value", "p adjusted", "p permutation"):
        return "p"
    return "auto"


def _merge_intervals(columns: list, records: list) -> tuple[list, list]:
    """Merge ``X_lo``/``X_hi`` (or ``_low``/``_high``) column pairs: into ``X`` as
    ``[estimate, low, high]`` when ``X`` is a column, else into a new interval column ``X``
    (``[low, high]``) at the place of ``X_lo``."""
    merged, cols, recs = {}, list(columns), [dict(r) for r in records]
    for c in list(cols):
        for lo_s, hi_s in _LOW_SUFFIXES:
            if str(c).endswith(lo_s) and f"{str(c)[:-len(lo_s)]}{hi_s}" in cols:
                merged[str(c)[:-len(lo_s)]] = (c, f"{str(c)[:-len(lo_s)]}{hi_s}")
    for base, (lo, hi) in merged.items():
        if base in cols:
            for r in recs:
                est = r.get(base)
                if isinstance(est, (int, float)) and not isinstance(est, bool) or est is None:
                    r[base] = {"_est_ci": [est, r.get(lo), r.get(hi)]}
            cols = [c for c in cols if c not in (lo, hi)]
        else:
            name = base or "interval"
            for r in recs:
                r[name] = [r.get(lo), r.get(hi)]
            cols = [name if c == lo else c for c in cols if c != hi]
    return cols, recs


def _intify(value):
    """Integral floats of a count (and of its interval or before/after pair) as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):  # an interval of a count (e.g. bootstrap percentiles) is shown in counts
        return [int(round(v)) if isinstance(v, float) and math.isfinite(v) else _intify(v) for v in value]
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("_est_ci", "_change"):
        return {k: _intify(v) for k, v in value.items()}
    return value


def _cell(value, kind: str) -> dict:
    """``{v: raw value, k: format kind, n: right-align (a number, or numbers)}``."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("_est_ci", "_change"):
        key = next(iter(value))
        return {"v": json_safe(value[key]), "k": key[1:], "n": True}
    numeric = isinstance(value, (int, float)) or (
        isinstance(value, list) and any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
    return {"v": json_safe(value), "k": kind, "n": bool(numeric)}


def make_table(caption: str, records: list, *, columns=None, source: str = "", labels=None) -> dict:
    """A renderable table: ``caption``, ``columns`` [{key, label, kind}], ``rows`` (lists
    of cells ``{v: raw JSON value, k: format kind}``), ``source`` (where the numbers come
    from). Interval column pairs are merged (see :func:`_merge_intervals`); in a row whose
    ``metric`` or ``item`` is a count (FN, n ...), integral floats are shown as integers."""
    records = [r if isinstance(r, dict) else {"value": r} for r in records]
    if columns is None:
        columns = []
        for r in records:
            for k in r:
                if k not in columns:
                    columns.append(k)
    columns, records = _merge_intervals([str(c) for c in columns], records)
    labels = labels or {}
    cols = [{"key": k, "label": labels.get(k, pretty(k)), "kind": _column_kind(k)} for k in columns]
    rows = []
    for r in records:
        row_name = str(r.get("item") or r.get("metric") or "")
        row_kind = _column_kind(row_name)
        is_count = row_name.replace(" ", "_") in _COUNT_NAMES
        cells = []
        for c in cols:
            v = r.get(c["key"])
            if is_count or c["key"] in _COUNT_NAMES:
                v = _intify(v)
            kind = c["kind"] if c["kind"] != "auto" or c["key"] != "value" else row_kind
            cells.append(_cell(v, kind))
        rows.append(cells)
    for j in range(len(cols)):  # a missing value aligns with the rest of its column
        numeric = any(row[j]["n"] for row in rows if row[j]["v"] is not None)
        for row in rows:
            if row[j]["v"] is None:
                row[j]["n"] = numeric
    return {"kind": "table", "caption": caption, "columns": cols, "rows": rows, "source": source,
            "wide": len(cols) > 7}


def kv_table(caption: str, mapping: dict, *, source: str = "") -> dict:
    return make_table(caption, [{"item": pretty(k), "value": v} for k, v in mapping.items()],
                  columns=["item", "value"], source=source)


def is_flat(value) -> bool:
    """A dict whose values are scalars or lists of scalars."""
    return isinstance(value, dict) and all(
        isinstance(x, SCALAR) or (isinstance(x, list) and all(isinstance(y, SCALAR) for y in x))
        for x in value.values())


def _flatten(record: dict) -> dict:
    """One level of nested dicts becomes dotted column names (``ci.recall``)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict) and v:
            out.update({f"{k}.{k2}": v2 for k2, v2 in v.items()})
        else:
            out[k] = v
    return out


def is_records(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def generic_parts(name: str, value, *, source: str, depth: int = 0, caption: str | None = None) -> list:
    """Render any JSON value as tables.

    Records (a list of dicts) -> one table. A dict -> its scalars in an item/value table;
    its flat-dict values that share one key set -> one table with a row per key (e.g.
    ``{"light": {"n": .., "recall": ..}, "dark": {...}}``); other flat dicts -> their own
    item/value table; a nested ``tables`` dict -> one table per name; anything deeper
    recurses (to depth 3; beyond, the value is shown as text)."""
    caption = caption or pretty(name)
    if is_records(value):
        return [make_table(caption, [_flatten(r) for r in value], source=source)]
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if isinstance(v, SCALAR) or (
            isinstance(v, list) and all(isinstance(x, SCALAR) for x in v))}
        flat = {k: v for k, v in value.items() if k not in scalars and isinstance(v, dict) and v and is_flat(v)}
        parts = [kv_table(caption, scalars, source=source)] if scalars else []
        if len(flat) >= 2 and len({tuple(v) for v in flat.values()}) == 1:
            parts.append(make_table(caption if not scalars else f"{caption}: by name",
                                [{"name": k, **v} for k, v in flat.items()], source=source))
        else:
            parts.extend(kv_table(f"{caption}: {pretty(k)}" if depth or scalars else pretty(k), v,
                                   source=f"{source}.{k}") for k, v in flat.items())
        for k, v in value.items():
            if k in scalars or k in flat:
                continue
            if k == "tables" and isinstance(v, dict):
                for tname, records in v.items():
                    parts.extend(generic_parts(tname, records, source=f"{source}.tables.{tname}",
                                                caption=TABLE_CAPTIONS.get(tname, pretty(tname))))
            elif depth >= 3:
                parts.append(kv_table(f"{caption}: {pretty(k)}", {"value": str(v)}, source=source))
            else:
                parts.extend(generic_parts(f"{name} / {k}", v, source=f"{source}.{k}", depth=depth + 1))
        return parts
    if isinstance(value, list):
        return [make_table(caption, [{"value": v} for v in value], columns=["value"], source=source)] if value else []
    return [kv_table(caption, {name: value}, source=source)]


TABLE_CAPTIONS = {
    "table7": "Images per ITA group (layout of the paper's Table 7)",
    "table8": "Metrics per ITA group (layout of the paper's Table 8): gap = max - min over the groups; "
              "significant paper rule = the paper's fixed-gap heuristic, not a statistical test",
    "table6": "False negatives per failure mode (layout of the paper's Table 6)",
}


_PNG = b"\x89PNG\r\n\x1a\n"


_JPEG = b"\xff\xd8\xff"


def _read_figure(path) -> tuple[str | None, str | None]:
    """(data URI, None) for a PNG or JPEG file, or (None, reason)."""
    p = Path(path)
    if not p.is_file():
        return None, f"figure file {p.name} not found"
    return data_uri(p.read_bytes(), p.name)


def data_uri(data: bytes, name: str) -> tuple[str | None, str | None]:
    if data.startswith(_PNG):
        mime = "image/png"
    elif data.startswith(_JPEG):
        mime = "image/jpeg"
    else:
        return None, f"figure file {name} is not a PNG or JPEG image"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", None


def embed_figure(name: str, path, *, caption: str, base: Path, blobs: dict | None = None) -> dict:
    """A figure to embed. A relative path whose file stem names an entry of ``blobs``
    (``AuditResult.figures``: name -> PNG bytes) is taken from memory; otherwise the file is
    read (relative paths from ``base``, the output folder)."""
    p = Path(path)
    blob = (blobs or {}).get(p.stem) if not p.is_absolute() else None
    if isinstance(blob, (bytes, bytearray)):
        src, reason = data_uri(bytes(blob), p.name)
        shown = str(p)
    else:
        if not p.is_absolute():
            p = base / p
        src, reason = _read_figure(p)
        try:
            shown = str(p.relative_to(base))
        except ValueError:
            shown = p.name
    return {"kind": "figure", "name": name, "caption": caption, "file": shown, "src": src, "reason": reason}
