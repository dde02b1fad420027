"""Stage 4: threshold recalibration, fitted on calibration data and reported on the rest."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..result import unavailable
from . import StageOutput

__all__ = ["recalibration_stage", "load_calibration"]

def recalibration_stage(pred, calibration, config) -> StageOutput:
    """Threshold searches fitted on calibration data (a separate file, or a stratified split of
    the audited images) and reported on the rest; the ``recalibration`` section."""
    from ..fairness import recalibrate
    from ..skintone import UNKNOWN
    from ..thresholds import calibration_split

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
        return StageOutput(sections={"recalibration": unavailable(
            "the calibration or test split lacks benign or malignant cases")})
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
    return StageOutput(sections={"recalibration": section}, tables=dict(res.tables))


def load_calibration(path) -> pd.DataFrame:
    """A calibration file: CSV ``image_id,label,score`` (+ optional ``group`` / ``ita``), e.g.
    the ``predictions.csv`` of an earlier ``skinaudit run`` on a validation set."""
    from ..data import parse_label, read_table

    df = read_table(path, "calibration")
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
