"""The audit report: figures, context, HTML (escaped, self-contained, opens in Chromium), PDF."""
from __future__ import annotations

import dataclasses
import html.parser
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skinaudit import figures as F
from skinaudit import report
from skinaudit.config import AuditConfig
from skinaudit.result import AuditResult
from skinaudit.report import context as report_context
from skinaudit.report import render as report_render
from skinaudit.report import tables as report_tables
from skinaudit.report import words as report_words
from skinaudit.errors import ConfigError, DataError, MissingDependencyError
from skinaudit.metrics import binary_metrics

EVIL_ID = "<script>document.body.setAttribute('data-pwned','1')</script>"
EVIL_NAME = "<script>document.title='pwned'</script>dataset"
EVIL_NOTE = "<img src=x onerror=alert(1)> note from data"
EVIL_GROUP = "<i>dark</i> $_{x}$"  # markup for the HTML, mathtext for matplotlib
EVIL_META = "<script>alert('metadata')</script>"
DATE = "2026-01-02T03:04:05+00:00"


def make_result(*, sections=True, threshold=0.5, evil=True, n=120, seed=1) -> AuditResult:
    """An AuditResult built directly: 120 images, two ITA groups, optional later sections."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    s = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    ita = rng.normal(35, 12, n)
    g = np.where(ita > 28, "light", EVIL_GROUP if evil else "dark")
    ids = [f"img_{i:03d}" for i in range(n)]
    flags = ["" if i % 17 else "b_nonpositive" for i in range(n)]
    if evil:
        ids[17] = EVIL_ID  # a flagged row (flagged rows are counted by flag in the report; the id is in the CSV)
    pred = pd.DataFrame({"image_id": ids, "label": y, "score": s, "prediction": (s >= threshold).astype(int),
                         "ita": ita, "group": g, "flags": flags})
    secs = {"overall": binary_metrics(y, s, threshold=threshold)}
    if sections:
        secs["groups"] = {"scheme": {"name": "binary", "cut_points": [28.0]}, "tables": {"table7": [
            {"group": k, "n": int((g == k).sum()), "benign": int(((g == k) & (y == 0)).sum()),
             "malignant": int(((g == k) & (y == 1)).sum()), "share": float((g == k).mean())}
            for k in ("light", EVIL_GROUP if evil else "dark")]}}
        secs["fairness"] = {"alpha": 0.05,
                            "groups": {k: {"n": int((g == k).sum()), "recall": 0.8, "recall_ci": [0.7, 0.9]}
                                       for k in ("light", EVIL_GROUP if evil else "dark")},
                            "verdicts": {"recall": {"light": "not significant"}, "auc": {"light": "not significant"}},
                            "paper_rule": {"flags": {"auc": {"light": False}}},
                            "notes": [EVIL_NOTE]}
        secs["recalibration"] = {"global": {"threshold": 0.38, "recall_after": 0.9}}
        secs["failure_modes"] = {"tables": {"table6": [
            {"mode": "artifact_distraction", "count": 3, "share": 0.5, "description": "attention on hair"},
            {"mode": "low_contrast", "count": 3, "share": 0.5, "description": "low lesion-skin contrast"}]}}
    ds = {"name": EVIL_NAME if evil else "phantoms", "n": n + 2, "malignant": int(y.sum()),
          "benign": int(n - y.sum()), "with_mask": n, "excluded": 2, "manifest_sha256": "ab" * 32,
          "source": "/data/<b>x</b>" if evil else "/data/x", "metadata": {"site": EVIL_META if evil else "a"}}
    model = {"name": "<script>alert('model')</script>" if evil else "colour_model", "adapter": "CallableModel",
             "path": None, "sha256": None}
    skipped = pd.DataFrame({"image_id": ["<script>alert('skip')</script>" if evil else "bad", "img_x"],
                            "reason": ["unreadable", EVIL_ID if evil else "missing file"]})
    return AuditResult(config=AuditConfig(threshold=threshold, seed=3), dataset=ds, model=model, predictions=pred,
                       sections=secs, skipped=skipped)


@pytest.fixture
def no_figures(monkeypatch):
    """Skip drawing (for tests about tables and badges): every computed figure is absent."""
    monkeypatch.setattr(report_context, "_computed_figures",
                        lambda result, figures_dir: {k: (None, "not drawn in this test")
                                                     for k in report_context._FIGURE_CAPTIONS})


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The full report (HTML, PDF, figures) of :func:`make_result`, written once."""
    import logging

    out = tmp_path_factory.mktemp("report")
    result = make_result()
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logging.getLogger("weasyprint").addHandler(handler)
    try:
        paths = report.write_report(result, out, generated_at=DATE)
    finally:
        logging.getLogger("weasyprint").removeHandler(handler)
    paths["weasyprint_warnings"] = [r.getMessage() for r in records]
    return result, paths


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.captions, self.imgs, self._in_caption = [], [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "caption":
            self._in_caption = True
            self.captions.append("")
        if tag == "img":
            self.imgs.append(dict(attrs).get("src", ""))

    def handle_endtag(self, tag):
        if tag == "caption":
            self._in_caption = False

    def handle_data(self, data):
        if self._in_caption:
            self.captions[-1] += data


def _parse(text: str) -> _Collector:
    c = _Collector()
    c.feed(text)
    return c


# -- figures ----------------------------------------------------------------------------------

def test_threshold_sweep_known_answer():
    sw = F.threshold_sweep([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1], step=0.5)
    np.testing.assert_allclose(sw["threshold"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(sw["recall"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(sw["specificity"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(sw["precision"][:2], [0.5, 0.5])
    assert np.isnan(sw["precision"][2])  # nothing predicted malignant: undefined, not 0
    np.testing.assert_allclose(sw["f1"], [2 / 3, 0.5, 0.0])


def test_sweep_step_reaches_the_grid():
    assert F.threshold_sweep([0, 1], [0.2, 0.8], step=0.25)["threshold"].size == 5
    assert F.threshold_sweep([0, 1], [0.2, 0.8], step=0.1)["threshold"].size == 11


def test_roc_points_undefined_with_one_class():
    fpr, tpr, auc = F.roc_points([1, 1, 1], [0.2, 0.5, 0.9])
    assert np.isnan(auc) and fpr.size == 0 and tpr.size == 0
    assert F.roc_points([0, 1], [0.2, 0.9])[2] == 1.0


def test_figures_are_deterministic_pngs(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    s = rng.random(80)
    g = np.where(rng.random(80) < 0.5, "light", "dark")
    a = F.roc_png(y, s, tmp_path / "a.png", threshold=0.5, groups=g).read_bytes()
    b = F.roc_png(y, s, tmp_path / "b.png", threshold=0.5, groups=g).read_bytes()
    c = F.roc_png(y, s, tmp_path / "c.png", threshold=0.3, groups=g).read_bytes()
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a == b and a != c
    assert b"Software" not in a and b"matplotlib" not in a.lower()
    h1 = F.ita_histogram_png(rng.normal(30, 10, 50), tmp_path / "h1.png", cut_points=[28]).read_bytes()
    h2 = F.ita_histogram_png(rng.normal(30, 10, 50), tmp_path / "h2.png", cut_points=[28], bins=10).read_bytes()
    assert h1 != h2  # the bins parameter reaches the drawing


@pytest.mark.parametrize("call, exc, match", [
    (lambda p: F.roc_png([0, 1], [0.1, 0.9], p, threshold=1.5), ConfigError, "threshold"),
    (lambda p: F.roc_png([0, 1], [0.1], p, threshold=0.5), DataError, "same length"),
    (lambda p: F.roc_png([0, 2], [0.1, 0.9], p, threshold=0.5), DataError, "labels"),
    (lambda p: F.roc_png([0, 1], [0.1, 0.9], p, threshold=0.5, groups=["a"]), DataError, "groups"),
    (lambda p: F.confusion_png(1, -1, 2, 3, p, threshold=0.5), DataError, "non-negative"),
    (lambda p: F.ita_histogram_png([1.0, 2.0], p, bins=1), ConfigError, "bins"),
    (lambda p: F.threshold_curves_png([0, 1], [0.1, 0.9], p, threshold=0.5, step=0), ConfigError, "step"),
])
def test_figures_validate_inputs(tmp_path, call, exc, match):
    with pytest.raises(exc, match=match):
        call(tmp_path / "x.png")


# -- formatting, templates, context -------------------------------------------------------------

def test_formatting_filters():
    assert report.fmt_num(0.888888) == "0.8889"
    assert report.fmt_num(0.888888, 2) == "0.89"
    assert report.fmt_num(1512) == "1,512"
    assert report.fmt_num(None) == "n/a" and report.fmt_num(float("nan")) == "n/a"
    assert report.fmt_num(True) == "yes"
    assert report.fmt_pct(0.314) == "31.4%" and report.fmt_pct(None) == "n/a"
    assert report.fmt_cell([0.1, 0.25]) == "[0.1000,\u00a00.2500]"  # no break inside an interval
    assert report.fmt_cell([None, 0.25]) == "[n/a,\u00a00.2500]"
    assert report.fmt_cell([0, 6]) == "[0,\u00a06]" and report.fmt_cell([0, 0.5]) == "[0.0000,\u00a00.5000]"
    assert report.fmt_cell([0.8, 0.7, 0.9], "est_ci") == "0.8000 [0.7000,\u00a00.9000]"
    assert report.fmt_cell([3, 1], "change") == "3\u00a0\u2192\u00a01"
    assert report.fmt_cell({"dark": 0.46, "light": {"op": {"threshold": 0.5}, "p": 1.0}}, "thr") == \
        "dark: 0.46; light: 0.5"
    assert report.fmt_cell(12.345, "percent") == "12.3%" and report.fmt_cell(0.00001, "p") == "< 0.0001"
    assert report.fmt_cell(["hair", "ink"]) == "hair, ink"
    assert report.fmt_cell(0.5, "pct") == "50.0%"
    assert report.fmt_threshold(0.375) == "0.375" and report.fmt_threshold(0.5) == "0.5"


def test_environment_autoescapes_and_is_strict():
    import jinja2

    env = report_render._environment()
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ nope }}").render()
    with pytest.raises(jinja2.TemplateNotFound):
        env.get_template("../pyproject.toml")


def test_context_is_json_safe_and_tables_come_from_the_sections(tmp_path):
    result = make_result()
    result.sections["overall"].data["specificity"] = float("nan")  # undefined stays undefined
    ctx = report.build_context(result, figures_dir=tmp_path / "figures", generated_at=DATE)
    json.dumps(ctx, allow_nan=False)
    values = {row[0]["v"]: row[1]["v"] for row in ctx["overall"]["rows"]}
    o = result.sections["overall"]
    assert values["Recall (sensitivity)"] == o["recall"] and values["False negatives (FN)"] == o["fn"]
    assert values["Specificity"] is None
    assert ctx["threshold"] == 0.5 and ctx["generated_at"] == DATE
    assert sorted(p.name for p in (tmp_path / "figures").glob("*.png")) == [
        "confusion.png", "ita_histogram.png", "roc.png", "roc_by_group.png", "threshold_curves.png"]
    assert all(f["src"].startswith("data:image/png;base64,") for f in ctx["figures"].values())
    table7 = [p for p in ctx["sections"]["groups"]["parts"] if p["source"].endswith("table7")][0]
    assert [r[0]["v"] for r in table7["rows"]] == ["light", EVIL_GROUP]


def test_report_rules_reach_the_badges(tmp_path, no_figures):
    result = make_result(evil=False)

    def status(check, **rules):
        badges = report.summary_badges(result, rules=report.ReportRules(**rules))
        return {b["check"]: b["status"] for b in badges}[check]

    ctx = report.build_context(result, figures_dir=tmp_path, rules=report.ReportRules(min_recall=1.0))
    assert {b["check"]: b["status"] for b in ctx["badges"]}["Recall"] == "FAIL"
    assert ctx["rules"]["min_recall"] == 1.0

    recall = result.sections["overall"]["recall"]
    assert status("Recall", min_recall=recall) == "PASS"
    assert status("Recall", min_recall=min(1.0, recall + 0.01)) == "FAIL"
    if "gamma" in {f.name for f in dataclasses.fields(AuditConfig)}:  # the audit's own recall target
        result.config = dataclasses.replace(result.config, gamma=min(1.0, recall + 0.01))
        assert status("Recall") == "FAIL"
        result.config = dataclasses.replace(result.config, gamma=recall)
        assert status("Recall") == "PASS"
    assert status("ITA group sizes", min_group_positives=1) == "PASS"
    assert status("ITA group sizes", min_group_positives=1000) == "WARN"
    unknown = result.predictions["label"].eq(0) & (result.predictions.index % 5 == 0)
    result.predictions.loc[unknown, "group"] = "unknown"  # no ITA: not a group to compare
    assert status("ITA group sizes", min_group_positives=1) == "PASS"
    assert "unknown" not in {b["check"]: b for b in report.summary_badges(result)}["ITA group sizes"]["value"]
    result.predictions["group"] = "unknown"
    assert status("ITA group sizes") == "not run"
    assert status("Images scored", max_skipped_share=0.5) == "PASS"
    assert status("Images scored", max_skipped_share=0.0) == "WARN"
    assert status("Explanations on the lesion") == "not run"
    result.sections["localisation"] = {"groups": [{"group": "light", "pointing_game": 0.6},
                                                  {"group": "dark", "pointing_game": 0.4},
                                                  {"group": "all", "pointing_game": 0.55}]}
    assert status("Explanations on the lesion", min_pointing_game=0.4) == "PASS"
    assert status("Explanations on the lesion", min_pointing_game=0.5) == "WARN"


@pytest.mark.parametrize("kwargs, match", [({"min_recall": 1.5}, "min_recall"),
                                           ({"min_group_positives": 0}, "min_group_positives"),
                                           ({"max_skipped_share": -0.1}, "max_skipped_share"),
                                           ({"min_pointing_game": 2}, "min_pointing_game")])
def test_report_rules_validate(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        report.ReportRules(**kwargs)


def test_fairness_badges_read_the_verdicts():
    result = make_result(evil=False)
    result.sections["fairness"].data["verdicts"]["auc"]["light"] = "significant"
    result.sections["fairness"].data["paper_rule"]["flags"]["auc"]["light"] = True
    badges = {b["check"]: b for b in report.summary_badges(result)}
    assert badges["Fairness, statistical tests"]["status"] == "FAIL"
    assert "auc" in badges["Fairness, statistical tests"]["detail"]
    assert badges["Fairness, paper heuristic"]["status"] == "WARN"
    result.sections["fairness"].data["verdicts"]["auc"]["light"] = "insufficient data"
    badges = {b["check"]: b for b in report.summary_badges(result)}
    assert badges["Fairness, statistical tests"]["status"] == "WARN"
    del result.sections["fairness"]
    badges = {b["check"]: b for b in report.summary_badges(result)}
    assert badges["Fairness, statistical tests"]["status"] == "not run"
    assert badges["Fairness, paper heuristic"]["status"] == "not run"


def test_absent_sections_say_not_available(tmp_path, monkeypatch):
    result = make_result(sections=False, evil=False)
    result.predictions = result.predictions.drop(columns=["group", "ita", "flags"])
    monkeypatch.chdir(tmp_path)  # templates come from the package, never from the working directory
    html = report.render_html(result, out_dir=tmp_path / "out", generated_at=DATE)
    assert report.render_html(result, out_dir=tmp_path / "again", generated_at=DATE) == html  # deterministic
    src = "".join(p.read_text(encoding="utf-8") for p in Path(report.__file__).parent.glob("*.py"))
    assert "__file__" not in src and "getcwd" not in src and "PackageLoader" in src
    for sid in ("cover", "summary", "use", "dataset", "overall", "fairness", "skintone", "recalibration",
                "explanations", "failure_modes", "checklist", "skipped", "appendix"):
        assert f'id="{sid}"' in html
    assert html.count("Not available:") >= 7
    assert "no model with an explainable layer was audited" in html
    assert "Figure not available: no skin-tone group per image" in html
    assert "not run" in html


def test_section_tables_figures_and_unknown_sections_are_rendered(tmp_path, no_figures):
    result = make_result(evil=False)
    png = F.confusion_png(1, 2, 3, 4, tmp_path / "elsewhere" / "triptych_fn.png", threshold=0.5)
    (tmp_path / "not_an_image.png").write_text("hello")
    result.figures = {"triptych_tp": png.read_bytes()}  # AuditResult.figures: name -> PNG bytes
    result.sections["explanations"] = {"figures": {"triptych_fn": str(png), "broken": str(tmp_path / "not_an_image.png"),
                                                   "gone": str(tmp_path / "missing.png"),
                                                   "triptych_tp": "figures/triptych_tp.png"}}
    result.sections["localisation"] = {"available": False, "reason": "no lesion masks"}
    result.sections["calibration_extra"] = {"brier": 0.12345}
    html = report.render_html(result, out_dir=tmp_path / "out", generated_at=DATE)
    assert html.count("data:image/png;base64,") == 2  # the triptych from disk and the one from memory
    assert "not a PNG or JPEG image" in html and "missing.png not found" in html
    assert "Not available:</strong> no lesion masks" in html
    assert "Other results" in html and "0.1235" in html


# -- the written report ---------------------------------------------------------------------------

def test_write_report_outputs(written):
    _, paths = written
    assert paths["html"].name == "report.html" and paths["pdf"].name == "report.pdf"
    assert set(paths["figures"]) == {"roc", "confusion", "roc_by_group", "ita_histogram", "threshold_curves"}
    assert all(p.parent.name == "figures" and p.stat().st_size > 1000 for p in paths["figures"].values())
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
    assert paths["weasyprint_warnings"] == []  # the stylesheet has nothing WeasyPrint ignores


def test_html_is_self_contained_and_states_the_threshold_once(written):
    result, paths = written
    text = paths["html"].read_text(encoding="utf-8")
    parsed = _parse(text)
    assert parsed.imgs and all(src.startswith("data:image/") for src in parsed.imgs)
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert "Content-Security-Policy\" content=\"default-src 'none'; img-src data:;" in text
    assert parsed.tags.count("table") == len(parsed.captions) > 10
    assert not any("decision threshold" in c for c in parsed.captions)  # no boilerplate on every caption
    assert text.count("uses the decision threshold <strong>0.5</strong>") == 1


def test_no_developer_captions(written):
    _, paths = written
    text = paths["html"].read_text(encoding="utf-8")
    assert "Source: sections." not in text and "Source:" not in text


def test_flagged_images_are_summarised_by_flag(written, tmp_path):
    result, paths = written
    text = paths["html"].read_text(encoding="utf-8")
    ctx = report.build_context(result, figures_dir=tmp_path, generated_at=DATE)
    flagged = ctx["flagged"]
    assert [c["key"] for c in flagged["columns"]] == ["flag", "images", "of them malignant"]
    expected = {}
    for f in result.predictions["flags"]:
        for name in dict.fromkeys(report_words.flag_names(f or "")):
            expected[name] = expected.get(name, 0) + 1
    assert {r[0]["v"]: r[1]["v"] for r in flagged["rows"]} == expected
    assert "is a row of predictions.csv (column flags)" in text


def test_flag_names_and_counts_by_reason():
    assert report_words.flag_names("hair, beyond_range(78.0), b_nonpositive(b*=-5.27)") == [
        "hair", "beyond_range", "b_nonpositive"]
    rows = report_words.by_reason([{"flags": "hair, ink", "label": 1}, {"flags": "hair", "label": 0},
                                   {"flags": "", "label": 1}], "flags")
    assert rows == [{"reason": "hair", "images": 2, "malignant": 1}, {"reason": "ink", "images": 1, "malignant": 1}]


def test_config_is_a_readable_table_and_the_dataset_is_named_by_its_folder(written, tmp_path):
    result, paths = written
    text = paths["html"].read_text(encoding="utf-8")
    ctx = report.build_context(result, figures_dir=tmp_path, generated_at=DATE)
    table = ctx["config_table"]
    assert [c["label"] for c in table["columns"]] == ["setting", "value", "option"]
    rows = {r[2]["v"]: r for r in table["rows"]}
    assert rows["threshold"][0]["v"].startswith("decision threshold")
    assert "None" not in text.split('id="appendix"')[1].split("Model")[0]
    assert "{'" not in text and "': None" not in text  # no Python dict repr anywhere
    ds = {"name": "ISIC2018_Task3_Test_GroundTruth",
          "source": {"images": "/d/isic2018-test/images", "labels": "/d/isic2018-test/GT.csv", "masks": None}}
    assert report_words.dataset_name(ds) == "isic2018-test"
    assert report_words.dataset_name({"name": "x", "source": {"images": "/d/ham/imgs_part1"}}) == "imgs_part1"
    assert report_words.dataset_name({"name": "plain"}) == "plain"


@pytest.mark.parametrize("metric, diff, lo, hi, expected", [
    ("recall", 0.036, -0.199, 0.179, "recall: dark 0.778 vs light 0.742 (light lower, worse by 0.036 [-0.199, 0.179])"),
    ("precision", -0.1, -0.25, 0.07, "precision: dark 0.778 vs light 0.742 (dark lower, worse by 0.100 [-0.070, 0.250])"),
    ("fnr", -0.036, -0.18, 0.2, "fnr: dark 0.778 vs light 0.742 (light higher, worse by 0.036 [-0.200, 0.180])"),
    ("fnr", 0.05, 0.01, 0.09, "fnr: dark 0.778 vs light 0.742 (dark higher, worse by 0.050 [0.010, 0.090])"),
])
def test_gap_sentence_names_the_worse_group_with_direction(metric, diff, lo, hi, expected):
    assert report_words.gap_sentence(metric, "dark", "light", value_group=0.7778, value_reference=0.742,
                                     difference=diff, low=lo, high=hi) == expected


def test_recalibration_shows_an_infeasible_search_as_infeasible(tmp_path):
    from skinaudit.report.sections import section_view

    per = [{"group": "dark", "n": 20, "n_pos": 7, "fn_before": 6, "fn_after": 7, "recall_before": 0.14,
            "recall_after": 0.0},
           {"group": "all", "n": 945, "n_pos": 200, "fn_before": 50, "fn_after": 40}]
    sec = {"threshold": 0.5, "gamma": 0.85, "n_cal": 400, "n_test": 945, "methods": {
        "per_group": {"status": "ok", "thresholds": {"dark": 0.9, "light": 0.3},
                      "feasible": {"dark": False, "light": True},
                      "fallback": {"dark": "group 'dark': no grid threshold reaches recall >= 0.85"},
                      "recall_gap_before": 0.20, "recall_gap_after": 0.25, "recall_gap_change_pct": 25.0,
                      "per_group": per}}}
    view = section_view("recalibration", "Threshold recalibration", sec, base=tmp_path, source="sections.recalibration")
    cells = [[c["v"] for c in row] for part in view["parts"] for row in part["rows"]]
    assert ["per_group", "infeasible for dark"] == cells[0][:2]
    assert any(str(r[0]).startswith("per_group (infeasible for dark") and "+0.0500" in r for r in cells)
    assert any(r[1] == "dark" and r[-1] == "infeasible: fallback threshold" for r in cells)
    assert any(r[1] == "all held-out images" for r in cells)
    assert "held-out part" in view["notes"][0] and "945" in view["notes"][0]
    labels = [c["label"] for part in view["parts"] for c in part["columns"]]
    assert "recall gap change (absolute)" in labels and "relative change of the gap" in labels


def test_strings_from_data_are_escaped(written):
    _, paths = written
    text = paths["html"].read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<img src=x" not in text
    assert "&lt;script&gt;document.body.setAttribute(&#39;data-pwned&#39;,&#39;1&#39;)&lt;/script&gt;" in text
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;dataset" in text
    assert "&lt;script&gt;alert(&#39;model&#39;)&lt;/script&gt;" in text
    assert "&lt;script&gt;alert(&#39;skip&#39;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt; note from data" in text
    assert "/data/&lt;b&gt;x&lt;/b&gt;" in text
    assert "&lt;script&gt;alert(&#39;metadata&#39;)&lt;/script&gt;" in text
    assert "&lt;i&gt;dark&lt;/i&gt; $_{x}$" in text and "<i>dark" not in text


def _poppler(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} (poppler-utils) is not installed; apt-get install poppler-utils")
    return path


def test_pdf_pages_are_not_blank_and_show_the_numbers(written, tmp_path):
    from PIL import Image

    result, paths = written
    subprocess.run([_poppler("pdftoppm"), "-r", "30", "-png", str(paths["pdf"]), str(tmp_path / "page")],
                   check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 5
    for page in pages:
        grey = np.asarray(Image.open(page).convert("L"))
        assert (grey < 200).mean() > 0.003, f"{page.name} looks blank"
    text = subprocess.run([_poppler("pdftotext"), "-layout", str(paths["pdf"]), "-"], check=True, timeout=60,
                          capture_output=True, text=True).stdout
    o = result.sections["overall"]
    for key in ("auc", "recall", "precision", "f1", "specificity"):
        assert report.fmt_num(o[key]) in text, key
    assert "Overall performance (layout of the paper's Table 3)" in text
    assert "<script>document.title='pwned'</script>dataset" in text  # shown as text in the PDF
    assert "page 1 of" in text


def test_html_opens_in_headless_chromium(written, tmp_path):
    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (Debian package 'chromium')")
    _, paths = written
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}"]
    url = paths["html"].resolve().as_uri()
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1200,2000", url], check=True, timeout=90,
                   capture_output=True)
    grey = np.asarray(Image.open(shot).convert("L"))
    assert grey.shape == (2000, 1200)
    assert (grey < 200).mean() > 0.01 and grey.std() > 10, "the screenshot looks blank"
    dom = subprocess.run([*base, "--dump-dom", url], check=True, timeout=90, capture_output=True, text=True).stdout
    assert "Skin-lesion classifier audit" in dom
    assert 'data-pwned="1"' not in dom and "<title>pwned" not in dom  # the injected scripts never ran


def test_report_of_a_real_audit_of_phantoms(tmp_path, phantom_dataset):
    """The whole pipeline (run_audit on 40 phantoms, a callable model) into the report."""
    from skinaudit.audit import run_audit

    fast = {"n_boot": 200, "sensitivity_sample": 0, "n_jobs": 1}  # options of the full pipeline, when present
    names = {f.name for f in dataclasses.fields(AuditConfig)}
    config = AuditConfig(threshold=0.45, **{k: v for k, v in fast.items() if k in names})
    result = run_audit(lambda batch: np.array([1.0 - im.mean() / 255.0 for im in batch]), phantom_dataset, config)
    paths = report.write_report(result, tmp_path / "out", pdf=False, generated_at=DATE)
    text = paths["html"].read_text(encoding="utf-8")
    assert paths["pdf"] is None and not (tmp_path / "out" / "report.pdf").exists()
    assert report.fmt_num(result.overall["recall"]) in text and report.fmt_num(result.overall["auc"]) in text
    assert "uses the decision threshold <strong>0.45</strong>" in text
    for sid in result.sections:  # every section the pipeline produced is in the report
        assert f'id="{sid}"' in text or report_tables.pretty(sid) in text


def test_missing_weasyprint_names_the_extra(tmp_path, monkeypatch, no_figures):
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    result = make_result(evil=False, sections=False)
    with pytest.raises(MissingDependencyError, match=r"pip install 'skinaudit\[pdf\]'"):
        report.write_pdf(result, tmp_path / "r.pdf")
    with pytest.raises(MissingDependencyError, match="weasyprint"):
        report.write_report(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    html = report.write_html(result, tmp_path / "only.html", generated_at=DATE)
    assert html.exists() and not (tmp_path / "figures").exists()
    assert "figures/" not in html.read_text(encoding="utf-8")  # no caption names a file that is not there


def test_long_image_lists_are_cut_and_counted(tmp_path, no_figures, monkeypatch):
    monkeypatch.setattr(report_context, "MAX_LISTED", 5)
    result = make_result(evil=False)
    result.skipped = pd.DataFrame({"image_id": [f"bad_{i}" for i in range(12)], "reason": "unreadable"})
    ctx = report.build_context(result, figures_dir=tmp_path)
    assert len(ctx["skipped"]["rows"]) == 5 and ctx["skipped"]["more"] == 7
    assert "the first 5 of 12; all are in skipped.csv" in ctx["skipped"]["caption"]
    flagged = sum(1 for f in result.predictions["flags"] if f)
    assert ctx["flagged"]["n_images"] == flagged  # counted by flag, never cut
    result.skipped = pd.DataFrame({"image_id": [f"bad_{i}" for i in range(30)],
                                   "reason": ["unreadable"] * 20 + ["too small"] * 10})
    ctx = report.build_context(result, figures_dir=tmp_path)
    assert [[c["v"] for c in r] for r in ctx["skipped"]["rows"]] == [["unreadable", 20], ["too small", 10]]
    assert "every row is in skipped.csv" in ctx["skipped"]["caption"]


def test_build_context_validates_its_input(tmp_path):
    with pytest.raises(ConfigError, match="AuditResult"):
        report.build_context({"overall": {}}, figures_dir=tmp_path)
    result = make_result(evil=False)
    result.predictions = result.predictions.drop(columns=["score"])
    with pytest.raises(DataError, match="score"):
        report.build_context(result, figures_dir=tmp_path)
    with pytest.raises(ConfigError, match="rules"):
        report.build_context(make_result(evil=False), figures_dir=tmp_path, rules={"min_recall": 0.5})


def test_fairness_and_recalibration_sections_of_skinaudit_fairness(tmp_path, no_figures):
    from skinaudit.fairness import fairness_report, recalibrate

    result = make_result(evil=False)
    p = result.predictions
    y, s, g = p["label"].to_numpy(), p["score"].to_numpy(), p["group"].to_numpy()
    fair = fairness_report(y, s, g, threshold=0.5, n_boot=200, random_state=0).section
    cal = np.arange(y.size) % 3 == 0
    recal = recalibrate(y[cal], s[cal], g[cal], y[~cal], s[~cal], g[~cal], threshold=0.5, gamma=0.85,
                        n_boot=100, methods=("global", "per_group")).section
    result.sections.update(fairness=fair, recalibration=recal)
    ctx = report.build_context(result, figures_dir=tmp_path, generated_at=DATE)
    html = report_render._environment().get_template("report.html.j2").render(**ctx)
    # every test verdict of the section is in the tests table, and the badge counts them
    n_verdicts = sum(len(v) for v in fair["verdicts"].values())
    badge = {b["check"]: b for b in ctx["badges"]}["Fairness, statistical tests"]
    assert badge["value"].endswith(f"{n_verdicts} verdicts")
    tests_table = [t for t in ctx["sections"]["fairness"]["parts"] if t["source"].endswith(".tests")][0]
    assert [r[0]["v"] for r in tests_table["rows"]] == [t["metric"] for t in fair["tests"]]
    assert ctx["sections"]["fairness"]["parts"][0]["source"].endswith("tables.table8")
    # before -> after comes from the section's own numbers
    m = recal["methods"]["global"]
    assert f"{m['fn_before']}\u00a0\u2192\u00a0{m['fn_after']}" in html
    assert report_context._threshold_marks(result) == {"global": m["thresholds"]["all"]}


def test_source_date_epoch_makes_the_report_byte_identical(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767323045")  # 2026-01-02T03:04:05Z
    assert report.report_date() == DATE
    a = report.write_report(make_result(), tmp_path / "a")
    b = report.write_report(make_result(), tmp_path / "b")
    assert DATE in a["html"].read_text()
    assert a["html"].read_bytes() == b["html"].read_bytes()
    assert a["pdf"].read_bytes() == b["pdf"].read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        report.report_date()


def test_report_states_intended_use_and_limits(written):
    _, paths = written
    html = paths["html"].read_text()
    for text in ("Intended use and limits", "Not a diagnostic device", "not a Fitzpatrick type",
                 "Automatic masks and flags are approximations", "Small groups", "One threshold"):
        assert text in html, text
    assert html.index("<section id=\"use\">") < html.index("<section id=\"dataset\">")  # stated up front


def _boxes(box):
    yield box
    for child in getattr(box, "children", None) or []:
        yield from _boxes(child)


def pdf_overflow(html: str) -> list:
    """Tables and images whose printed box crosses the page's right margin: ``(page, box, points)``
    (WeasyPrint's layout of the report's PDF; content beyond the margin is cut off in the PDF)."""
    weasyprint = pytest.importorskip("weasyprint")
    found = []
    for number, page in enumerate(weasyprint.HTML(string=html).render().pages, start=1):
        root = getattr(page, "_page_box", None)
        if root is None or not root.children:
            pytest.skip("this WeasyPrint version does not expose its page boxes")
        area = root.children[0]
        right = area.content_box_x() + area.width
        for box in _boxes(area):
            if type(box).__name__ in ("TableBox", "TableCellBox", "BlockReplacedBox", "InlineReplacedBox"):
                edge = box.position_x + box.margin_width()
                if edge > right + 0.5:
                    found.append((number, type(box).__name__, round(edge - right, 1)))
    return found


def test_no_table_or_figure_crosses_the_pdf_margin(written):
    _, paths = written
    assert pdf_overflow(paths["html"].read_text(encoding="utf-8")) == []
