"""The audit: the only place that sequences the stages.

``run_audit(model, dataset, config)`` scores every image once and computes every table
from those scores and one stated threshold, so the numbers in ``predictions.csv``,
``metrics.json``, ``audit.json`` and the report can never disagree.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__
from .data import AuditDataset
from .errors import ConfigError, DataError
from .metrics import binary_metrics, check_threshold
from ._jsonsafe import json_safe
from .models import CallableModel, PrecomputedScores, ScoreModel, score_dataset

__all__ = ["AuditConfig", "AuditResult", "run_audit", "json_safe", "atomic_output_dir"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditConfig:
    """Every choice of an audit (immutable; recorded in audit.json and the report's appendix).

    Scoring: ``threshold`` (a case is predicted malignant when score >= threshold),
    ``batch_size``, ``strict`` (per-image problems become errors instead of flagged rows),
    ``seed`` (every random step: bootstrap, permutations, splits, CAM sample).

    Skin tone: ``skin_tone`` (estimate ITA from the images; a manifest's ``ita`` / ``group``
    columns override it), ``scheme`` (``binary``, ``del_bino``, ``kinyanjui`` or cut points
    such as ``"10,28,41"``), ``n_jobs`` (processes for image analysis), ``sensitivity_sample``
    (images re-analysed under every ITA estimator variant; 0 = off), ``ita_correction``
    (``"dataset_reference"``: the one-sided per-acquisition-group blue-cast correction of
    :func:`skinaudit.skintone.correct_cast`, or ``"none"``), ``cast_group`` (the dataset column
    naming acquisition groups; None = one group), ``reference_b`` (the skin b* a cast group's
    median is raised to), ``skin_margin`` (``"shrink"``: narrow the lesion margin of a large
    lesion so enough skin remains; ``"full"``: keep it and report ``unknown`` instead).

    Statistics: ``alpha``, ``n_boot``, ``min_positives``, ``reference`` (the comparison
    group; default the largest).

    Recalibration: ``calibration_fraction`` (stratified share of the audited images used to
    fit thresholds when no separate calibration file is given; the rest reports them),
    ``gamma`` (recall target), ``step`` (threshold grid step).

    Explanations (eager PyTorch models only): ``explain`` (``"auto"`` or ``"off"``),
    ``target_layer`` (dotted path; default per architecture), ``keep_top`` (share of the CAM
    kept when sharpening), ``cases_per_kind`` (TP/TN/FN/FP triptych rows), ``cam_sample``
    (random images whose CAMs measure localisation by group), ``explain_fp`` (classify false
    positives too).
    """

    threshold: float = 0.5
    batch_size: int = 16
    strict: bool = False
    seed: int = 0
    skin_tone: bool = True
    scheme: str = "binary"
    n_jobs: int = 2
    sensitivity_sample: int = 200
    ita_correction: str = "dataset_reference"
    cast_group: str | None = None
    reference_b: float = 15.0
    skin_margin: str = "shrink"
    alpha: float = 0.05
    n_boot: int = 2000
    min_positives: int = 10
    reference: str | None = None
    calibration_fraction: float = 0.3
    gamma: float = 0.85
    step: float = 0.02
    explain: str = "auto"
    target_layer: str | None = None
    keep_top: float = 0.25
    cases_per_kind: int = 2
    cam_sample: int = 100
    explain_fp: bool = False

    def __post_init__(self):
        check_threshold(self.threshold)
        for name in ("batch_size", "n_jobs", "n_boot"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"the '{name}' parameter must be at least 1; got {getattr(self, name)}")
        for name in ("seed", "sensitivity_sample", "min_positives", "cases_per_kind", "cam_sample"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"the '{name}' parameter must be a non-negative integer; got {getattr(self, name)}")
        self.ita_params()  # validates ita_correction, reference_b
        if not 0.0 < float(self.alpha) < 1.0:
            raise ConfigError(f"the 'alpha' parameter must be in (0, 1); got {self.alpha}")
        if not 0.0 < float(self.calibration_fraction) < 1.0:
            raise ConfigError(f"the 'calibration_fraction' parameter must be in (0, 1); got {self.calibration_fraction}")
        if not 0.0 < float(self.gamma) <= 1.0:
            raise ConfigError(f"the 'gamma' parameter must be in (0, 1]; got {self.gamma}")
        if not 0.0 < float(self.step) <= 0.5:
            raise ConfigError(f"the 'step' parameter must be in (0, 0.5]; got {self.step}")
        if not 0.0 < float(self.keep_top) <= 1.0:
            raise ConfigError(f"the 'keep_top' parameter must be in (0, 1]; got {self.keep_top}")
        if self.explain not in ("auto", "off"):
            raise ConfigError(f"the 'explain' parameter must be 'auto' or 'off'; got {self.explain!r}")
        from .skintone import get_scheme

        get_scheme(self.scheme)  # validates names and cut points

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def ita_params(self):
        """The :class:`~skinaudit.skintone.ItaParams` of the skin-tone stage."""
        from .skintone import ItaParams

        if self.ita_correction not in ("dataset_reference", "none"):
            raise ConfigError(f"the 'ita_correction' parameter must be dataset_reference or none; "
                              f"got {self.ita_correction!r}")
        if self.skin_margin not in ("shrink", "full"):
            raise ConfigError(f"the 'skin_margin' parameter must be shrink or full; got {self.skin_margin!r}")
        return ItaParams(ita_correction=self.ita_correction, cast_group=self.cast_group,
                         reference_b=float(self.reference_b), skin_margin=self.skin_margin)


_JSON_FORMAT = {"indent": 2, "sort_keys": True, "ensure_ascii": False, "allow_nan": False}


def _dump_json(data) -> str:
    return json.dumps(json_safe(data), **_JSON_FORMAT) + "\n"


def _write_json(path: Path, data) -> None:
    """``_dump_json(data)`` written to ``path`` as the encoder produces it (no whole-file string)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, **_JSON_FORMAT)
        fh.write("\n")


#: Rows per block when a table is written as CSV.
_CSV_ROWS = 512


class _RowRecords(list):
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
    """Everything one audit found.

    ``sections`` are JSON-ready dicts (``overall``, ``groups``, ``skintone``, ``fairness``,
    ``recalibration``, ``localisation``, ``failure_modes``, ``explanations``); a stage that
    could not run is ``{"available": False, "reason": ...}``. ``tables`` are DataFrames
    written as CSV; ``figures`` are PNG bytes written under ``figures/``.
    """

    config: AuditConfig
    dataset: dict
    model: dict
    predictions: pd.DataFrame
    sections: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["image_id", "reason"]))
    figures: dict = field(default_factory=dict)

    @property
    def overall(self) -> dict:
        return self.sections["overall"]

    def metrics_dict(self) -> dict:
        """The content of ``metrics.json``."""
        return {"threshold": self.config.threshold, **self.sections,
                "skipped": self.skipped.to_dict(orient="records")}

    def _summary_dict(self) -> dict:
        return {"skinaudit_version": __version__, "config": self.config.to_dict(), "dataset": self.dataset,
                "model": self.model, **self.metrics_dict()}

    def to_dict(self) -> dict:
        """The content of ``audit.json``: everything, machine-readable, deterministic."""
        return {**self._summary_dict(), "predictions": self.predictions.to_dict(orient="records")}

    def to_json(self) -> str:
        return _dump_json(self.to_dict())

    def _write_files(self, folder: Path) -> None:
        # CSV in blocks of _CSV_ROWS rows: pandas' default block is 100,000 cells, converted to
        # one Python string each (6 MB for the skin-tone table at 6,000 images)
        self.predictions.to_csv(folder / "predictions.csv", index=False, chunksize=_CSV_ROWS)
        _write_json(folder / "metrics.json", json_safe(self.metrics_dict()))
        # the same text as to_json(), streamed: the predictions are encoded a block of rows at a time
        _write_json(folder / "audit.json", {**json_safe(self._summary_dict()),
                                            "predictions": _RowRecords(self.predictions)})
        for name, table in self.tables.items():
            table.to_csv(folder / f"{name}.csv", index=False, chunksize=_CSV_ROWS)
        if len(self.skipped):
            self.skipped.to_csv(folder / "skipped.csv", index=False, chunksize=_CSV_ROWS)
        if self.figures:
            (folder / "figures").mkdir(exist_ok=True)
            for name, png in self.figures.items():
                path = folder / "figures" / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png)

    def write(self, out_dir, *, report: bool = True, pdf: bool = True) -> Path:
        """Write the audit into ``out_dir`` atomically: ``predictions.csv``, ``metrics.json``,
        ``audit.json``, the CSV tables, figures, and (``report``) ``report.html`` plus
        (``pdf``) ``report.pdf``. All files appear together, or none change."""
        with atomic_output_dir(out_dir) as tmp:
            self._write_files(tmp)
            if report:
                from .report import write_report

                write_report(self, tmp, pdf=pdf)
        return Path(out_dir)

    def to_html(self, path) -> Path:
        """Write the self-contained HTML report to ``path``."""
        from .report import write_html

        return write_html(self, path)

    def to_pdf(self, path) -> Path:
        """Write the PDF report to ``path`` (needs the ``[pdf]`` extra)."""
        from .report import write_pdf

        return write_pdf(self, path)


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


def _as_model(model):
    if isinstance(model, (ScoreModel, PrecomputedScores)):
        return model
    if callable(model):
        return CallableModel(model)
    raise ConfigError(f"the model must be a ScoreModel, a callable or PrecomputedScores; got {type(model).__name__}")


def _unavailable(reason: str, **extra) -> dict:
    return {"available": False, "reason": reason, **extra}


# ----------------------------------------------------------------------------- stages
def _score_stage(model, dataset, config, progress, cache):
    scored = score_dataset(model, dataset, batch_size=config.batch_size, strict=config.strict, progress=progress,
                           cache=cache)
    labels = dataset.table.set_index("image_id").loc[scored["image_id"], "label"].to_numpy(int)
    ok = scored["status"].eq("ok").to_numpy()
    skipped = pd.DataFrame({"image_id": scored["image_id"][~ok], "reason": scored["status"][~ok]})
    if not ok.any():
        raise DataError(f"no image of dataset '{dataset.name}' could be scored "
                        f"(e.g. {skipped['image_id'].iloc[0]}: {skipped['reason'].iloc[0]})")
    pred = pd.DataFrame({"image_id": scored["image_id"][ok], "label": labels[ok], "score": scored["score"][ok]})
    pred["prediction"] = (pred["score"] >= config.threshold).astype(int)
    return pred.reset_index(drop=True), skipped


#: Rows converted to and from JSON at a time (bounds the per-row dicts alive at once).
_ROW_BLOCK = 512


def _cached_per_image(dataset, cache, stage: str, params: dict, compute) -> pd.DataFrame:
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


def _inspect_cached(dataset, config, progress, cache):
    """Per-image skin-tone rows (cached one by one), then the dataset-level cast step on all."""
    from .skintone import correct_cast, dataset_cast_groups, inspect_dataset

    params = config.ita_params()
    dataset_cast_groups(dataset, params)  # checks the column before any image is read

    def compute(ds):
        return inspect_dataset(ds, scheme=config.scheme, params=params, n_jobs=config.n_jobs, progress=progress,
                               strict=config.strict, correct=False)

    out = _cached_per_image(dataset, cache, "inspect", {"scheme": config.scheme,
                                                        "method": params.describe()}, compute)
    for col in ("hair", "ruler", "ink", "dark_corner", "gel_bubble", "gel_border", "patches"):
        if col in out.columns:
            out[col] = out[col].map(lambda v: bool(v) if v is not None and not pd.isna(v) else False)
    if params.ita_correction == "dataset_reference":
        out = correct_cast(out, params, dataset_cast_groups(dataset, params, out["image_id"]), config.scheme)
    return out


def _sensitivity_cached(dataset, config, progress, cache, offsets=None):
    from .skintone import dataset_cast_groups, sensitivity_table

    params = config.ita_params()

    def compute(ds):
        return sensitivity_table(ds, scheme=config.scheme, n_jobs=config.n_jobs, progress=progress,
                                 params=params).attrs["per_image"]

    per_image = _cached_per_image(dataset, cache, "ita_variants",
                                  {"variants": 2, "shrink_margin": params.skin_margin == "shrink"}, compute)
    groups = dataset_cast_groups(dataset, dataclasses.replace(params, ita_correction="dataset_reference"),
                                 per_image["image_id"])
    return sensitivity_table(per_image, scheme=config.scheme, params=params, groups=groups, offsets=offsets)


def _skin_tone_stage(dataset, pred, config, progress, cache, result_tables, sections):
    from .skintone import UNKNOWN, get_scheme

    scheme = get_scheme(config.scheme)
    if not config.skin_tone:
        given = [c for c in ("group", "ita") if c in dataset.table.columns]
        if not given:
            sections["groups"] = _unavailable("skin-tone estimation was switched off and the dataset gives no "
                                              "ita or group column")
            return pred
    insp = _inspect_cached(dataset, config, progress, cache) if config.skin_tone else pd.DataFrame(
        {"image_id": dataset.table["image_id"], "ita": dataset.table.get("ita"), "group": dataset.table.get("group")})
    if "group" not in insp or insp["group"].isna().all():
        from .skintone import assign_groups

        insp["group"] = assign_groups(insp["ita"], scheme)
    insp["group"] = insp["group"].fillna(UNKNOWN).astype(str)
    if "status" in insp.columns and "flags" in insp.columns:
        # an image the skin-tone stage could not read carries the reason in its flags
        bad = insp["status"].notna() & (insp["status"].astype(str) != "ok")
        insp.loc[bad, "flags"] = insp.loc[bad, "status"].astype(str)
    keep = [c for c in ("ita", "group", "flags") if c in insp.columns]
    pred = pred.merge(insp[["image_id", *keep]], on="image_id", how="left")
    pred["group"] = pred["group"].fillna(UNKNOWN)
    # Table 7: per group N, benign, malignant, share
    order = [g for g in (*reversed(scheme.labels), UNKNOWN) if g in set(pred["group"])]
    order += sorted(set(pred["group"]) - set(order))
    rows = {}
    for g in order:
        sel = pred["group"] == g
        rows[g] = {"n": int(sel.sum()), "benign": int((sel & (pred["label"] == 0)).sum()),
                   "malignant": int((sel & (pred["label"] == 1)).sum()), "share": float(sel.mean())}
    intervals = dict(zip(scheme.labels, scheme.intervals))
    sections["groups"] = {"scheme": scheme.name, "intervals": intervals, "groups": rows,
                          "notes": ["ITA groups are a colorimetric proxy for skin tone, not Fitzpatrick types.",
                                    "Bins are half-open (lower, upper]: a value equal to a cut point belongs to "
                                    "the darker bin."]}
    result_tables["groups"] = pd.DataFrame([{"group": g, "interval": intervals.get(g, ""), **r}
                                            for g, r in rows.items()])
    if config.skin_tone:
        result_tables["skin_tone"] = insp
        flagged = insp["flags"].fillna("").astype(str).str.len().gt(0) if "flags" in insp else pd.Series(False)
        skin = {"scheme": scheme.name, "method": str(insp["method"].mode().iloc[0]) if "method" in insp and
                insp["method"].notna().any() else None,
                "n_unknown": int((insp["group"] == UNKNOWN).sum()), "n_flagged": int(flagged.sum()),
                "mask_source": {str(k): int(v) for k, v in insp.get("mask_source", pd.Series(dtype=str))
                                .value_counts().items()},
                "artifacts": {a: int(insp[a].sum()) for a in ("hair", "ruler", "ink", "dark_corner", "gel_bubble",
                                                              "gel_border", "patches") if a in insp}}
        if "b_offset" in insp:
            from .skintone import cast_summary

            skin["cast"] = {
                "correction": "dataset_reference", "reference_b": float(config.reference_b),
                "cast_group_column": config.cast_group, "groups": cast_summary(insp).to_dict(orient="records"),
                "assumption": (f"Each acquisition group's median skin b* is taken to be at least "
                               f"{config.reference_b:g} (light-to-intermediate skin); groups below it are shifted "
                               "up by the difference (a blue dermatoscope cast), L* is left as measured. For a "
                               "population of mostly dark skin this assumption fails: rerun with "
                               "--ita-correction none and compare.")}
            small = [g["cast_group"] for g in skin["cast"]["groups"] if not g["estimated"]]
            if small:
                skin["cast"]["not_estimated"] = (
                    f"no cast offset for {', '.join(small)}: fewer than {config.ita_params().min_cast_images} "
                    "images with a skin sample, so b* is used as measured")
        if config.sensitivity_sample > 0:
            sample = dataset
            if len(dataset) > config.sensitivity_sample:
                rng = np.random.default_rng(config.seed)
                ids = sorted(rng.choice(dataset.ids, size=config.sensitivity_sample, replace=False))
                sample = dataset.subset(ids)
            # the whole dataset's cast offsets, not re-estimated on the sample
            offsets = {g["cast_group"]: g["b_offset"] for g in skin.get("cast", {}).get("groups", [])
                       if g["estimated"]}
            sens = _sensitivity_cached(sample, config, progress, cache, offsets)
            result_tables["ita_sensitivity"] = sens
            skin["sensitivity"] = {"n_images": len(sample), "tables": {"group sizes by ITA estimator variant":
                                                                       sens.to_dict(orient="records")}}
        sections["skintone"] = skin
    return pred


def _fairness_stage(pred, config, progress, sections, tables):
    from .fairness import fairness_report
    from .skintone import UNKNOWN

    if "group" not in pred:
        sections["fairness"] = _unavailable("no skin-tone groups")
        return
    known = pred[pred["group"] != UNKNOWN]
    if known["group"].nunique() < 2:
        sections["fairness"] = _unavailable(
            f"a fairness comparison needs at least two ITA groups with images; found "
            f"{sorted(known['group'].unique().tolist())}")
        return
    res = fairness_report(known["label"].to_numpy(), known["score"].to_numpy(), known["group"].to_numpy(),
                          threshold=config.threshold, reference=config.reference, alpha=config.alpha,
                          n_boot=config.n_boot, random_state=config.seed, min_positives=config.min_positives,
                          progress=progress)
    section = dict(res.section)
    n_unknown = int((pred["group"] == UNKNOWN).sum())
    if n_unknown:
        section.setdefault("notes", []).append(
            f"{n_unknown} of {len(pred)} image(s) without a usable ITA (group 'unknown') are left out of the group "
            "comparison.")
    if "flags" in pred:
        n_cast = int(pred["flags"].fillna("").astype(str).str.contains("b_nonpositive").sum())
        if n_cast:
            section.setdefault("notes", []).append(
                f"{n_cast} image(s) have skin with CIELAB b* <= 0 (typically a blue dermatoscope cast). The plain "
                "ITA formula would put them in the darkest groups; skinaudit leaves them 'unknown'. A light/dark "
                "comparison made with the plain formula on such data compares colour casts, not skin tones "
                "(see docs/skintone.md).")
    sections["fairness"] = section
    tables.update(res.tables)


def _recalibration_stage(pred, calibration, config, sections, tables):
    from .fairness import recalibrate
    from .skintone import UNKNOWN
    from .thresholds import calibration_split

    if calibration is not None:
        cal = calibration
        test = pred
        source = "separate calibration file"
    else:
        is_cal = calibration_split(pred["label"].to_numpy(), pred.get("group"), fraction=config.calibration_fraction,
                                   random_state=config.seed)
        cal, test = pred[is_cal], pred[~is_cal]
        source = f"stratified split of the audited images ({config.calibration_fraction:.0%} calibration, seed {config.seed})"
    if "group" not in test or "group" not in cal:
        cal = cal.assign(group="all")
        test = test.assign(group="all")
    cal = cal[cal["group"] != UNKNOWN]
    test = test[test["group"] != UNKNOWN]
    if cal["label"].nunique() < 2 or test["label"].nunique() < 2:
        sections["recalibration"] = _unavailable("the calibration or test split lacks benign or malignant cases")
        return
    methods = ("global", "per_group", "tpr_parity", "equalized_odds") if test["group"].nunique() > 1 else ("global",)
    res = recalibrate(cal["label"].to_numpy(), cal["score"].to_numpy(), cal["group"].to_numpy(),
                      test["label"].to_numpy(), test["score"].to_numpy(), test["group"].to_numpy(),
                      threshold=config.threshold, gamma=config.gamma, step=config.step, alpha=config.alpha,
                      n_boot=min(config.n_boot, 1000), random_state=config.seed, methods=methods)
    section = dict(res.section)
    section["calibration_source"] = source
    section.setdefault("notes", []).insert(0, f"Thresholds are fitted on the calibration data ({source}, "
                                              f"n = {len(cal)}) and reported on the other {len(test)} images.")
    if {"tpr_parity", "equalized_odds"} & set(methods):
        section["notes"].append("The fairness-constrained thresholds come from fairlearn's ThresholdOptimizer, which "
                                "randomises between two thresholds near a group's cut point (fixed here by the seed) "
                                "and predicts positive when score > threshold, while every other table of this "
                                "audit uses score >= threshold.")
    sections["recalibration"] = section
    tables.update(res.tables)


def _explainable(model):
    from .models import TorchModel

    if not isinstance(model, TorchModel):
        kind = "precomputed scores" if isinstance(model, PrecomputedScores) else type(model).__name__
        return f"Grad-CAM++ needs an eager PyTorch model; this audit has {kind}"
    if model.is_scripted:
        return ("Grad-CAM++ needs Python hooks, which TorchScript modules do not run; to get explanations, audit "
                "the same weights as a state dict with --arch (or an nn.Module through the library API)")
    return None


def _safe_name(image_id) -> str:
    """A file-name-safe, collision-free form of an image id."""
    import hashlib
    import re

    text = str(image_id)
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:80]
    return clean if clean == text else f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _png(rgb: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _cams_cached(model, images, paths, *, target, config, cache):
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


def _explain_stage(model, dataset, pred, config, progress, sections, tables, figures, cache=None):
    """CAMs for the triptych cases, every false negative (and false positive with
    ``explain_fp``) and a seeded random sample (localisation by group); failure modes."""
    import tempfile

    reason = _explainable(model) if config.explain == "auto" else "explanations switched off (explain='off')"
    if reason:
        for name in ("explanations", "localisation", "failure_modes"):
            sections[name] = _unavailable(reason)
        return
    from .explain import localisation_by_group, localisation_table, overlay, save_triptych, sharpen, triptych_cases
    from .failures import classify_failures, failure_features, failure_summary, failure_table
    from .imageio import read_image, read_mask
    from .lesion import detect_artifacts, segment_lesion

    ids = pred["image_id"].tolist()
    y, yhat, s = pred["label"].to_numpy(), pred["prediction"].to_numpy(), pred["score"].to_numpy()
    trip = triptych_cases(y, yhat, s, per_kind=config.cases_per_kind, ids=ids)
    errors = pred.loc[(y == 1) & (yhat == 0), "image_id"].tolist()
    if config.explain_fp:
        errors += pred.loc[(y == 0) & (yhat == 1), "image_id"].tolist()
    rng = np.random.default_rng(config.seed)
    sample = sorted(rng.choice(ids, size=min(config.cam_sample, len(ids)), replace=False).tolist()) if ids else []
    wanted = list(dict.fromkeys([i for k in trip.values() for i in k] + errors + sample))
    table = dataset.table.set_index("image_id")
    group_of = dict(zip(pred["image_id"], pred["group"])) if "group" in pred else {}
    ita_of = dict(zip(pred["image_id"], pred["ita"])) if "ita" in pred else {}
    loc_rows, feat_rows, keep = [], [], {}
    trip_ids = {i for k in trip.values() for i in k}
    error_set = set(errors)
    chunks = [wanted[i:i + config.batch_size] for i in range(0, len(wanted), config.batch_size)]
    it = chunks if progress is None else progress(chunks, total=len(chunks), desc="Grad-CAM++")
    for chunk in it:
        images, masks, sources = [], [], []
        for i in chunk:
            img = read_image(table.loc[i, "image_path"])
            mp = table.loc[i, "mask_path"]
            if mp:
                masks.append(read_mask(mp, shape=img.shape[:2]))
                sources.append("given")
            else:
                masks.append(segment_lesion(img))
                sources.append("estimated")
            images.append(img)
        paths = [table.loc[i, "image_path"] for i in chunk]
        cams = _cams_cached(model, images, paths, target="malignant", config=config, cache=cache)
        loc = localisation_table(cams, masks, ids=chunk, keep_top=config.keep_top)
        loc["mask_source"] = sources
        loc_rows.append(loc)
        err_idx = [k for k, i in enumerate(chunk) if i in error_set]
        if err_idx:
            # An error is explained by the evidence for what the model predicted (for a false
            # negative: the benign evidence); the malignant map answers "did it look at the
            # lesion" (localisation, triptychs). See docs/explanations.md.
            err_cams = _cams_cached(model, [images[k] for k in err_idx], [paths[k] for k in err_idx],
                                    target="predicted", config=config, cache=cache)
            arts = [detect_artifacts(images[k], lesion_mask=masks[k]) for k in err_idx]
            feat_rows.append(failure_features([chunk[k] for k in err_idx], [images[k] for k in err_idx],
                                              [masks[k] for k in err_idx], cams=err_cams,
                                              artifact_masks=arts, ita=[ita_of.get(chunk[k]) for k in err_idx],
                                              keep_top=config.keep_top))
            for k, cam in zip(err_idx, err_cams):
                figures[f"cams/{_safe_name(chunk[k])}"] = _png(
                    overlay(images[k], sharpen(cam, keep_top=config.keep_top), skip_zero=True))
        for k, i in enumerate(chunk):
            if i in trip_ids:
                keep[i] = (images[k], cams[k])
    loc = pd.concat(loc_rows, ignore_index=True) if loc_rows else pd.DataFrame()
    # localisation by group: the random sample only (errors would bias it)
    in_sample = loc[loc["image_id"].isin(set(sample))].reset_index(drop=True) if len(loc) else loc
    if len(in_sample):
        groups = [group_of.get(i, "all") for i in in_sample["image_id"]]
        by_group = localisation_by_group(in_sample, groups, alpha=config.alpha, n_boot=min(config.n_boot, 1000),
                                         random_state=config.seed)
        sections["localisation"] = {
            "n_images": len(in_sample), "keep_top": config.keep_top,
            "groups": json_safe(by_group.to_dict(orient="records")),
            "notes": [f"Measured on a seeded random sample of {len(in_sample)} images (seed {config.seed}) against "
                      "the dataset's lesion masks where given, else the estimated ones; pointing game = the CAM's "
                      "maximum falls in the lesion (Wilson interval); relevance mass = share of CAM inside the "
                      "lesion; IoU of the top-25% region with the lesion (bootstrap intervals)."]}
        tables["localisation_by_group"] = by_group
    else:
        sections["localisation"] = _unavailable("no image was explained")
    if len(loc):
        tables["localisation"] = loc
    # failure modes
    if feat_rows:
        feats = pd.concat(feat_rows, ignore_index=True)
        is_fn = pred.set_index("image_id").loc[feats["image_id"], "label"].to_numpy() == 1
        parts = []
        for case, sel in (("FN", is_fn), ("FP", ~is_fn)):
            if sel.any():
                m = classify_failures(feats[sel].reset_index(drop=True), case=case)
                m.insert(1, "case", case)
                parts.append(m)
        modes = pd.concat(parts, ignore_index=True)
        modes["cam_png"] = [f"figures/cams/{_safe_name(i)}.png" for i in modes["image_id"]]
        fn_modes = modes[modes["case"] == "FN"]
        section = {"n_false_negatives": int(len(fn_modes)), "summary": failure_summary(fn_modes),
                   "tables": {"Table 6: false-negative failure modes":
                              json_safe(failure_table(fn_modes).to_dict(orient="records"))},
                   "notes": ["Each false negative gets exactly one mode by the documented rule order "
                             "(skinaudit.failures.FailureRules), with its evidence values in failure_modes.csv; "
                             "the maps behind the rules explain the predicted (benign) class."]}
        if config.explain_fp and (modes["case"] == "FP").any():
            fp_modes = modes[modes["case"] == "FP"]
            section["false_positives"] = failure_summary(fp_modes)
            section["tables"]["False-positive failure modes"] = json_safe(
                failure_table(fp_modes, case="FP").to_dict(orient="records"))
        if not len(fn_modes):
            section.update(available=False, reason="no false negative at this threshold")
        sections["failure_modes"] = section
        tables["failure_modes"] = modes
    else:
        sections["failure_modes"] = _unavailable("no false negative at this threshold", n_false_negatives=0)
    # Fig. 8 triptychs
    fig_paths = {}
    with tempfile.TemporaryDirectory(prefix="skinaudit-cam-") as tmp:
        for kind, kids in trip.items():
            rows = [(f"{kind}  {i}  p={float(pred.loc[pred['image_id'] == i, 'score'].iloc[0]):.2f}",
                     *keep[i]) for i in kids if i in keep]
            if rows:
                path = save_triptych(rows, Path(tmp) / f"triptych_{kind}.png", keep_top=config.keep_top)
                figures[f"triptych_{kind}"] = path.read_bytes()
                fig_paths[f"triptych_{kind}"] = f"figures/triptych_{kind}.png"
    layer = config.target_layer
    if layer is None:
        from .explain import default_target_layer

        layer = default_target_layer(model.module)
    sections["explanations"] = {"method": "Grad-CAM++ (pytorch-grad-cam)", "target_layer": layer,
                                "keep_top": config.keep_top, "cases": trip, "n_explained": len(wanted),
                                "figures": fig_paths,
                                "notes": ["Columns: original, raw heatmap, sharpened overlay (top "
                                          f"{config.keep_top:.0%} of activations kept)."]}


def load_calibration(path) -> pd.DataFrame:
    """A calibration file: CSV ``image_id,label,score`` (+ optional ``group`` / ``ita``), e.g.
    the ``predictions.csv`` of an earlier ``skinaudit run`` on a validation set."""
    from .data import _read_csv, parse_label

    df = _read_csv(path, "calibration")
    need = {"image_id", "label", "score"}
    if not need <= set(df.columns):
        raise DataError(f"{path}: a calibration file needs the columns image_id,label,score "
                        f"(e.g. predictions.csv of a run on a validation set); found {list(df.columns)[:10]}")
    out = pd.DataFrame({"image_id": df["image_id"].astype(str), "label": df["label"].map(parse_label),
                        "score": pd.to_numeric(df["score"], errors="coerce")})
    if out["label"].isna().any() or not np.all(np.isfinite(out["score"])) or not out["score"].between(0, 1).all():
        raise DataError(f"{path}: calibration labels must be 0/1 and scores finite probabilities in [0, 1]")
    out["label"] = out["label"].astype(int)
    if "group" in df.columns:
        out["group"] = df["group"].fillna("unknown").astype(str)
    elif "ita" in df.columns:
        out["ita"] = pd.to_numeric(df["ita"], errors="coerce")
    return out


STAGES = ("skintone", "fairness", "recalibration", "explain")


def run_audit(model, dataset: AuditDataset, config: AuditConfig | None = None, *, progress=None,
              cache=None, calibration=None, stages=STAGES) -> AuditResult:
    """Audit ``model`` on ``dataset``: scores, skin tone, fairness statistics, recalibration,
    and (for eager PyTorch models) Grad-CAM++ explanations and failure modes.

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
    calibration : DataFrame or path, optional
        Separate calibration data for the threshold searches (see :func:`load_calibration`);
        default a stratified split of the audited images (``config.calibration_fraction``).
    stages : sequence of str
        Stages after scoring, among ``skintone, fairness, recalibration, explain`` (all by
        default; ``skinaudit explain`` runs ``skintone`` and ``explain``). A stage left out
        is reported as not run.
    """
    from .cache import ResultCache

    config = config or AuditConfig()
    if not isinstance(dataset, AuditDataset):
        raise ConfigError(f"the dataset must be an AuditDataset; got {type(dataset).__name__}")
    if cache is not None and not isinstance(cache, ResultCache):
        cache = ResultCache(cache)
    if calibration is not None and not isinstance(calibration, pd.DataFrame):
        calibration = load_calibration(calibration)
    model = _as_model(model)
    pred, skipped = _score_stage(model, dataset, config, progress, cache)
    skipped = pd.concat([skipped, dataset.excluded], ignore_index=True)
    overall = binary_metrics(pred["label"].to_numpy(), pred["score"].to_numpy(), threshold=config.threshold)
    sections: dict = {"overall": overall}
    tables: dict = {}
    figures: dict = {}
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ConfigError(f"unknown stage(s) {sorted(unknown)}; choose from {', '.join(STAGES)}")
    scored = dataset.subset(pred["image_id"]) if len(pred) < len(dataset) else dataset
    not_run = "this stage was not requested"
    if "skintone" in stages:
        pred = _skin_tone_stage(scored, pred, config, progress, cache, tables, sections)
    if calibration is not None and "group" not in calibration and "ita" in calibration:
        from .skintone import assign_groups

        calibration = calibration.assign(group=assign_groups(calibration["ita"], config.scheme))
    if "fairness" in stages:
        _fairness_stage(pred, config, progress, sections, tables)
    if "recalibration" in stages:
        _recalibration_stage(pred, calibration, config, sections, tables)
    if "explain" in stages:
        _explain_stage(model, scored, pred, config, progress, sections, tables, figures, cache=cache)
    for name, stage in (("groups", "skintone"), ("fairness", "fairness"), ("recalibration", "recalibration"),
                        ("explanations", "explain"), ("localisation", "explain"), ("failure_modes", "explain")):
        if stage not in stages:
            sections.setdefault(name, _unavailable(not_run))
    return AuditResult(config=config, dataset=dataset.summary(), model=_model_info(model), predictions=pred,
                       sections=sections, tables=tables, skipped=skipped.reset_index(drop=True), figures=figures)
