"""JSON-safe conversion shared by metrics.json, audit.json, the fairness sections and the report."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["json_safe", "leaves"]


def json_safe(obj):
    """Recursively convert numpy / pandas values to JSON types; NaN and inf -> None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return json_safe(obj.to_dict(orient="records"))
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def leaves(obj, path=()):
    """Yield (key path, value) for every leaf of nested dicts and lists."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, (*path, str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, (*path, str(i)))
    else:
        yield path, obj
