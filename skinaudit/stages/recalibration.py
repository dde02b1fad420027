"""Stage 4: threshold recalibration, fitted on calibration data and reported on the rest."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError
from ..result import unavailable
from . import StageOutput

__all__ = ["recalibration_stage", "load_calibration", "check_calibration_ids"]

def recalibration_stage(pred, calibration, config) -> StageOutput:
    """Threshold searches fitted on calibration data (a separate file, or a stratified split of
    the audited images) and reported on the rest; the ``recalibration`` section."""
    from ..fairness import recalibrate
    from ..grouping import is_unknown
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
    # as in the fairness stage: an unknown group (or an intersection with an unknown part) is never fitted
    cal = cal[~cal["group"].map(is_unknown).astype(bool)]  # astype: an empty map is object-typed
    test = test[~test["group"].map(is_unknown).astype(bool)]
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


def load_calibration(source) -> pd.DataFrame:
    """Calibration data: a CSV (or DataFrame) ``image_id,label,score`` (+ optional ``group`` /
    ``ita``), e.g. the ``predictions.csv`` of an earlier ``skinaudit run`` on a validation set.

    Returns a DataFrame ``image_id, label, score`` (+ ``group`` or ``ita``). Refused with a
    :class:`~skinaudit.errors.DataError` naming the row: a missing column, an image id given
    twice (each image is one calibration case), a label other than 0/1 or benign/malignant, a
    score that is not a probability, a non-numeric ``ita``, the reserved group name ``all``.
    """
    from ..data import RESERVED_GROUP, given_ita, id_column, parse_label, preview, read_table, refuse_rows

    df = source.astype(object).where(source.notna(), None) if isinstance(source, pd.DataFrame) \
        else read_table(source, "calibration")
    where = "calibration data" if isinstance(source, pd.DataFrame) else source
    need = {"image_id", "label", "score"}
    if not need <= set(df.columns):
        raise DataError(f"{where}: a calibration file needs the columns image_id,label,score "
                        f"(e.g. predictions.csv of a run on a validation set); found {list(df.columns)[:10]}")
    df = df.reset_index(drop=True)
    ids = id_column(df, "image_id", where)
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise DataError(f"{where}: {len(dup)} image id(s) appear more than once ({preview(dup)}); each image "
                        "must be one calibration case, or the thresholds are fitted on copies")
    out = pd.DataFrame({"image_id": ids, "label": df["label"].map(parse_label),
                        "score": pd.to_numeric(df["score"], errors="coerce")})
    refuse_rows(where, ids, out["label"].isna(), lambda i: (
        f"the label must be 0/1 or benign/malignant; got {df['label'].iloc[i]!r}"))
    score = out["score"].to_numpy(dtype=float)
    refuse_rows(where, ids, ~np.isfinite(score) | (score < 0) | (score > 1), lambda i: (
        f"the score must be a finite probability in [0, 1]; got {df['score'].iloc[i]!r}"))
    out["label"] = out["label"].astype(int)
    if "group" in df.columns:
        out["group"] = df["group"].map(lambda v: "unknown" if v is None or pd.isna(v) or not str(v).strip()
                                       else str(v).strip())
        refuse_rows(where, ids, out["group"].eq(RESERVED_GROUP), lambda i: (
            f"the group name {RESERVED_GROUP!r} is reserved for the row of all images; use another name"))
    elif "ita" in df.columns:
        out["ita"], bad = given_ita(df["ita"])
        refuse_rows(where, ids, bad, lambda i: (
            f"ita {df['ita'].iloc[i]!r} is not an angle in [-90, 90] degrees"))
    return out


def check_calibration_ids(calibration: pd.DataFrame, dataset) -> None:
    """Refuse calibration data that shares images with the audited ``dataset``.

    Thresholds fitted on an image and then reported on that same image look better than they
    will on new images; the recalibration section says its thresholds are reported on images
    other than the calibration data, which must then be true.
    """
    from ..data import preview

    audited = set(map(str, dataset.ids))
    shared = [i for i in calibration["image_id"].astype(str) if i in audited]
    if shared:
        raise DataError(
            f"the calibration data shares {len(shared)} of its {len(calibration)} image ids with the "
            f"{len(audited)} audited images (e.g. {preview(shared, 3)}): thresholds would be tuned and reported on "
            "the same images; calibrate on other images (e.g. a validation set) or leave --calibration out to "
            "split the audited images")
