"""Options of the skin-tone estimator and the validation of every public function's parameters.

Each public function of :mod:`skinaudit.skintone` refuses a bad option with a ConfigError
whose message names the parameter (the message is a sentence: "the 'n_jobs' parameter ...").
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from skinaudit import skintone as st
from skinaudit.errors import ConfigError, DataError

IMG = np.full((32, 32, 3), 160, dtype=np.uint8)
LESION = np.zeros((32, 32), dtype=bool)
ROWS = pd.DataFrame({"L": [60.0, 62.0], "b": [10.0, 12.0], "flags": ["", ""], "ita": [np.nan, np.nan],
                     "group": ["unknown", "unknown"]})


@pytest.mark.parametrize("kw,match", [
    ({"statistic": "mode"}, "statistic"), ({"trim_sd": 0}, "trim_sd"),
    ({"plausible_range": (10, 0)}, "plausible_range"), ({"plausible_range": (0, "x")}, "plausible_range"),
    ({"ita_correction": "magic"}, "ita_correction"), ({"lesion_margin": 0.7}, "lesion_margin"),
    ({"method": "pixels"}, "method"), ({"lesion_margin_radius": -1}, "lesion_margin_radius"),
    ({"skin_margin": True}, "skin_margin"), ({"skin_margin": "narrow"}, "skin_margin"),
    ({"artifact_margin": 1.5}, "artifact_margin"), ({"artifact_margin": -1}, "artifact_margin"),
    ({"border_width": 0}, "border_width"), ({"min_skin_fraction": 1}, "min_skin_fraction"),
    ({"b_min": math.nan}, "b_min"), ({"b_min": "0"}, "b_min"), ({"lab_scale": "srgb"}, "lab_scale"),
    ({"reference_b": 0}, "reference_b"), ({"reference_b": math.inf}, "reference_b"),
    ({"cast_group": 3}, "cast_group"), ({"min_cast_images": 0}, "min_cast_images"),
])
def test_bad_params_raise(kw, match):
    with pytest.raises(ConfigError, match=f"the '{match}' parameter"):
        st.ItaParams(**kw)


def test_the_old_option_names_are_gone():
    """One name per choice: the audit's ``ita_correction`` and ``skin_margin``."""
    for old in ({"color_correction": "none"}, {"shrink_margin": False}):
        with pytest.raises(TypeError):
            st.ItaParams(**old)


@pytest.mark.parametrize("kw,text", [
    ({}, "segmentation/trimmed_median/none"),
    ({"ita_correction": "dataset_reference"}, "segmentation/trimmed_median/none"),
    ({"ita_correction": "specular"}, "segmentation/trimmed_median/specular"),
    ({"ita_correction": "shades_of_gray", "lab_scale": "opencv8"}, "segmentation/trimmed_median/shades_of_gray/opencv8"),
    ({"skin_margin": "full"}, "segmentation/trimmed_median/none/full-margin"),
    ({"method": "border", "statistic": "median", "skin_margin": "full"}, "border/median/none/full-margin"),
])
def test_describe_text_is_stable(kw, text):
    """The text goes into the ``method`` column and cache keys: it must not change with the names."""
    assert st.ItaParams(**kw).describe() == text


@pytest.mark.parametrize("call,match", [
    (lambda ds: st.get_scheme("nonsense"), "unknown ITA scheme"),
    (lambda ds: st.assign_groups([1.0], "nonsense"), "unknown ITA scheme"),
    (lambda ds: st.estimate_ita(IMG, lesion_mask=LESION, params={"trim_sd": 1}), "the 'params' parameter"),
    (lambda ds: st.estimate_ita(IMG, lesion_params=st.ItaParams()), "the 'lesion_params' parameter"),
    (lambda ds: st.estimate_ita(IMG, artifact_params=None), "the 'artifact_params' parameter"),
    (lambda ds: st.analyse_image(IMG, LESION, scheme=[5, 5]), "strictly increase"),
    (lambda ds: st.analyse_image(IMG, LESION, params=None), "the 'params' parameter"),
    (lambda ds: st.skin_mask(LESION, {}, params="full"), "the 'params' parameter"),
    (lambda ds: st.correct_cast(ROWS, "dataset_reference"), "the 'params' parameter"),
    (lambda ds: st.correct_cast(ROWS, st.DATASET_ITA, ["a"]), "group labels"),
    (lambda ds: st.correct_cast(ROWS, st.DATASET_ITA, scheme="nonsense"), "unknown ITA scheme"),
    (lambda ds: st.dataset_cast_groups(ds, None), "the 'params' parameter"),
    (lambda ds: st.dataset_cast_groups(ds, st.ItaParams(ita_correction="dataset_reference", cast_group="nope")),
     "cast group column 'nope'"),
    (lambda ds: st.inspect_dataset(ds, n_jobs=0), "the 'n_jobs' parameter"),
    (lambda ds: st.inspect_dataset(ds, n_jobs=1.5), "the 'n_jobs' parameter"),
    (lambda ds: st.inspect_dataset(ds, scheme="nonsense"), "unknown ITA scheme"),
    (lambda ds: st.inspect_dataset(ds, params="dataset_reference"), "the 'params' parameter"),
    (lambda ds: st.sensitivity_table(ds, n_jobs=0), "the 'n_jobs' parameter"),
    (lambda ds: st.sensitivity_table(ds, scheme=3.5), "name or a list"),
    (lambda ds: st.sensitivity_table(ds, params=None), "the 'params' parameter"),
])
def test_every_public_function_validates_its_parameters(call, match, phantom_dataset):
    with pytest.raises(ConfigError, match=match):
        call(phantom_dataset.head(2))


@pytest.mark.parametrize("call,match", [
    (lambda: st.correct_cast(ROWS.drop(columns=["b"])), "columns L, b; missing: b"),
    (lambda: st.cast_summary(ROWS), "missing: b_offset, cast_group, cast_estimated"),
    (lambda: st.cast_summary("not a table"), "needs a DataFrame"),
])
def test_tables_without_their_columns_are_data_errors(call, match):
    with pytest.raises(DataError, match=match):
        call()
