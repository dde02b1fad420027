"""The one per-image cache loop: rows and CAM maps of images already analysed are read from the
content-addressed cache, only the others are computed, and each fresh result is stored."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ._version import __version__

__all__ = ["cached_rows", "cached_cams"]

#: Rows converted to and from JSON at a time (bounds the per-row dicts alive at once).
_ROW_BLOCK = 512


def cached_rows(dataset, cache, stage: str, params: dict, compute) -> pd.DataFrame:
    """Run ``compute(dataset) -> DataFrame (one row per image, column image_id)`` only on the
    images whose row is not in ``cache``; rows are keyed by the image's and mask's bytes,
    ``params``, the row's own ``ita`` / ``group`` overrides and the skinaudit version. Rows
    whose ``status`` is not ``ok`` (unreadable images) are never cached.

    Every row goes through JSON (the cache's form), so a cold and a warm run give the same
    table. Rows are held as (keys, values) tuples, not one dict per image, and fresh rows are
    converted block by block: memory per image stays a few hundred bytes."""
    from .cache import image_digest

    if cache is None:
        return compute(dataset)
    params = {**params, "version": __version__}
    given = [c for c in ("ita", "group") if c in dataset.table.columns]
    keys, rows, todo, shapes = {}, {}, [], {}
    for r in dataset.table.itertuples(index=False):
        try:
            digest = image_digest(r.image_path) + (image_digest(r.mask_path) if r.mask_path else "")
        except OSError:
            todo.append(r.image_id)
            continue
        overrides = {c: None if pd.isna(getattr(r, c)) else str(getattr(r, c)) for c in given}
        keys[r.image_id] = cache.key(digest, stage, {**params, "overrides": overrides})
        hit = cache.get(keys[r.image_id])
        if hit is None:
            todo.append(r.image_id)
        else:
            rows[r.image_id] = _packed(json.loads(hit["row"]), shapes)
    if todo:
        fresh = compute(dataset.subset(todo))
        for start in range(0, len(fresh), _ROW_BLOCK):
            for rec in json.loads(fresh.iloc[start:start + _ROW_BLOCK].to_json(orient="records")):
                rows[rec["image_id"]] = _packed(rec, shapes)
                if rec.get("status", "ok") == "ok" and rec["image_id"] in keys:
                    cache.put(keys[rec["image_id"]], {"row": json.dumps(rec, sort_keys=True)})
        del fresh
    return _frame_from_packed([rows[i] for i in dataset.table["image_id"] if i in rows])


def _packed(rec: dict, shapes: dict) -> tuple:
    """``(keys, values)`` of a row dict; rows with the same keys share one keys tuple."""
    k = tuple(rec)
    return shapes.setdefault(k, k), tuple(rec.values())


def _frame_from_packed(packed: list) -> pd.DataFrame:
    """``pd.DataFrame(list of row dicts)`` from :func:`_packed` rows, without a dict per row:
    columns in order of first appearance, a key a row lacks is NaN (as pandas fills it)."""
    if not packed:
        return pd.DataFrame([])
    columns = tuple(dict.fromkeys(c for k in dict.fromkeys(k for k, _ in packed) for c in k))
    data = []
    for k, values in packed:
        if k != columns:
            row = dict(zip(k, values))
            values = tuple(row.get(c, np.nan) for c in columns)
        data.append(values)
    return pd.DataFrame(data, columns=list(columns))


def cached_cams(model, images, paths, *, target, config, cache):
    """compute_cams with the per-image cache (file-backed models only; key: image bytes, model
    file hash, preprocessing, layer, target). Maps are stored as float16."""
    from .cache import image_digest
    from .explain import compute_cams

    identity = model.cache_params() if cache is not None else None
    if identity is None:
        return compute_cams(model, images, target=target, target_layer=config.target_layer,
                            batch_size=config.batch_size)
    params = {**identity, "layer": config.target_layer, "target": target, "version": __version__}
    keys = [cache.key(image_digest(p), "cam", params) for p in paths]
    out = [None] * len(images)
    for k, key in enumerate(keys):
        hit = cache.get(key)
        if hit is not None and hit["cam"].shape == images[k].shape[:2]:
            out[k] = hit["cam"].astype(np.float32)
    todo = [k for k in range(len(images)) if out[k] is None]
    if todo:
        fresh = compute_cams(model, [images[k] for k in todo], target=target, target_layer=config.target_layer,
                             batch_size=config.batch_size)
        for k, cam in zip(todo, fresh):
            half = cam.astype(np.float16)
            out[k] = half.astype(np.float32)  # what a later cached run reads: same numbers cold or warm
            cache.put(keys[k], {"cam": half})
    return out
