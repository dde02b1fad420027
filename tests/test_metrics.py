"""Known answers for the metric tables: the paper's Table 3 and Table 8 rebuilt as data."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinaudit.errors import ConfigError, DataError
from skinaudit.metrics import (PAPER_GAP_RULE, binary_metrics, choose_reference, group_metrics, metric_gaps,
                               metrics_from_counts, paper_rule, paper_table, rates_from_counts)


def block(tp, fn, tn, fp, name, *, hi=0.9, lo=0.1):
    """Cases with the given confusion counts at any threshold in (lo, hi]."""
    y = np.r_[np.ones(tp + fn), np.zeros(tn + fp)].astype(int)
    s = np.r_[np.full(tp, hi), np.full(fn, lo), np.full(tn, lo), np.full(fp, hi)]
    return y, s, np.full(y.size, name, dtype=object)


def table8_data():
    """Paper Table 8 at t = 0.46: light 143 malignant / 27 FN, dark 145 / 32; FP from precision."""
    light = block(116, 27, 721 - 96, 96, "light")   # 864 images, precision 116/212
    dark = block(113, 32, 484 - 104, 104, "dark")   # 629 images, precision 113/217
    return tuple(np.r_[light[i], dark[i]] for i in range(3))


def test_table3_counts_give_the_papers_metrics():
    m = metrics_from_counts(tp=253, fn=35, tn=955, fp=250)
    assert round(m["recall"], 4) == 0.8785
    assert round(m["precision"], 4) == 0.5030
    assert round(m["f1"], 4) == 0.6397
    assert round(m["accuracy"], 4) == 0.8091
    # the paper prints 0.7927, which its own counts cannot give: 955 / 1205 = 0.79253
    assert round(m["specificity"], 4) == round(955 / 1205, 4) == 0.7925
    assert m["n"] == 1493


def test_table8_counts_come_out_exactly():
    y, s, g = table8_data()
    t = group_metrics(y, s, g, threshold=0.46)
    assert list(t.index) == ["dark", "light", "all"]
    assert (t.loc["light", "n"], t.loc["light", "n_pos"], t.loc["light", "fn"]) == (864, 143, 27)
    assert (t.loc["dark", "n"], t.loc["dark", "n_pos"], t.loc["dark", "fn"]) == (629, 145, 32)
    assert t.loc["all", "fn"] == 59
    expected = {"recall": (0.7951, 0.8112, 0.7793), "precision": (0.5338, 0.5472, 0.5207),
                "f1": (0.6388, 0.6535, 0.6243), "fnr": (0.2049, 0.1888, 0.2207)}
    for metric, (a, light, dark) in expected.items():
        assert round(t.loc["all", metric], 4) == a
        assert round(t.loc["light", metric], 4) == light
        assert round(t.loc["dark", metric], 4) == dark
    assert t.loc["light", "undefined"] == ""


def test_table8_layout_and_paper_rule():
    y, s, g = table8_data()
    t8 = paper_table(group_metrics(y, s, g, threshold=0.46))
    assert list(t8.columns) == ["metric", "all", "light", "dark", "gap", "significant_paper_rule"]
    assert list(t8["metric"]) == ["auc", "recall", "precision", "f1", "fn", "fnr"]
    rec = t8.set_index("metric").loc["recall"]
    assert round(rec["gap"], 4) == 0.0319
    assert rec["significant_paper_rule"] is not None and not rec["significant_paper_rule"]
    assert t8.set_index("metric").loc["fn", "significant_paper_rule"] is None
    assert t8.set_index("metric").loc["fn", "gap"] == 5


@pytest.mark.parametrize("metric,gap,flag", [
    ("auc", 0.0571, True), ("auc", 0.02, False), ("auc", -0.021, True), ("recall", 0.0319, False),
    ("recall", 0.05, False), ("precision", 0.0501, True), ("f1", float("nan"), False)])
def test_paper_rule_is_a_fixed_threshold_on_the_gap(metric, gap, flag):
    assert paper_rule(metric, gap) is flag
    assert PAPER_GAP_RULE == {"auc": 0.02, "other": 0.05}


def test_auc_gap_flagged_by_paper_rule_on_data():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 200)
    g = np.repeat(["a", "b"], 200)
    s = np.clip(0.5 + (y - 0.5) * np.where(g == "a", 0.6, 0.2) + rng.normal(0, 0.15, y.size), 0, 1)
    gaps = metric_gaps(group_metrics(y, s, g, threshold=0.5), reference="a")
    row = gaps[(gaps.metric == "auc") & (gaps.group == "b")].iloc[0]
    assert row["difference"] < -0.02 and row["paper_flag"]


def test_overall_row_matches_binary_metrics():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = rng.random(300)
    g = rng.choice(["x", "y", "z"], 300)
    t = group_metrics(y, s, g, threshold=0.4)
    b = binary_metrics(y, s, threshold=0.4)
    for k in ("auc", "recall", "precision", "f1", "specificity", "fnr", "accuracy", "tp", "fn", "tn", "fp"):
        assert t.loc["all", k] == pytest.approx(b[k])
    assert t.loc[["x", "y", "z"], "n"].sum() == 300


def test_undefined_metrics_are_nan_with_reason():
    y = np.array([0, 0, 0, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.3, 0.9, 0.1, 0.2])
    g = np.array(["benign_only"] * 3 + ["mixed"] * 3)
    t = group_metrics(y, s, g, threshold=0.5)
    row = t.loc["benign_only"]
    assert np.isnan(row["recall"]) and np.isnan(row["auc"]) and np.isnan(row["precision"])
    assert "no malignant case" in row["undefined"] and "only one class" in row["undefined"]
    assert row["specificity"] == 1.0


def test_categorical_order_and_reference():
    y = np.array([0, 1] * 6)
    s = np.linspace(0, 1, 12)
    g = pd.Categorical(["light"] * 8 + ["dark"] * 4, categories=["light", "dark"])
    t = group_metrics(y, s, g, threshold=0.5)
    assert list(t.index) == ["light", "dark", "all"]
    assert choose_reference(t) == "light"
    assert choose_reference(t, "dark") == "dark"
    with pytest.raises(ConfigError, match="reference group"):
        choose_reference(t, "medium")


def test_rates_from_counts_vectorised_equals_scalar():
    counts = np.array([[253, 35, 955, 250], [0, 0, 5, 0], [3, 1, 0, 0], [0, 4, 4, 0]])
    vec = rates_from_counts(*counts.T)
    for i, row in enumerate(counts):
        one = metrics_from_counts(*row)
        for k, v in vec.items():
            assert (np.isnan(v[i]) and np.isnan(one[k])) or v[i] == one[k]


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"threshold": 1.7}, ConfigError, "threshold"),
    ({"threshold": 0.5, "groups": ["a"] * 3}, DataError, "one entry per case"),
    ({"threshold": 0.5, "groups": ["a", None, "b", "b"]}, DataError, "missing"),
    ({"threshold": 0.5, "groups": ["all", "a", "a", "all"]}, ConfigError, "also a group name"),
])
def test_bad_inputs(kwargs, exc, match):
    args = {"groups": ["a", "b", "a", "b"], **kwargs}
    with pytest.raises(exc, match=match):
        group_metrics([0, 1, 1, 0], [0.2, 0.4, 0.6, 0.8], args.pop("groups"), **args)
