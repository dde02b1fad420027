"""Groups from metadata columns (--group-column, --age-bins) and the reliability section of an
audit: labels, intersections, missing values as 'unknown', errors, the CLI on PAD-UFES-20."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import skinaudit as sa
from skinaudit.cli import app
from skinaudit.errors import ConfigError
from skinaudit.grouping import column_groups

runner = CliRunner()


def _table():
    return pd.DataFrame({"image_id": list("abcdef"), "fitspatrick": [1.0, 2.0, np.nan, 2.0, 6.0, 3.0],
                         "gender": ["FEMALE", "MALE", "MALE", None, "FEMALE", ""],
                         "age": [12, 45, 61, 39.5, 130, np.nan], "region": ["FACE", "ARM", "ARM", "FACE", "x", "y"]})


def test_column_labels_fitzpatrick_roman_and_missing_unknown():
    assert column_groups(_table(), "fitspatrick").tolist() == ["I", "II", "unknown", "II", "VI", "III"]
    assert column_groups(_table(), "gender").tolist() == ["FEMALE", "MALE", "MALE", "unknown", "FEMALE", "unknown"]


def test_intersection_and_age_bins():
    both = column_groups(_table(), "fitspatrick, gender")
    assert both.tolist()[:3] == ["I & FEMALE", "II & MALE", "unknown & MALE"]
    ages = column_groups(_table(), ["age"], age_bins="0,40,60,120")
    # [a, b) bins; 130 is beyond the last edge and a missing age is unknown too
    assert ages.tolist() == ["age [0, 40)", "age [40, 60)", "age [60, 120)", "age [0, 40)", "unknown", "unknown"]


@pytest.mark.parametrize("columns, bins, message", [
    ("skin_type", None, r"no column 'skin_type' in the dataset; available: image_id, fitspatrick"),
    ("gender,gender", None, "names a column twice"),
    ("age", "40,20", "strictly increasing"),
    ("age", "a,b", "increasing numbers"),
])
def test_bad_grouping_is_one_sentence(columns, bins, message):
    with pytest.raises(ConfigError, match=message):
        column_groups(_table(), columns, age_bins=bins)


@pytest.mark.parametrize("kwargs, message", [
    ({"age_bins": "0,40"}, "must be among 'group_column'"),
    ({"group_column": "gender", "age_bins": "0,40"}, "must be among 'group_column'"),
    ({"group_column": ""}, "non-empty string"),
    ({"repeat_column": 3}, "non-empty string"),
])
def test_config_validates_group_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        sa.AuditConfig(**kwargs)


def _phantom_audit(ds, **config):
    rng = np.random.default_rng(0)
    y = ds.labels.astype(float)
    scores = pd.Series(np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, len(y)), 0, 1), index=ds.ids)
    cfg = sa.AuditConfig(n_boot=200, sensitivity_sample=0, explain="off", **config)
    return sa.run_audit(sa.PrecomputedScores(scores), ds, cfg, stages=("skintone", "fairness"))


def test_audit_by_column_shows_unknown_but_never_compares_it(phantom_dataset, tmp_path):
    table = phantom_dataset.table.copy()
    table["site"] = np.where(np.arange(len(table)) % 2, "A", "B")
    table.loc[table.index[:6], "site"] = None
    table["visit"] = np.arange(len(table)) // 2  # pairs of images as "repeats"
    ds = sa.AuditDataset(table, name="phantoms", source=phantom_dataset.source)
    res = _phantom_audit(ds, group_column="site", repeat_column="visit")
    pred = res.predictions
    assert {"ita", "ita_group", "group"} <= set(pred.columns)
    assert set(pred["group"]) == {"A", "B", "unknown"}
    groups = res.sections["groups"].data
    assert groups["grouping"] == {"by": "column", "columns": ["site"], "label": "site"}
    assert groups["groups"]["unknown"]["n"] == 6 and "ita_groups" in groups
    fair = res.sections["fairness"].data
    assert fair["grouping"]["columns"] == ["site"] and "unknown" in fair["groups"]
    # a missing value is shown with its metrics but, like an unmeasurable ITA, never compared
    assert fair["groups"]["unknown"]["compared"] is False and fair["reference"] in {"A", "B"}
    assert all("unknown" not in str(g["group"]) for g in fair["gaps"]) if isinstance(fair["gaps"], list) else \
        all("unknown" not in str(k) for k in fair["gaps"])
    assert fair["unknown_images"]["n"] == 6 and fair["unknown_images"]["reasons"] == {"no value in site": 6}
    assert "not compared" in fair["unknown_images"]["note"]
    from skinaudit.report import render_html

    html = render_html(res, out_dir=tmp_path)
    assert "Images left out of the comparison (no value in site)" in html
    # no caption, title, badge or figure calls the groups of a metadata column ITA groups
    for text in ("Metrics per site group", "Fairness across site groups", "Site group sizes",
                 "ROC curve per site group", "Composition by site group"):
        assert text in html, text
    for text in ("Metrics per ITA group", "Fairness across ITA groups", "ITA group sizes", "ROC curve per ITA group",
                 "Tests of each ITA group", "Composition by ITA group", "malignant cases per ITA group"):
        assert text not in html, text
    assert "This audit compares the groups of the metadata column(s) site instead" in html
    assert "metadata column used as the group (instead of ITA): site" in html  # on the cover
    from test_report import pdf_overflow

    assert pdf_overflow(html) == []  # the per-group table with an 'unknown' row fits the page
    rel = res.sections["skintone"].data["reliability"]
    assert rel["repeat_column"] == "visit" and rel["n_lesions_with_repeats"] == 20
    assert "variant_kappa" not in rel  # no sensitivity sample in this audit


def test_an_intersection_with_a_missing_part_is_not_compared(phantom_dataset):
    table = phantom_dataset.table.copy()
    table["site"] = np.where(np.arange(len(table)) % 2, "A", "B")
    table["sex"] = np.where(np.arange(len(table)) % 4 < 2, "F", "M")
    table.loc[table.index[:4], "sex"] = None
    ds = sa.AuditDataset(table, name="phantoms", source=phantom_dataset.source)
    fair = _phantom_audit(ds, group_column="site,sex").sections["fairness"].data
    shown = {g for g in fair["groups"] if "unknown" in g}
    assert shown == {"A & unknown", "B & unknown"}
    assert all(fair["groups"][g]["compared"] is False for g in shown)
    assert all(fair["groups"][g].get("compared", True) for g in fair["groups"] if g not in shown | {"all"})
    assert fair["unknown_images"]["reasons"] == {"no value in sex": 4}


def test_audit_without_options_has_no_new_keys(phantom_dataset):
    res = _phantom_audit(phantom_dataset)
    assert "grouping" not in res.sections["groups"].data and "ita_group" not in res.predictions
    assert "reliability" not in res.sections["skintone"].data
    assert "grouping" not in res.sections["fairness"].data


def test_missing_columns_fail_before_any_work(phantom_dataset):
    with pytest.raises(ConfigError, match="--group-column: no column 'fitzpatrick'.*available: image_id"):
        _phantom_audit(phantom_dataset, group_column="fitzpatrick")
    with pytest.raises(ConfigError, match="--repeat-column: no column 'lesion'"):
        _phantom_audit(phantom_dataset, repeat_column="lesion")


def test_cli_pad_ufes20_by_fitzpatrick_with_reliability(shared_data, tmp_path):
    folder = shared_data("pad-ufes20")
    labels = pd.read_csv(folder / "labels.csv")
    rng = np.random.default_rng(0)
    y = (labels["benign_malignant"] == "malignant").to_numpy(float)
    scores = 1 / (1 + np.exp(-(1.5 * y - 0.7 + rng.normal(0, 1.2, len(y)))))
    pd.DataFrame({"image_id": labels["image_id"], "score": scores.round(6)}).to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--scores", str(tmp_path / "s.csv"), "--data", "isic-archive", "--metadata",
                              str(folder / "labels.csv"), "--images", str(folder / "images"), "--masks",
                              str(folder / "masks"), "--mask-pattern", "{id}_mask.png", "--group-column",
                              "fitspatrick", "--n-boot", "200", "--no-pdf", "--sensitivity-sample", "0",
                              "--no-cache", "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    rel = metrics["skintone"]["reliability"]
    assert rel["repeat_column"] == "lesion_id" and rel["n_lesions"] >= 50
    assert rel["icc_ci"][0] <= rel["icc"] <= rel["icc_ci"][1] and 0 <= rel["flip_rate"] <= 1
    assert metrics["groups"]["grouping"]["columns"] == ["fitspatrick"]
    assert set(metrics["fairness"]["groups"]) - {"all"} == {"I", "II", "III", "IV", "V", "VI"}
    pred = pd.read_csv(out / "predictions.csv")
    assert {"ita", "ita_group", "group"} <= set(pred.columns)
    report = (out / "report.html").read_text()
    assert "Images per group of fitspatrick" in report and "reliability" in report.lower()
    bad = runner.invoke(app, ["run", "--scores", str(tmp_path / "s.csv"), "--data", "isic-archive", "--metadata",
                              str(folder / "labels.csv"), "--images", str(folder / "images"), "--group-column",
                              "skin_type", "--no-cache", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "no column 'skin_type' in the dataset; available: image_id, img_id, patient_id" in bad.output


def test_audit_by_monk_skin_tone_and_natural_order(phantom_dataset):
    res = _phantom_audit(phantom_dataset, group_column="mst")
    groups = list(res.sections["groups"].data["groups"])
    assert groups and all(g.startswith("MST ") or g == "unknown" for g in groups)
    numbers = [int(g.split()[1]) for g in groups if g != "unknown"]
    assert numbers == sorted(numbers)
    assert "ita_group" in res.predictions
