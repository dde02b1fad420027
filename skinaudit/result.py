"""What an audit found, as typed records: :class:`AuditResult` and its sections.

The result knows how to become the files of an audit (``audit.json``, ``metrics.json``,
``predictions.csv``, the CSV tables and figures) and how to be read back from them
(:meth:`AuditResult.read`), so a saved audit can be re-rendered by a newer report. It never
renders the report itself: :mod:`skinaudit.report` reads results, not the reverse.

Every section is a :class:`Section`: whether the stage ran (``available``, ``reason``) and its
JSON payload (``data``, the layout documented in ``docs/report.md``). The sections the report
interprets expose typed accessors (:meth:`FairnessSection.verdicts`,
:meth:`FairnessSection.paper_flags`, :meth:`RecalibrationSection.global_thresholds`), and the
grouping scheme comes from the typed configuration, so no reader guesses the layout.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ._jsonsafe import json_safe, leaves
from ._version import __version__
from .config import AuditConfig
from .errors import DataError
from .outputs import RowRecords, dump_json, read_csv, write_csv, write_json

__all__ = ["AuditResult", "Section", "FairnessSection", "RecalibrationSection",
           "SECTION_NAMES", "unavailable"]

#: The sections of an audit, in the order of ``audit.json``'s producer (stages in order).
SECTION_NAMES = ("overall", "groups", "skintone", "fairness", "recalibration", "localisation", "failure_modes",
                 "explanations", "counterfactual")
_PREDICTION_COLUMNS = ("image_id", "label", "score", "prediction")


def unavailable(reason: str, **extra) -> dict:
    """The payload of a section whose stage could not run: ``{"available": False, "reason": ...}``."""
    return {"available": False, "reason": reason, **extra}


@dataclass(frozen=True)
class Section:
    """One section of an audit: its ``name`` and JSON payload ``data``."""

    name: str
    data: dict

    @property
    def available(self) -> bool:
        """False when the stage could not run (``reason`` says why)."""
        return self.data.get("available", True) is not False

    @property
    def reason(self) -> str | None:
        return self.data.get("reason") if not self.available else None

    def get(self, key, default=None):
        return self.data.get(key, default)

    def __getitem__(self, key):
        return self.data[key]

    def __contains__(self, key) -> bool:
        return key in self.data

    def to_dict(self) -> dict:
        return self.data

    @classmethod
    def from_dict(cls, name: str, data) -> "Section":
        if not isinstance(data, dict):
            raise DataError(f"the section '{name}' of the saved audit is not an object")
        return _SECTION_TYPES.get(name, Section)(name, data)


class FairnessSection(Section):
    """The fairness statistics of :func:`skinaudit.fairness.fairness_report`."""

    @property
    def alpha(self) -> float | None:
        a = self.data.get("alpha")
        return float(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else None

    def verdicts(self) -> list[tuple[str, str]]:
        """``(metric.group, verdict)`` for every verdict (``verdicts``: metric -> group -> text)."""
        return [(".".join(path), v.strip().lower()) for path, v in leaves(self.data.get("verdicts") or {})
                if isinstance(v, str)]

    def paper_flags(self) -> list[tuple[str, bool]]:
        """``(metric.group, flagged)`` of the paper's fixed-gap heuristic (``paper_rule.flags``)."""
        flags = (self.data.get("paper_rule") or {}).get("flags") or {}
        return [(".".join(path), v) for path, v in leaves(flags) if isinstance(v, bool)]


class RecalibrationSection(Section):
    """The threshold recalibration of :func:`skinaudit.fairness.recalibrate` (``methods``: name -> result)."""

    def global_thresholds(self) -> dict[str, float]:
        """method -> its threshold over all images (``methods.<name>.thresholds.all``), when it has one."""
        out = {}
        for name, method in (self.data.get("methods") or {}).items():
            if not isinstance(method, dict):
                continue
            thresholds = method.get("thresholds")
            t = thresholds.get("all") if isinstance(thresholds, dict) else None
            if not _finite(t):
                t = method.get("threshold")
            if _finite(t):
                out[name] = float(t)
        return out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_SECTION_TYPES = {"fairness": FairnessSection, "recalibration": RecalibrationSection}


def _sections(mapping: dict) -> dict:
    return {k: v if isinstance(v, Section) else Section.from_dict(k, v) for k, v in mapping.items()}


@dataclass
class AuditResult:
    """Everything one audit found.

    ``sections`` maps a section name (:data:`SECTION_NAMES`) to its :class:`Section` (a plain
    dict payload given here is wrapped); a stage that could not run has
    ``{"available": False, "reason": ...}``. ``predictions`` has one row per scored image;
    ``tables`` are DataFrames written as CSV; ``figures`` are PNG bytes written under
    ``figures/`` (name -> bytes, names may hold one ``/``).
    """

    config: AuditConfig
    dataset: dict
    model: dict
    predictions: pd.DataFrame
    sections: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["image_id", "reason"]))
    figures: dict = field(default_factory=dict)
    #: Presentation orders read from a saved audit (``audit.json``'s ``key_order``); None for a
    #: result made in memory, whose objects are in the order the stages made them.
    key_order: list | None = None

    def __post_init__(self):
        self.sections = _sections(self.sections)

    def section(self, name: str) -> Section | None:
        """The section ``name``, or None when this audit has none of that name (a plain dict
        assigned to ``sections`` after construction is wrapped)."""
        sec = self.sections.get(name)
        return sec if sec is None or isinstance(sec, Section) else Section.from_dict(name, sec)

    @property
    def overall(self) -> dict:
        """The overall metrics at the audit threshold (the paper's Table 3)."""
        return self.sections["overall"].data

    # -- the files of an audit -------------------------------------------------------------
    def metrics_dict(self) -> dict:
        """The content of ``metrics.json``."""
        return {"threshold": self.config.threshold, **{k: s.to_dict() for k, s in self.sections.items()},
                "skipped": self.skipped.to_dict(orient="records")}

    def _summary_dict(self) -> dict:
        from .order import recorded_orders

        orders = self.key_order if self.key_order is not None else recorded_orders(self)
        return {"skinaudit_version": __version__, "config": self.config.to_dict(), "dataset": self.dataset,
                "model": self.model, **self.metrics_dict(), **({"key_order": orders} if orders else {})}

    def to_dict(self) -> dict:
        """The content of ``audit.json``: everything, machine-readable, deterministic."""
        return {**self._summary_dict(), "predictions": self.predictions.to_dict(orient="records")}

    def to_json(self) -> str:
        return dump_json(self.to_dict())

    def write_files(self, folder) -> None:
        """Write ``predictions.csv``, ``metrics.json``, ``audit.json``, the CSV tables,
        ``skipped.csv`` (when any) and ``figures/`` into the existing ``folder`` (no report)."""
        folder = Path(folder)
        write_csv(self.predictions, folder / "predictions.csv")
        write_json(folder / "metrics.json", json_safe(self.metrics_dict()))
        # the same text as to_json(), streamed: the predictions are encoded a block of rows at a time
        write_json(folder / "audit.json", {**json_safe(self._summary_dict()),
                                           "predictions": RowRecords(self.predictions)})
        for name, table in self.tables.items():
            write_csv(table, folder / f"{name}.csv")
        if len(self.skipped):
            write_csv(self.skipped, folder / "skipped.csv")
        for name, png in self.figures.items():
            path = folder / "figures" / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)

    @classmethod
    def from_dict(cls, data: dict, *, tables: dict | None = None, figures: dict | None = None,
                  columns=None) -> "AuditResult":
        """The inverse of :meth:`to_dict`. ``columns`` orders the predictions' columns (JSON
        objects have sorted keys; ``predictions.csv`` keeps the audit's order)."""
        if not isinstance(data, dict) or "config" not in data or "predictions" not in data:
            raise DataError("this is not the audit.json of a skinaudit audit (no 'config' or 'predictions')")
        pred = pd.DataFrame(data["predictions"])
        if len(pred) and not set(_PREDICTION_COLUMNS) <= set(pred.columns):
            raise DataError(f"the saved predictions lack {sorted(set(_PREDICTION_COLUMNS) - set(pred.columns))}")
        if columns is not None:
            pred = pred[[c for c in columns if c in pred.columns] + [c for c in pred.columns if c not in columns]]
        skipped = pd.DataFrame(data.get("skipped") or [], columns=None if data.get("skipped") else
                               ["image_id", "reason"])
        return cls(config=AuditConfig.from_dict(data["config"]), dataset=data.get("dataset") or {},
                   model=data.get("model") or {}, predictions=pred,
                   sections={k: data[k] for k in SECTION_NAMES if k in data},
                   tables=dict(tables or {}), skipped=skipped, figures=dict(figures or {}),
                   key_order=[[str(p), [str(k) for k in keys]] for p, keys in data.get("key_order") or []])

    @classmethod
    def read(cls, path) -> "AuditResult":
        """Load a saved audit: ``path`` is its ``audit.json`` or the folder holding it. The CSV
        tables and the figures beside it are read too (they feed the report)."""
        path = Path(path)
        if path.is_dir():
            path = path / "audit.json"
        if not path.is_file():
            raise DataError(f"{path}: no saved audit here (expected the audit.json of 'skinaudit run')")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: not a readable audit.json ({exc})") from None
        folder = path.parent
        columns = None
        if (folder / "predictions.csv").is_file():
            columns = list(read_csv(folder / "predictions.csv", nrows=0).columns)
        tables = {}
        for csv in sorted(folder.glob("*.csv")):
            if csv.stem not in ("predictions", "skipped"):
                tables[csv.stem] = read_csv(csv, keep_default_na=False, na_values=[""])
        figures = {str(p.relative_to(folder / "figures").with_suffix("")): p.read_bytes()
                   for p in sorted((folder / "figures").rglob("*.png"))} if (folder / "figures").is_dir() else {}
        return cls.from_dict(data, tables=tables, figures=figures, columns=columns)
