"""The audit: the only place that sequences the stages.

``run_audit(model, dataset, config)`` scores every image once and computes every table
from those scores and one stated threshold, so the numbers in ``predictions.csv``,
``metrics.json``, ``audit.json`` and the report can never disagree.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .data import AuditDataset
from .errors import ConfigError, DataError
from .metrics import binary_metrics, check_threshold
from .models import CallableModel, PrecomputedScores, ScoreModel, score_dataset

__all__ = ["AuditConfig", "AuditResult", "run_audit", "json_safe", "atomic_output_dir"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditConfig:
    """Every choice of an audit (immutable; recorded in the report's appendix).

    threshold : decision threshold; a case is predicted malignant when score >= threshold.
    batch_size : images per model call.
    strict : turn per-image problems (unreadable image, ...) into errors instead of
        flagged rows.
    seed : seed of every random step (bootstrap, splits).
    """

    threshold: float = 0.5
    batch_size: int = 16
    strict: bool = False
    seed: int = 0

    def __post_init__(self):
        check_threshold(self.threshold)
        if int(self.batch_size) < 1:
            raise ConfigError(f"the 'batch_size' parameter must be at least 1; got {self.batch_size}")
        if int(self.seed) < 0:
            raise ConfigError(f"the 'seed' parameter must be a non-negative integer; got {self.seed}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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


def _dump_json(data) -> str:
    return json.dumps(json_safe(data), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _model_info(model) -> dict:
    from .imageio import file_sha256

    path = getattr(model, "path", None)
    info = {"name": getattr(model, "name", type(model).__name__), "adapter": type(model).__name__,
            "path": str(path) if path else None, "sha256": file_sha256(path) if path else None}
    if getattr(model, "arch", None):
        info["arch"] = model.arch
    pre = getattr(model, "preprocess", None)
    if pre is not None:
        info["preprocess"] = dataclasses.asdict(pre)
    return info


@dataclass
class AuditResult:
    """Everything one audit found. ``sections`` are JSON-ready dicts (``overall``, later
    ``groups``, ``fairness``, ...); ``tables`` are DataFrames written as CSV."""

    config: AuditConfig
    dataset: dict
    model: dict
    predictions: pd.DataFrame
    sections: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["image_id", "reason"]))

    @property
    def overall(self) -> dict:
        return self.sections["overall"]

    def metrics_dict(self) -> dict:
        """The content of ``metrics.json``."""
        return {"threshold": self.config.threshold, **self.sections,
                "skipped": self.skipped.to_dict(orient="records")}

    def to_dict(self) -> dict:
        """The content of ``audit.json``: everything, machine-readable, deterministic."""
        return {"skinaudit_version": __version__, "config": self.config.to_dict(), "dataset": self.dataset,
                "model": self.model, **self.metrics_dict(),
                "predictions": self.predictions.to_dict(orient="records")}

    def to_json(self) -> str:
        return _dump_json(self.to_dict())

    def write(self, out_dir) -> Path:
        """Write ``predictions.csv``, ``metrics.json``, ``audit.json`` and the CSV tables
        into ``out_dir`` atomically (all files appear together or none change)."""
        with atomic_output_dir(out_dir) as tmp:
            self.predictions.to_csv(tmp / "predictions.csv", index=False)
            (tmp / "metrics.json").write_text(_dump_json(self.metrics_dict()), encoding="utf-8")
            (tmp / "audit.json").write_text(self.to_json(), encoding="utf-8")
            for name, table in self.tables.items():
                table.to_csv(tmp / f"{name}.csv", index=False)
            if len(self.skipped):
                self.skipped.to_csv(tmp / "skipped.csv", index=False)
        return Path(out_dir)


class atomic_output_dir:
    """Context manager: write into a staging folder beside ``out_dir``; on success move
    each file into ``out_dir`` (``os.replace``, atomic per file), on any error or
    interruption delete the staging folder and leave ``out_dir`` as it was."""

    def __init__(self, out_dir):
        self.out = Path(out_dir)

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


def _as_model(model):
    if isinstance(model, (ScoreModel, PrecomputedScores)):
        return model
    if callable(model):
        return CallableModel(model)
    raise ConfigError(f"the model must be a ScoreModel, a callable or PrecomputedScores; got {type(model).__name__}")


def run_audit(model, dataset: AuditDataset, config: AuditConfig | None = None, *, progress=None,
              cache=None) -> AuditResult:
    """Audit ``model`` on ``dataset``.

    Parameters
    ----------
    model : ScoreModel, callable or PrecomputedScores
        A callable is wrapped in :class:`~skinaudit.models.CallableModel`.
    dataset : AuditDataset
    config : AuditConfig, optional
    progress : callable, optional
        tqdm-like ``progress(iterable, total=, desc=)`` for long stages.
    cache : ResultCache or path, optional
        Per-image result cache (content-addressed; see :mod:`skinaudit.cache`).
    """
    from .cache import ResultCache

    if cache is not None and not isinstance(cache, ResultCache):
        cache = ResultCache(cache)
    config = config or AuditConfig()
    if not isinstance(dataset, AuditDataset):
        raise ConfigError(f"the dataset must be an AuditDataset; got {type(dataset).__name__}")
    model = _as_model(model)
    scored = score_dataset(model, dataset, batch_size=config.batch_size, strict=config.strict, progress=progress,
                           cache=cache)
    table = dataset.table.set_index("image_id")
    labels = table.loc[scored["image_id"], "label"].to_numpy(int)
    ok = scored["status"].eq("ok").to_numpy()
    skipped = pd.DataFrame({"image_id": scored["image_id"][~ok], "reason": scored["status"][~ok]})
    skipped = pd.concat([skipped, dataset.excluded], ignore_index=True)
    if not ok.any():
        raise DataError(f"no image of dataset '{dataset.name}' could be scored "
                        f"(e.g. {skipped['image_id'].iloc[0]}: {skipped['reason'].iloc[0]})")
    pred = pd.DataFrame({"image_id": scored["image_id"][ok], "label": labels[ok], "score": scored["score"][ok]})
    pred["prediction"] = (pred["score"] >= config.threshold).astype(int)
    pred = pred.reset_index(drop=True)
    overall = binary_metrics(pred["label"].to_numpy(), pred["score"].to_numpy(), threshold=config.threshold)
    return AuditResult(config=config, dataset=dataset.summary(), model=_model_info(model), predictions=pred,
                       sections={"overall": overall}, skipped=skipped.reset_index(drop=True))
