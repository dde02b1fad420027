"""The report's context: everything the templates show, as JSON-safe data, built from a typed
:class:`~skinaudit.result.AuditResult`; the figures the report draws itself."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.metadata
import logging
import math
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from .._jsonsafe import json_safe
from ..errors import ConfigError, DataError
from .badges import ReportRules, group_counts, summary_badges
from .format import is_missing
from .present import presented
from .sections import KNOWN_SECTIONS, section_view
from .tables import embed_figure, kv_table, make_table, pretty
from .words import ITA_GROUP, by_reason, config_records, dataset_name, group_noun, grouping_label

log = logging.getLogger(__name__)


#: Packages whose versions the cover and the appendix list (distribution names).
VERSION_PACKAGES = ("skinaudit", "numpy", "pandas", "scipy", "scikit-learn", "scikit-image", "statsmodels",
                    "fairlearn", "matplotlib", "jinja2", "weasyprint", "torch", "torchvision", "grad-cam",
                    "captum", "pillow")


#: Where each report section answers reporting guidelines: Model Cards (Mitchell et al.
#: 2019, section names), TRIPOD+AI (Collins et al., BMJ 2024) and CLAIM 2024 (Tejani et
#: al., Radiology: AI 2024). Guideline items are named by topic; TRIPOD+AI's numbers are
#: given where they are unambiguous. Rows: (section id, title, model card, TRIPOD+AI, CLAIM).
CHECKLIST = (
    ("cover", "Cover: model, data, versions",
     "Model details", "Model specification; open science (code, versions)",
     "Software and model description; data sources"),
    ("use", "Intended use and limits",
     "Intended use; ethical considerations; caveats and recommendations",
     "3b target population and intended users; limitations", "Intended use and clinical role; limitations"),
    ("dataset", "Dataset composition",
     "Evaluation data; factors", "Data sources and participants; 3c health inequalities (groups represented)",
     "Data sources; eligibility; demographic characteristics (ITA group)"),
    ("overall", "Overall performance",
     "Metrics (with the decision threshold); quantitative analyses",
     "Model performance with its decision threshold", "Metrics of model performance; performance on the test data"),
    ("fairness", "Fairness across ITA groups",
     "Quantitative analyses disaggregated by factor, with intervals",
     "3c health inequalities; fairness approaches; performance in key subgroups",
     "Statistical measures of significance and uncertainty; subgroup performance"),
    ("skintone", "ITA estimator sensitivity",
     "Factors (how the skin-tone factor was measured); caveats",
     "Predictor (group) definition and measurement; sensitivity analysis",
     "Robustness or sensitivity analysis; definitions of data elements"),
    ("recalibration", "Threshold recalibration",
     "Metrics (decision thresholds); quantitative analyses",
     "Model updating / recalibration; fairness approaches", "Model output and thresholds; robustness analysis"),
    ("explanations", "Explanations and localisation",
     "Quantitative analyses; caveats", "Interpretability of the model",
     "Methods for explainability or interpretability"),
    ("failure_modes", "Failure modes of false negatives",
     "Caveats and recommendations", "Limitations; usability in context",
     "Failure analysis of incorrectly classified cases"),
    ("skipped", "Skipped and flagged images",
     "Evaluation data (exclusions)", "Missing data and data preparation", "Missing data; data preprocessing"),
    ("appendix", "Reproducibility appendix",
     "Model details (version, hashes)", "Open science: code, software and data availability",
     "Software libraries and versions; availability of code and data"),
)


def _versions() -> list[dict]:
    rows = [{"package": "python", "version": platform.python_version()}]
    for pkg in VERSION_PACKAGES:
        try:
            rows.append({"package": pkg, "version": importlib.metadata.version(pkg)})
        except importlib.metadata.PackageNotFoundError:
            rows.append({"package": pkg, "version": "not installed"})
    return rows


def _scheme_cut_points(result) -> list[float]:
    """Cut points (degrees) of the audit's grouping scheme, from its configuration."""
    from ..skintone import get_scheme

    return [float(c) for c in get_scheme(result.config.scheme).cuts]


def _threshold_marks(result) -> dict:
    """Recalibrated global thresholds (method label -> threshold) other than the audit threshold."""
    sec = result.section("recalibration")
    if sec is None:
        return {}
    return {pretty(name): t for name, t in sec.global_thresholds().items()
            if 0 <= t <= 1 and not math.isclose(t, result.config.threshold)}


def _computed_figures(result, figures_dir: Path) -> dict:
    """Draw every figure the report computes itself; name -> (path or None, reason)."""
    from .. import figures as F

    pred = result.predictions
    y = pred["label"].to_numpy(int)
    s = pred["score"].to_numpy(float)
    t = float(result.config.threshold)
    o = result.section("overall").to_dict() if result.section("overall") else {}
    out = {"roc": (F.roc_png(y, s, figures_dir / "roc.png", threshold=t), None)}
    if all(isinstance(o.get(k), int) for k in ("tp", "fn", "tn", "fp")):
        out["confusion"] = (F.confusion_png(o["tp"], o["fn"], o["tn"], o["fp"], figures_dir / "confusion.png",
                                            threshold=t), None)
    else:
        out["confusion"] = (None, "the overall section has no confusion counts")
    groups = pred["group"].astype("string").fillna("missing").to_numpy(object) if "group" in pred else None
    if groups is not None:
        out["roc_by_group"] = (F.roc_png(y, s, figures_dir / "roc_by_group.png", threshold=t, groups=groups,
                                         title=f"ROC curve per {group_noun(result)}"), None)
    else:
        out["roc_by_group"] = (None, "no skin-tone group per image in this audit")
    if "ita" in pred.columns and np.isfinite(pd.to_numeric(pred["ita"], errors="coerce").to_numpy(float)).any():
        cuts = _scheme_cut_points(result)
        out["ita_histogram"] = (F.ita_histogram_png(pd.to_numeric(pred["ita"], errors="coerce").to_numpy(float),
                                                    figures_dir / "ita_histogram.png", cut_points=cuts,
                                                    groups=groups), None)
    else:
        out["ita_histogram"] = (None, "no ITA value per image in this audit")
    out["threshold_curves"] = (F.threshold_curves_png(y, s, figures_dir / "threshold_curves.png", threshold=t,
                                                      groups=groups, marks=_threshold_marks(result)), None)
    return out


_FIGURE_CAPTIONS = {
    "roc": "ROC curve of all scored images; the dot is the operating point at the audit threshold.",
    "confusion": "Confusion matrix at the audit threshold (rows: true class; shares of each row).",
    "roc_by_group": "ROC curve per ITA group; dots: operating point at the audit threshold.",
    "ita_histogram": "ITA per image with the grouping scheme's cut points (dashed).",
    "threshold_curves": "Recall, precision, F1 and specificity against the threshold (top); recall per ITA "
                        "group (bottom, when groups are known). Solid line: the audit threshold; dotted: "
                        "recalibrated thresholds.",
}


def _overall_table(overall: dict) -> dict:
    rows = [("AUC", "auc"), ("Recall (sensitivity)", "recall"), ("Precision (PPV)", "precision"), ("F1", "f1"),
            ("Accuracy", "accuracy"), ("Specificity", "specificity"), ("False-negative rate", "fnr"),
            ("True positives (TP)", "tp"), ("False negatives (FN)", "fn"), ("True negatives (TN)", "tn"),
            ("False positives (FP)", "fp"), ("Images (n)", "n")]
    return make_table("Overall performance (layout of the paper's Table 3)",
                  [{"metric": label, "value": overall.get(key)} for label, key in rows if key in overall],
                  columns=["metric", "value"], source="sections.overall")


def _dataset_table(dataset: dict, n_scored: int) -> dict:
    n = dataset.get("n")
    mal = dataset.get("malignant")
    ben = dataset.get("benign")
    rows = [{"item": "images in the dataset", "value": n}, {"item": "benign", "value": ben},
            {"item": "malignant", "value": mal},
            {"item": "malignant share", "value": mal / n if isinstance(mal, int) and n else None},
            {"item": "with a lesion mask", "value": dataset.get("with_mask")},
            {"item": "excluded when loading", "value": dataset.get("excluded")},
            {"item": "identical to another image (byte for byte; each kept)",
             "value": (dataset.get("duplicates") or {}).get("images")},
            {"item": "scored in this audit", "value": n_scored}]
    return make_table("Dataset composition (layout of the paper's Table 1)", rows, columns=["item", "value"],
                  source="dataset")


#: Rows listed per image table (skipped, flagged) in the report; the rest are counted and
#: named in the CSV files of the audit.
MAX_LISTED = 300


def _listing(caption: str, records: list, columns: list, *, source: str, where: str) -> dict:
    shown = records[:MAX_LISTED]
    more = len(records) - len(shown)
    if more:
        caption = f"{caption}: the first {len(shown)} of {len(records)}; all are in {where}"
    table = make_table(caption, shown, columns=columns, source=source)
    table["more"] = more
    return table


#: Up to this many skipped images are listed one by one; more are counted by reason.
MAX_SKIPPED_LISTED = 20


def _skipped_table(records: list) -> dict:
    """The skipped images: listed when few, else counted by reason (all rows are in skipped.csv)."""
    caption = "Images that could not be scored or were excluded"
    if len(records) <= MAX_SKIPPED_LISTED:
        return _listing(caption, records, ["image_id", "reason"], source="skipped", where="skipped.csv")
    rows = by_reason(records, "reason")
    table = make_table(f"{caption}, by reason: {len(records):,} images; every row is in skipped.csv",
                       [{k: r[k] for k in ("reason", "images")} for r in rows], source="skipped")
    table["more"] = 0
    return table


def _flagged_table(records: list, n_scored: int, noun: str = "ITA group") -> dict:
    """The scored images with quality flags, counted per flag (an image with several flags counts
    under each); every row, with its flags, is in predictions.csv."""
    rows = by_reason(records, "flags")
    table = make_table(f"Scored images with quality flags, by flag: {len(records):,} of {n_scored:,} images "
                       "have at least one flag (an image with several flags counts under each)",
                       [{"flag": r["reason"], "images": r["images"], "of them malignant": r["malignant"]}
                        for r in rows], source="predictions.flags")
    table["more"] = 0
    table["n_images"] = len(records)
    if records:
        table["more_note"] = (f"Every flagged image, with its label, score, {noun} and flags, is a row of "
                              "predictions.csv (column flags).")
    return table


def _dataset_rows(dataset: dict) -> list[dict]:
    """The appendix's dataset table: the dataset's fields with its source spelt out, one per row."""
    rows = [{"item": "name (folder)", "value": dataset_name(dataset)}]
    if dataset.get("name") and dataset.get("name") != rows[0]["value"]:
        rows.append({"item": "recorded name", "value": dataset.get("name")})
    source = dataset.get("source")
    for k, v in dataset.items():
        if k in ("name", "source", "duplicates"):
            continue
        rows.append({"item": pretty(k), "value": v})
    if isinstance(source, dict):
        for k, v in source.items():
            rows.append({"item": f"source: {pretty(k)}", "value": "none" if v is None else v})
    elif source is not None:
        rows.append({"item": "source", "value": source})
    dup = dataset.get("duplicates")
    if isinstance(dup, dict):
        rows.append({"item": "byte-identical images", "value": dup.get("images")})
    return rows


def _source_line(dataset: dict) -> str:
    """The dataset's source in a few words for the cover: format and the labels file."""
    source = dataset.get("source")
    if not isinstance(source, dict):
        return "" if source is None else str(source)
    bits = [str(source["format"])] if source.get("format") else []
    if source.get("labels"):
        bits.append(f"labels {Path(str(source['labels'])).name}")
    if source.get("malignant"):
        mal = source["malignant"]
        bits.append("malignant: " + (", ".join(map(str, mal)) if isinstance(mal, list) else str(mal)))
    return "; ".join(bits)


#: Configuration fields the cover names (the appendix lists them all).
COVER_CONFIG = ("scheme", "ita_correction", "alpha", "n_boot", "gamma", "calibration_fraction", "seed")


def _predictions_flags(pred: pd.DataFrame) -> list[dict]:
    if "flags" not in pred.columns:
        return []
    rows = []
    for rec in pred.to_dict(orient="records"):
        flags = rec.get("flags")
        if isinstance(flags, (list, tuple, np.ndarray)):
            flags = [str(f) for f in flags]
            text = ", ".join(flags)
        else:
            text = "" if is_missing(flags) or flags is pd.NA else str(flags)
        if text.strip():
            rows.append({"image_id": rec["image_id"], "label": rec["label"], "score": rec["score"],
                         "group": rec.get("group"), "flags": text})
    return rows


def report_date() -> str:
    """UTC date of the report: ``SOURCE_DATE_EPOCH`` (seconds since 1970) when set, else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            when = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise ConfigError(f"SOURCE_DATE_EPOCH={epoch!r}: expected whole seconds since 1970-01-01 UTC") from None
    else:
        when = _dt.datetime.now(_dt.timezone.utc)
    return when.replace(microsecond=0).isoformat()


def build_context(result, *, figures_dir, rules: ReportRules | None = None, generated_at: str | None = None) -> dict:
    """Everything the report templates show, as JSON-safe data; draws the figures.

    Parameters
    ----------
    result : AuditResult
        The audit. Its ``predictions`` (columns ``image_id, label, score, prediction``
        and, when present, ``group``, ``ita``, ``flags``) feed the figures; its
        ``sections`` feed every table, so every number comes from the same scores and
        the one threshold ``result.config.threshold``.
    figures_dir : path-like
        Folder where the figure PNGs are written (created if needed).
    rules : ReportRules, optional
        Thresholds of the summary badges.
    generated_at : str, optional
        Date shown on the cover; default: the environment's ``SOURCE_DATE_EPOCH`` (the
        reproducible-builds convention: the same audit then gives byte-identical HTML and PDF)
        or else now; UTC, ISO 8601 to the second.

    Returns
    -------
    dict, JSON-serialisable: ``title, generated_at, threshold, model, dataset, config,
    versions, hashes, badges, figures`` (name -> {file, src, caption, reason}),
    ``overall, dataset_table, sections`` (id -> view with ``available, reason, parts,
    figures, notes``), ``other_sections, checklist, skipped, flagged``. Figure ``src``
    values are ``data:`` URIs.
    """
    from ..result import AuditResult

    if not isinstance(result, AuditResult):
        raise ConfigError(f"the report needs an AuditResult; got {type(result).__name__}")
    result = presented(result)
    rules = rules if rules is not None else ReportRules()
    if not isinstance(rules, ReportRules):
        raise ConfigError(f"the 'rules' parameter must be a ReportRules; got {type(rules).__name__}")
    pred = result.predictions
    missing = {"image_id", "label", "score"} - set(pred.columns)
    if missing:
        raise DataError(f"the predictions lack the column(s) {sorted(missing)} that the report needs")
    if not len(pred):
        raise DataError("the audit has no scored image to report on")
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    base = figures_dir.parent
    threshold = float(result.config.threshold)

    figures = {}
    noun = group_noun(result)
    for name, (path, reason) in _computed_figures(result, figures_dir).items():
        caption = _FIGURE_CAPTIONS[name].replace(ITA_GROUP, noun)
        fig = embed_figure(name, path, caption=caption, base=base) if path else \
            {"kind": "figure", "name": name, "caption": caption, "file": None, "src": None,
             "reason": reason}
        figures[name] = fig

    titles = {"groups": f"Composition by {noun} (layout of the paper's Table 7)",
              "fairness": f"Fairness across {noun}s (layout of the paper's Table 8)",
              "skintone": "ITA estimator and its sensitivity", "recalibration": "Threshold recalibration",
              "explanations": "Explanations (Grad-CAM++ triptychs, the paper's Fig. 8)",
              "localisation": f"Localisation of the explanation against the lesion, by {noun}",
              "failure_modes": "Failure modes of the false negatives (layout of the paper's Table 6)",
              "counterfactual": "Counterfactual skin-tone test: the lesion kept, only the skin recoloured"}
    absent = {"explanations": "no model with an explainable layer was audited (scores only), so no Grad-CAM++",
              "localisation": "no explanations were computed, so no localisation scores",
              "failure_modes": "the failure-mode stage needs explanations and was not run",
              "groups": "no skin-tone group per image in this audit",
              "fairness": "no skin-tone group per image, so no comparison between groups",
              "skintone": "skin tone (ITA) was not estimated in this audit",
              "recalibration": "no recalibration was run in this audit",
              "counterfactual": "not run (opt-in: --counterfactual N with a model; a scores CSV cannot be re-scored)"}
    sections = {}
    for sid, title in titles.items():
        sec = result.section(sid)
        view = section_view(sid, title, sec.to_dict() if sec is not None else None, base=base,
                            source=f"sections.{sid}", result=result)
        if sec is None:
            view["reason"] = absent[sid]
        sections[sid] = view
    other = [section_view(k, pretty(k), v.to_dict(), base=base, source=f"sections.{k}", result=result)
             for k, v in sorted(result.sections.items()) if k not in KNOWN_SECTIONS]

    overall = result.section("overall").to_dict() if result.section("overall") else None
    cfg = result.config.to_dict() if hasattr(result.config, "to_dict") else dataclasses.asdict(result.config)
    model = {**dict.fromkeys(("name", "adapter", "path", "sha256", "arch")), **json_safe(result.model or {})}
    dataset = {**dict.fromkeys(("name", "n", "malignant", "benign", "with_mask", "excluded", "manifest_sha256",
                                "source")), **json_safe(result.dataset or {})}
    hashes = [{"item": "model file", "sha256": model.get("sha256") or "n/a (no model file)"},
              {"item": "dataset manifest", "sha256": dataset.get("manifest_sha256") or "n/a"}]
    skipped = result.skipped if result.skipped is not None else pd.DataFrame(columns=["image_id", "reason"])
    counts = group_counts(pred)
    small_groups = [] if counts is None else [
        {"group": str(k), "n": int(r["size"]), "malignant": int(r["sum"])} for k, r in counts.iterrows()
        if r["sum"] < rules.min_group_positives]
    context = {
        "title": "Skin-lesion classifier audit",
        "generated_at": generated_at or report_date(),
        "threshold": threshold,
        "skinaudit_version": _skinaudit_version(),
        "model": model, "dataset": dataset, "config": cfg,
        "model_table": kv_table("Model", model, source="model"),
        "dataset_info_table": make_table("Dataset", _dataset_rows(dataset), columns=["item", "value"],
                                         source="dataset"),
        "dataset_title": dataset_name(dataset), "dataset_source": _source_line(dataset),
        "config_table": make_table("Configuration of the audit (option names in the last column)",
                                   config_records(cfg), columns=["item", "value", "option"], source="config",
                                   labels={"item": "setting"}),
        "config_cover": config_records({k: cfg[k] for k in ("group_column", *COVER_CONFIG)
                                        if k in cfg and (k != "group_column" or cfg[k])}),
        "grouped_by": grouping_label(result),
        "versions": _versions(), "hashes": hashes,
        "rules": dataclasses.asdict(rules),
        "badges": summary_badges(result, rules=rules),
        "summary_points": _summary_points(result),
        "figures": figures,
        "overall_available": overall is not None,
        "overall": _overall_table(overall) if overall is not None else None,
        "dataset_table": _dataset_table(dataset, len(pred)),
        "n_scored": len(pred), "n_skipped": len(skipped),
        "small_groups": small_groups,
        "sections": sections, "other_sections": other,
        "checklist": [{"id": sid, "section": title.replace(ITA_GROUP, noun), "model_card": mc, "tripod_ai": tr,
                       "claim": cl.replace(ITA_GROUP, noun)} for sid, title, mc, tr, cl in CHECKLIST],
        "skipped": _skipped_table(skipped.to_dict(orient="records")),
        "duplicates": _listing(
            "Images with identical bytes (each set is one picture under several ids; every id keeps its own row, "
            "but a set counts one picture several times and leaks if it spans a training and a test split)",
            [{"set": k + 1, "images": len(ids), "image_ids": ", ".join(map(str, ids))}
             for k, ids in enumerate((dataset.get("duplicates") or {}).get("ids") or [])],
            ["set", "images", "image_ids"], source="dataset.duplicates", where="duplicates.csv"),
        "flagged": _flagged_table(_predictions_flags(pred), len(pred), noun),
        "lesion_methods_text": _lesion_methods_text(result),
    }
    return json_safe(context)


def _lesion_methods_text(result) -> str:
    """One sentence: how the lesion masks and the artifact flags of this audit were obtained."""
    sec = result.section("skintone")
    rec = sec.get("lesion_methods") if sec is not None and sec.available else None
    if not isinstance(rec, dict):
        return ""
    seg, art = rec.get("segmenter") or {}, rec.get("artifact_detector") or {}
    names = {"given": "given by the dataset", "learned": "segmented by skinaudit's learned U-Net",
             "classical": "segmented by the classical (rule-based) method"}
    parts = [f"{n} {names.get(k, k)}" for k, n in sorted(seg.items())]
    words = {"learned": "by skinaudit's learned artifact classifier", "classical": "by the classical image rules"}
    flags = [f"{words.get(k, k)} ({n} images)" for k, n in sorted(art.items())]
    text = ""
    if parts:
        text += "Lesion masks in this audit: " + "; ".join(parts) + "."
    if flags:
        text += " Artifact flags: " + "; ".join(flags) + "."
    weights = rec.get("learned_weights") or {}
    if weights:
        text += " Learned weights " + ", ".join(f"{k} {v}" for k, v in sorted(weights.items())) + \
                " (trained on ISIC 2018 Task 1 dermoscopy; docs/learned_detectors.md gives their measured agreement)."
    return text.strip()


def _summary_points(result) -> list[str]:
    """Sentences under the Summary's checks: who was excluded from the skin-tone comparison, and
    whether each primary finding survives the uncertainty of the skin-tone measurement."""
    fair = result.section("fairness")
    if fair is None or not fair.available:
        return []
    points = []
    unknown = fair.get("unknown_images")
    if isinstance(unknown, dict) and unknown.get("note"):
        points.append("Excluded from the comparison: " + unknown["note"])
    robust = fair.get("measurement_robust")
    if isinstance(robust, dict):
        points += ["Measurement robustness: " + str(x) for x in robust.get("summary") or []]
    return points


def _skinaudit_version() -> str:
    from .._version import __version__

    return __version__
