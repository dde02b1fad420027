"""The one per-image cache loop: rows and CAM maps of images already analysed are read from the
content-addressed cache, only the others are computed, and each fresh result is stored."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ._version import __version__

__all__ = ["cached_rows", "cached_cams", "duplicate_images", "duplicate_summary"]

#: Rows converted to and from JSON at a time (bounds the per-row dicts alive at once).
_ROW_BLOCK = 512


def cached_rows(dataset, cache, stage: str, params: dict, compute) -> pd.DataFrame:
    """Run ``compute(dataset) -> DataFrame (one row per image, column image_id)`` only on the
    images whose row is not in ``cache``, once per distinct content.

    A row is keyed by what determines it: the image's and mask's bytes, ``params``, the row's
    own ``ita`` / ``group`` overrides and the skinaudit version, never the image id. Images
    with identical content share one computed row, and each gets it under its own id (a copy
    or a renamed file is served the same numbers). Rows whose ``status`` is not ``ok``
    (unreadable images) are never cached.

    Every row, cached or not, goes through one canonical form (Python values, columns in the
    order ``compute`` made them; JSON in the cache, lossless for floats), so a cold, a warm and
    an uncached run give the same table. Rows are held as (keys, values) tuples, not one dict
    per image, and fresh rows are converted block by block: memory per image stays a few
    hundred bytes."""
    from .cache import image_digest

    ids = [str(i) for i in dataset.table["image_id"]]
    keys: dict[str, str | None] = dict.fromkeys(ids)  # id -> content key (None: computed on its own)
    if cache is not None:
        params = {**params, "version": __version__}
        given = [c for c in ("ita", "group") if c in dataset.table.columns]
        for r in dataset.table.itertuples(index=False):
            try:
                digest = image_digest(r.image_path) + (image_digest(r.mask_path) if r.mask_path else "")
            except (OSError, ValueError):  # unreadable here: the stage reports it
                continue
            overrides = {c: None if pd.isna(getattr(r, c)) else str(getattr(r, c)) for c in given}
            keys[str(r.image_id)] = cache.key(digest, stage, {**params, "overrides": overrides})
    rows, shapes, todo = {}, {}, []
    for i in ids:
        slot = keys[i] or ("id", i)
        if slot in rows:
            continue  # same content as an earlier image: its row serves this one too
        hit = cache.get(slot) if keys[i] else None
        if hit is None:
            rows[slot] = None
            todo.append(i)
        else:
            rows[slot] = _packed(json.loads(hit["row"]), shapes)
    if todo:
        fresh = compute(dataset.subset(todo))
        for start in range(0, len(fresh), _ROW_BLOCK):
            for rec in fresh.iloc[start:start + _ROW_BLOCK].to_dict(orient="records"):
                i = str(rec["image_id"])
                rec["image_id"] = None  # a row is stored without the id it was computed for
                text = json.dumps(rec, default=_plain)  # the canonical form, cached or not
                rows[keys.get(i) or ("id", i)] = _packed(json.loads(text), shapes)
                if keys.get(i) and rec.get("status", "ok") == "ok":
                    cache.put(keys[i], {"row": text})
        del fresh
    found = ((i, rows.get(keys[i] or ("id", i))) for i in ids)
    return _frame_from_packed([_with_id(row, i) for i, row in found if row is not None])


def duplicate_images(dataset) -> pd.DataFrame:
    """Images whose files have identical bytes: ``image_id, sha256, copies`` (one row per image
    of each set of two or more, in dataset order; empty when there are none). A data-quality
    finding, never merged: each image keeps its own row in the audit, but a copy counted twice
    inflates its group, and a copy in both a training and a test split leaks. Unreadable files
    are left to the stages that report them."""
    from .cache import image_digest

    ids, digests = [], []
    for r in dataset.table.itertuples(index=False):
        try:
            digests.append(image_digest(r.image_path))
        except (OSError, ValueError):
            continue
        ids.append(str(r.image_id))
    found = pd.DataFrame({"image_id": ids, "sha256": digests}, columns=["image_id", "sha256"])
    copies = found.groupby("sha256", sort=False)["image_id"].transform("size")
    found = found.assign(copies=copies.astype(int))
    return found[found["copies"] > 1].reset_index(drop=True)


def duplicate_summary(found: pd.DataFrame) -> dict:
    """The dataset section's account of :func:`duplicate_images`: counts and the sets of ids."""
    sets = [list(g) for _, g in found.groupby("sha256", sort=False)["image_id"]]
    return {"images": len(found), "sets": len(sets), "ids": sets}


def _plain(value):
    """JSON form of the numpy scalars a DataFrame row may hold (lossless)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a per-image row holds a {type(value).__name__}, which the cache cannot store")


def _with_id(packed: tuple, image_id: str) -> tuple:
    keys, values = packed
    where = keys.index("image_id")
    return keys, values[:where] + (image_id,) + values[where + 1:]


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
