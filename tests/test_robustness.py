"""measurement_robustness: a gap that depends on who is in which group must say so."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from skinaudit.robustness import measurement_robustness


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 800
    g = np.where(rng.random(n) < 0.4, "dark", "light")
    y = (rng.random(n) < 0.4).astype(int)
    # malignant dark cases score lower: recall about 0.55 vs 0.9 at 0.5
    s = np.where(y == 1, np.where(g == "dark", rng.uniform(0.2, 0.8, n), rng.uniform(0.45, 1.0, n)),
                 rng.uniform(0.0, 0.6, n))
    return y, s, g


def _probs(g, certainty):
    p_dark = np.where(g == "dark", certainty, 1 - certainty)
    return pd.DataFrame({"light": 1 - p_dark, "dark": p_dark})


def test_a_clear_gap_with_certain_groups_holds(data):
    y, s, g = data
    out = measurement_robustness(y, s, g, _probs(g, 1.0), reference="light", threshold=0.5, alpha=0.05,
                                 observed={"recall": {"dark": True}}, primary=("recall",), n_draws=50)
    c = out["contrasts"]["recall"]["dark"]
    assert c["gap"] < -0.2 and c["same_sign"] == 1.0 and c["same_significance"] == 1.0 and c["holds"]
    assert "lower than 'light'" in out["summary"][0] and "holds" in out["summary"][0]


def test_groups_as_good_as_a_coin_flip_do_not_hold(data):
    y, s, g = data
    out = measurement_robustness(y, s, g, _probs(g, 0.5), reference="light", threshold=0.5, alpha=0.05,
                                 observed={"recall": {"dark": True}}, primary=("recall", "auc"), n_draws=60,
                                 random_state=3)
    for met in ("recall", "auc"):
        c = out["contrasts"][met]["dark"]
        assert c["same_significance"] < 0.5 and not c["holds"], (met, c)
    assert "does NOT hold" in out["summary"][0]
    assert out["alpha_per_contrast"] == pytest.approx(0.025)  # two primary contrasts


def test_a_variant_that_reverses_the_gap_breaks_it(data):
    y, s, g = data
    swapped = np.where(g == "dark", "light", "dark")
    out = measurement_robustness(y, s, g, None, reference="light", threshold=0.5, alpha=0.05,
                                 observed={"recall": {"dark": True}}, primary=("recall",),
                                 variants={"same": (y, s, g), "reversed": (y, s, swapped)})
    c = out["contrasts"]["recall"]["dark"]
    assert out["n_draws"] == 0 and c["same_sign"] is None
    assert c["variants"]["same"]["same_sign"] and not c["variants"]["reversed"]["same_sign"] and not c["holds"]
    assert "1 of 2 other ITA estimator variants" in out["summary"][0]


def test_the_draws_are_seeded(data):
    y, s, g = data
    kw = dict(reference="light", threshold=0.5, alpha=0.05, observed={}, primary=("recall",), n_draws=20)
    a = measurement_robustness(y, s, g, _probs(g, 0.8), random_state=5, **kw)
    b = measurement_robustness(y, s, g, _probs(g, 0.8), random_state=5, **kw)
    assert a == b


def test_the_unknown_group_is_shown_never_compared_and_summarised(data):
    from skinaudit.config import AuditConfig
    from skinaudit.report.context import _summary_points
    from skinaudit.result import AuditResult
    from skinaudit.stages.fairness import fairness_stage

    y, s, g = data
    g = np.where(np.arange(len(g)) % 10 == 0, "unknown", g)
    pred = pd.DataFrame({"image_id": [f"i{k}" for k in range(len(g))], "label": y, "score": s, "group": g,
                         "unknown_reason": np.where(g == "unknown", "b_nonpositive(b*=-1.0)", ""),
                         "p_light": (g == "light").astype(float), "p_dark": (g == "dark").astype(float)})
    config = AuditConfig(n_boot=200, threshold=0.5)
    sec = fairness_stage(pred, config).sections["fairness"]
    assert sec["groups"]["unknown"]["compared"] is False and sec["groups"]["unknown"]["n"] == int((g == "unknown").sum())
    assert sec["groups"]["all"]["n"] == len(g) and sec["reference"] != "unknown"
    assert all("unknown" not in v for v in sec["verdicts"].values())
    assert {t["group"] for t in sec["tests"]} == {"dark"}
    t8 = sec["tables"]["table8"][0]
    assert "unknown" in t8 and t8["gap"] == pytest.approx(abs(t8["dark"] - t8["light"]))
    assert sec["unknown_images"]["reasons"] == {"b_nonpositive": int((g == "unknown").sum())}
    assert sec["measurement_robust"]["n_draws"] == 200
    result = AuditResult(config=config, dataset={}, model={}, predictions=pred, sections={"fairness": sec})
    points = _summary_points(result)
    assert points[0].startswith("Excluded from the comparison: 80 of 800") and "b_nonpositive: 80" in points[0]
    assert any(p.startswith("Measurement robustness: recall of 'dark'") for p in points)
