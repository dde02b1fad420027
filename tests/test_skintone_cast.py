"""The dataset-level cast step (skinaudit.skintone.cast): offsets known in advance, phantoms."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinaudit import skintone as st
from skinaudit.errors import ConfigError
from skinaudit.phantoms import PhantomSpec, make_phantom


def _lab_rows(L, b, flags=None):
    L, b = np.asarray(L, float), np.asarray(b, float)
    ita = st.ita_degrees(L, b)
    return pd.DataFrame({"image_id": [f"i{k}" for k in range(len(L))], "L": L, "b": b, "ita": ita,
                         "ita_raw": ita, "group": st.assign_groups(ita), "method": "segmentation/trimmed_median/none",
                         "flags": flags if flags is not None else [""] * len(L)})


def test_correct_cast_is_one_sided_per_group_and_keeps_differences():
    rng = np.random.default_rng(0)
    L = rng.uniform(45, 75, 60)
    b_true = rng.uniform(9, 22, 60)
    groups = np.array(["blue"] * 30 + ["clean"] * 30)
    b = np.where(groups == "blue", b_true - 12.0, b_true)  # a blue cast in the first group only
    rows = _lab_rows(L, b)
    out = st.correct_cast(rows, st.DATASET_ITA, groups)
    blue, clean = groups == "blue", groups == "clean"
    expected_offset = 15.0 - np.median(b[blue])
    assert out.loc[blue, "b_offset"].to_numpy() == pytest.approx(np.full(30, expected_offset))
    # the clean group's median b* is above 15 only if it is; the correction never lowers b*
    assert (out.loc[clean, "b_offset"] == max(0.0, 15.0 - np.median(b[clean]))).all()
    assert (out["b_offset"] >= 0).all()
    # differences within a group are kept exactly: ranks along b* do not change
    assert np.array_equal(np.argsort(out.loc[blue, "b_corrected"]), np.argsort(b[blue]))
    assert out["ita_raw"].to_numpy() == pytest.approx(rows["ita_raw"].to_numpy())  # plain formula kept
    assert out["ita"].notna().all() and set(out["cast_group"]) == {"blue", "clean"}
    assert out.loc[blue, "method"].str.endswith("+dataset_reference").all()
    summary = st.cast_summary(out)
    assert list(summary["cast_group"]) == ["blue", "clean"] and summary["n"].tolist() == [30, 30]


def test_the_default_reference_is_defined_once():
    assert st.DEFAULT_REFERENCE_B == 15.0
    assert st.ItaParams().reference_b == st.DATASET_ITA.reference_b == st.DEFAULT_REFERENCE_B


def test_correct_cast_recomputes_flags_and_respects_given_values():
    L = np.full(25, 65.0)
    b = np.linspace(-6, 4, 25)  # every image b* <= 4: a cast; median -1 -> offset 16
    flags = [f"b_nonpositive(b*={v:.2f})" if v <= 0 else "" for v in b]
    rows = _lab_rows(L, b, flags)
    rows.loc[0, ["ita", "group", "method"]] = [12.0, "dark", "given"]
    out = st.correct_cast(rows, st.DATASET_ITA)
    assert not out["flags"].str.contains("b_nonpositive").any()
    assert out.loc[0, "ita"] == 12.0 and out.loc[0, "group"] == "dark" and out.loc[0, "method"] == "given"
    assert out.loc[1:, "ita"].to_numpy() == pytest.approx(st.ita_degrees(L[1:], b[1:] + 16.0))
    # a stronger reference pushes nothing below zero; a tiny one leaves b* <= 0 flagged
    weak = st.correct_cast(rows, st.ItaParams(ita_correction="dataset_reference", reference_b=0.5))
    assert weak["flags"].str.contains("b_nonpositive").sum() > 0 and weak.loc[1, "group"] == "unknown"


def test_correct_cast_leaves_small_groups_alone():
    rows = _lab_rows(np.full(5, 60.0), np.full(5, -2.0), ["b_nonpositive(b*=-2.00)"] * 5)
    out = st.correct_cast(rows, st.DATASET_ITA)
    assert (out["b_offset"] == 0).all() and out["ita"].isna().all() and not out["cast_estimated"].any()
    assert out["flags"].str.contains("b_nonpositive").all()
    assert st.cast_summary(out).to_dict(orient="records") == [
        {"cast_group": "all", "n": 5, "median_b": -2.0, "b_offset": 0.0, "estimated": False, "with_value": 0}]
    with pytest.raises(ConfigError, match="reference_b"):
        st.ItaParams(reference_b=0)
    with pytest.raises(ConfigError, match="group labels"):
        st.correct_cast(rows, st.DATASET_ITA, ["a"])


def test_cast_correction_recovers_phantoms_under_a_shared_blue_cast():
    """30 phantoms of known skin colour (b* 9-22, as in skin colorimetry), all under the same blue
    cast: measured b* drops by about 8, some images reach b* <= 0. The dataset step restores a
    value for every image and the order of the true ITA."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    rows, truth = [], []
    for i in range(30):
        ph = make_phantom(PhantomSpec(size=96, skin_L=float(rng.uniform(40, 75)), skin_b=float(rng.uniform(9, 22)),
                                      cast="blue", seed=i))
        rows.append(st.analyse_image(ph.image, ph.mask, params=st.ItaParams()))
        truth.append(ph.truth["ita_true"])
    table, truth = pd.DataFrame(rows), np.asarray(truth)
    assert table["b"].median() < 10  # the cast is there
    out = st.correct_cast(table, st.DATASET_ITA)
    assert out["ita"].notna().all()
    assert spearmanr(out["ita"], truth).statistic > 0.99
    assert np.median(np.abs(out["ita"] - truth)) < 3.0


def test_correct_cast_takes_given_offsets():
    rows = _lab_rows(np.full(25, 65.0), np.linspace(-6, 4, 25))
    out = st.correct_cast(rows, st.DATASET_ITA, offsets={"all": 20.0})
    assert (out["b_offset"] == 20.0).all() and out["cast_estimated"].all()
    small = st.correct_cast(rows.head(3), st.DATASET_ITA, offsets={"all": 20.0})  # a sample of 3 images
    assert (small["b_offset"] == 20.0).all() and small["ita"].notna().all()
