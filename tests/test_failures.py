"""False-negative taxonomy: features with known answers, rules as data, phantoms, Table 6."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from skimage import color, draw

from skinaudit.errors import ConfigError, DataError
from skinaudit.failures import (DARK_ITA, FAILURE_MODES, MODE_DESCRIPTIONS, MODES, FailureMode, FailureRules,
                                cam_features, case_features, classify_failures, failure_features, failure_summary,
                                failure_table, lesion_features)
from skinaudit.phantoms import PhantomSpec, make_phantom


def lab_image(lab_fn, size=128):
    """An sRGB uint8 image from a function (yy, xx) -> (H, W, 3) CIELAB."""
    yy, xx = np.mgrid[0:size, 0:size]
    rgb = color.lab2rgb(lab_fn(yy, xx))
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def disc(size=128, r=30, centre=(64, 64)):
    m = np.zeros((size, size), bool)
    rr, cc = draw.disk(centre, r, shape=m.shape)
    m[rr, cc] = True
    return m


def blob(shape, centre, sigma):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * sigma ** 2))


def on(mask, sigma=2.0):
    """A map sitting on the given pixels (blurred, scaled to [0, 1])."""
    c = ndimage.gaussian_filter(mask.astype(float), sigma)
    return c / c.max()


def far_skin_point(*masks):
    busy = np.zeros_like(masks[0], dtype=bool)
    for m in masks:
        busy |= m
    d = ndimage.distance_transform_edt(~busy)
    return np.unravel_index(int(np.argmax(d)), d.shape)


# ---------------------------------------------------------------------- lesion features

def test_colour_features_known_answers():
    m = disc()
    skin, lesion = np.array([65.0, 12.0, 16.0]), np.array([40.0, 15.0, 20.0])
    img = lab_image(lambda yy, xx: np.where(m[..., None], lesion, skin))
    lab_true = color.rgb2lab(img)
    f = lesion_features(img, m)
    want76 = np.linalg.norm(lab_true[64, 64] - lab_true[0, 0])
    assert f["delta_e76"] == pytest.approx(want76, abs=1e-6)
    assert f["delta_e"] == pytest.approx(float(color.deltaE_ciede2000(lab_true[64, 64], lab_true[0, 0])), abs=1e-6)
    assert f["lesion_L"] == pytest.approx(lab_true[64, 64, 0]) and f["skin_L"] == pytest.approx(lab_true[0, 0, 0])
    assert f["colour_variegation"] < 0.5
    assert f["lesion_area_frac"] == pytest.approx(m.mean())


def test_variegation_measures_a_spread_of_colours():
    m = disc()
    two = lab_image(lambda yy, xx: np.where(m[..., None], np.where((xx < 64)[..., None], [30.0, 15, 20], [60.0, 15, 20]),
                                            [70.0, 12, 16]))
    f = lesion_features(two, m)
    assert 12 < f["colour_variegation"] < 16            # half the pixels 30 L* from the median, minus the blurred seam


def test_artifact_pixels_are_left_out_of_the_colour_statistics():
    m = disc()
    img = lab_image(lambda yy, xx: np.where(m[..., None], [40.0, 15, 20], [65.0, 12, 16]))
    ink = np.zeros_like(m)
    ink[30:82, 30:100] = True                          # most of the lesion: its median colour changes
    painted = img.copy()
    painted[ink] = (98, 48, 160)
    clean = lesion_features(img, m)
    assert lesion_features(painted, m, artifact_masks={"ink": ink})["delta_e"] == pytest.approx(clean["delta_e"], abs=1e-6)
    assert lesion_features(painted, m)["delta_e"] != pytest.approx(clean["delta_e"], abs=0.5)


def test_shape_features_known_answers():
    img = np.full((128, 128, 3), 200, np.uint8)
    round_ = lesion_features(img, disc())
    assert round_["asymmetry"] < 0.02 and 0.95 < round_["border_irregularity"] < 1.1
    half = disc()
    half[:, 64:] = False                               # a half disc: symmetric about one axis only
    assert lesion_features(img, half)["asymmetry"] > 0.05
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    r = 35 * (1 + 0.3 * np.cos(7 * theta))
    star = np.zeros((128, 128), bool)
    rr, cc = draw.polygon(64 + r * np.sin(theta), 64 + r * np.cos(theta), shape=star.shape)
    star[rr, cc] = True
    assert lesion_features(img, star)["border_irregularity"] > 1.5


def test_phantom_irregularity_raises_border_and_asymmetry_cues():
    calm = make_phantom(PhantomSpec(irregularity=0.0, asymmetry=0.0, variegation=0.0, seed=5))
    wild = make_phantom(PhantomSpec(irregularity=1.0, asymmetry=1.0, variegation=1.0, seed=5))
    a, b = lesion_features(calm.image, calm.mask), lesion_features(wild.image, wild.mask)
    assert b["border_irregularity"] > a["border_irregularity"] + 0.2
    assert b["asymmetry"] > a["asymmetry"]
    assert b["colour_variegation"] > a["colour_variegation"] + 4


def test_degenerate_masks_give_nan_with_a_reason():
    img = np.full((64, 64, 3), 120, np.uint8)
    tiny = np.zeros((64, 64), bool)
    tiny[3:5, 3:5] = True
    f = lesion_features(img, tiny)
    assert math.isnan(f["delta_e"]) and "fewer than 30" in f["lesion_reason"]
    full = lesion_features(img, np.ones((64, 64), bool))
    assert math.isnan(full["delta_e"]) and "whole image" in full["lesion_reason"]
    with pytest.raises(DataError, match="differs"):
        lesion_features(img, tiny[:10])


def test_ring_parameters_reach_the_computation():
    m = disc(r=20)
    # skin darkens with distance from the lesion: a wider ring sees darker skin
    img = lab_image(lambda yy, xx: np.where(m[..., None], [40.0, 15, 20],
                                            np.stack([75 - 0.4 * np.hypot(yy - 64, xx - 64), 12 + 0 * yy, 16 + 0 * yy], -1)))
    near = lesion_features(img, m, ring_gap=0.0, ring_width=0.1)["skin_L"]
    far = lesion_features(img, m, ring_gap=0.5, ring_width=0.3)["skin_L"]
    assert near > far + 5


# ---------------------------------------------------------------------- map features

def test_cam_features_known_answers():
    m = disc()
    line = np.zeros_like(m)
    line[5, :] = True
    flat = np.ones(m.shape)
    f = cam_features(flat, m, artifact_masks={"ruler": line}, artifact_margin=0.0)
    assert f["relevance_mass"] == pytest.approx(m.mean())
    assert f["artifact_mass"] == pytest.approx(line.mean()) and f["artifact_lift"] == pytest.approx(1.0)
    band = np.zeros(m.shape)
    band[2:9, :] = 1.0                                  # attention on a band around the line
    thin = cam_features(band, m, artifact_masks={"ruler": line}, artifact_margin=0.0)
    wide = cam_features(band, m, artifact_masks={"ruler": line}, artifact_margin=0.03)
    assert thin["artifact_mass"] == pytest.approx(1 / 7) and wide["artifact_mass"] == pytest.approx(1.0)
    assert wide["top_artifact"] == "ruler" and wide["artifact_mass_ruler"] == pytest.approx(1.0)
    none = cam_features(band, m)
    assert math.isnan(none["artifact_mass"]) and none["cam_reason"] == "no artifact masks given"
    with pytest.raises(ConfigError, match="artifact_margin"):
        cam_features(band, m, artifact_margin=0.7)


# ---------------------------------------------------------------------- phantoms -> modes

@pytest.fixture(scope="module")
def ruler_phantom():
    return make_phantom(PhantomSpec(ruler=True, skin_L=62, lesion_dL=-28, irregularity=0.1, seed=3))


def classify_one(ph, cam, ita=45.0, rules=None):
    feats = failure_features(["case"], [ph.image], [ph.mask], cams=[cam], artifact_masks=[ph.artifact_masks], ita=[ita])
    return classify_failures(feats, rules=rules).iloc[0]


def test_cam_on_the_ruler_is_artifact_distraction(ruler_phantom):
    ph = ruler_phantom
    row = classify_one(ph, on(ph.artifact_masks["ruler"]))
    assert row["mode"] == "artifact_distraction" and row["criterion_met"]
    assert row["top_artifact"] == "ruler" and row["artifact_mass"] > 0.8 and "ruler" in row["evidence"]


def test_cam_on_empty_skin_is_poor_localisation(ruler_phantom):
    ph = ruler_phantom
    cam = blob(ph.mask.shape, far_skin_point(ph.mask, ph.artifact_masks["ruler"]), 8)
    row = classify_one(ph, cam)
    assert row["mode"] == "poor_localisation" and row["pointing_game"] == 0.0
    assert row["checks"].startswith("artifact_distraction: no")


def test_cam_on_the_lesion_of_a_plain_lesion_is_atypical_presentation(ruler_phantom):
    ph = ruler_phantom
    row = classify_one(ph, on(ph.mask, sigma=4))
    assert row["mode"] == "atypical_presentation" and row["criterion_met"] and row["n_cues"] < 2


def test_faint_lesion_is_low_contrast_and_dark_skin_widens_the_tolerance():
    faint = make_phantom(PhantomSpec(skin_L=45, skin_b=18, lesion_dL=-4, lesion_a=12, lesion_b=18, seed=4))
    row = classify_one(faint, on(faint.mask, sigma=4), ita=float(faint.truth["ita_true"]))
    assert row["mode"] == "low_contrast" and row["delta_e"] < 8
    rules = FailureRules(delta_e_max=2.0, delta_e_max_dark=30.0)
    assert classify_one(faint, on(faint.mask, sigma=4), ita=10.0, rules=rules)["mode"] == "low_contrast"
    assert classify_one(faint, on(faint.mask, sigma=4), ita=50.0, rules=rules)["mode"] != "low_contrast"


def test_a_case_no_rule_explains_falls_back_with_a_flag():
    wild = make_phantom(PhantomSpec(irregularity=1.0, variegation=1.0, lesion_dL=-30, seed=10))
    row = classify_one(wild, on(wild.mask, sigma=4))
    assert row["n_cues"] >= 2
    assert row["mode"] == "atypical_presentation" and not row["criterion_met"]
    assert "elimination" in row["evidence"]
    assert classify_one(wild, on(wild.mask, sigma=4), rules=FailureRules(fallback="poor_localisation"))["mode"] == \
        "poor_localisation"


def test_hand_weighted_ruler_detector_end_to_end(ruler_phantom):
    """A real CAM, not a drawn one: a conv unit that fires on near-black pixels (the ruler)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("pytorch_grad_cam")
    from skinaudit.explain import compute_cams
    from skinaudit.models import Preprocess, TorchModel

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(1, 1))
    with torch.no_grad():
        net[0].weight.fill_(-1 / 3)
        net[0].bias.fill_(0.12)                         # > 0 only where mean RGB < 0.12 (ruler: 0.08)
        net[4].weight.fill_(-10.0)                      # ... which lowers the malignant score: a missed case
        net[4].bias.fill_(-1.0)
    ph = ruler_phantom
    model = TorchModel(net, preprocess=Preprocess(size=ph.image.shape[0], mean=(0, 0, 0), std=(1, 1, 1)))
    assert model.predict_proba([ph.image])[0] < 0.5
    cam = compute_cams(model, [ph.image], target_layer="1", target="benign")[0]
    row = classify_one(ph, cam)
    assert row["mode"] == "artifact_distraction" and row["top_artifact"] == "ruler"


# ---------------------------------------------------------------------- rules as data

BASE = {"image_id": "x", "artifact_mass": 0.05, "artifact_lift": 0.8, "top_artifact": "", "relevance_mass": 0.7,
        "pointing_game": 1.0, "iou_top": 0.5, "delta_e": 20.0, "ita": 45.0, "asymmetry": 0.05,
        "border_irregularity": 1.1, "colour_variegation": 3.0}


@pytest.mark.parametrize("change, mode, met", [
    ({}, "atypical_presentation", True),
    ({"artifact_mass": 0.4, "artifact_lift": 3.0, "top_artifact": "hair"}, "artifact_distraction", True),
    ({"artifact_mass": 0.4, "artifact_lift": 1.2}, "atypical_presentation", True),          # lift too small
    ({"delta_e": 5.0}, "low_contrast", True),
    ({"delta_e": 10.0, "ita": 20.0}, "atypical_presentation", True),                        # same tolerance by default
    ({"delta_e": 7.0, "ita": 20.0}, "low_contrast", True),
    ({"relevance_mass": 0.2}, "poor_localisation", True),
    ({"pointing_game": 0.0}, "poor_localisation", True),
    ({"asymmetry": 0.3, "border_irregularity": 1.6}, "atypical_presentation", False),        # 2 cues: fallback
    ({"relevance_mass": 0.2, "delta_e": 5.0}, "low_contrast", True),                         # precedence
    ({"relevance_mass": 0.2, "artifact_mass": 0.5, "artifact_lift": 4.0}, "artifact_distraction", True),
    ({"artifact_mass": np.nan, "artifact_lift": np.nan, "relevance_mass": np.nan, "pointing_game": np.nan},
     "atypical_presentation", True),                                                         # no CAM: n/a rules
])
def test_rule_table(change, mode, met):
    row = classify_failures(pd.DataFrame([{**BASE, **change}])).iloc[0]
    assert (row["mode"], bool(row["criterion_met"])) == (mode, met)
    assert len(row["checks"].split("; ")) == 4


@pytest.mark.parametrize("ita, mode", [(20.0, "low_contrast"), (28.0, "low_contrast"), (28.1, "atypical_presentation"),
                                       (np.nan, "atypical_presentation")])
def test_dark_skin_contrast_tolerance(ita, mode):
    rules = FailureRules(delta_e_max=8.0, delta_e_max_dark=12.0, dark_ita=28.0)
    row = classify_failures(pd.DataFrame([{**BASE, "delta_e": 10.0, "ita": ita}]), rules=rules).iloc[0]
    assert row["mode"] == mode


def test_false_positives_read_the_cue_rule_the_other_way():
    plain = pd.DataFrame([BASE])                                   # 0 cues, map on the lesion
    cued = pd.DataFrame([{**BASE, "asymmetry": 0.3, "border_irregularity": 1.6}])
    assert classify_failures(plain, case="FN").iloc[0]["criterion_met"]
    fp_plain = classify_failures(plain, case="FP").iloc[0]
    assert fp_plain["mode"] == "atypical_presentation" and not fp_plain["criterion_met"]
    fp_cued = classify_failures(cued, case="FP").iloc[0]
    assert fp_cued["mode"] == "atypical_presentation" and fp_cued["criterion_met"] and "2 of 3 cues" in fp_cued["evidence"]
    assert classify_failures(pd.DataFrame([{**BASE, "delta_e": 3.0}]), case="FP").iloc[0]["mode"] == "low_contrast"
    with pytest.raises(ConfigError, match="'case' parameter"):
        classify_failures(plain, case="TP")
    fp_table = failure_table(classify_failures(cued, case="FP"), case="FP").set_index("key")
    assert "benign lesion showing" in fp_table.loc["atypical_presentation", "description"]
    assert "lacks" in failure_table(classify_failures(plain)).set_index("key").loc["atypical_presentation", "description"]


def test_every_rule_parameter_reaches_the_decision():
    base = pd.DataFrame([BASE])
    flips = {
        "artifact_mass_min": ({"artifact_mass_min": 0.01, "artifact_lift_min": 0.5}, "artifact_distraction"),
        "delta_e_max": ({"delta_e_max": 25.0}, "low_contrast"),
        "delta_e_max_dark": ({"delta_e_max_dark": 25.0, "dark_ita": 50.0}, "low_contrast"),
        "relevance_mass_min": ({"relevance_mass_min": 0.8}, "poor_localisation"),
        "cues": ({"asymmetry_min": 0.01, "border_min": 1.0, "min_cues": 2}, "atypical_presentation"),
    }
    for name, (kw, mode) in flips.items():
        row = classify_failures(base, rules=FailureRules(**kw)).iloc[0]
        assert row["mode"] == mode, name
    assert not classify_failures(base, rules=FailureRules(asymmetry_min=0.01, border_min=1.0)).iloc[0]["criterion_met"]
    missed = pd.DataFrame([{**BASE, "pointing_game": 0.0}])
    assert classify_failures(missed, rules=FailureRules(pointing_game_required=False)).iloc[0]["mode"] != "poor_localisation"
    both = pd.DataFrame([{**BASE, "relevance_mass": 0.1, "delta_e": 3.0}])
    order = ("poor_localisation", "low_contrast", "artifact_distraction", "atypical_presentation")
    assert classify_failures(both, rules=FailureRules(order=order)).iloc[0]["mode"] == "poor_localisation"


@pytest.mark.parametrize("kw, match", [
    ({"artifact_mass_min": 1.5}, "share of the map's mass"),
    ({"delta_e_max": float("nan")}, "finite number"),
    ({"min_cues": 4}, "min_cues"),
    ({"order": ("low_contrast",)}, "'order' must list"),
    ({"fallback": "unexplained"}, "'fallback'"),
])
def test_bad_rules_fail_with_a_sentence(kw, match):
    with pytest.raises(ConfigError, match=match):
        FailureRules(**kw)


def test_registry_has_one_record_per_mode():
    assert all(isinstance(m, FailureMode) for m in FAILURE_MODES)
    names = [m.name for m in FAILURE_MODES]
    assert names == list(MODES) and len(set(names)) == len(names) == 4
    assert len({m.label for m in FAILURE_MODES}) == 4 and all(callable(m.check) for m in FAILURE_MODES)
    assert MODE_DESCRIPTIONS == {m.name: m.description for m in FAILURE_MODES}
    assert FailureRules().order == MODES                      # default precedence = registry order
    # the false-positive reading differs for the cue rule only
    assert [m.name for m in FAILURE_MODES if m.describe("FP") != m.describe("FN")] == ["atypical_presentation"]
    t = failure_table(pd.DataFrame({"mode": pd.Series([], dtype=str)}))
    assert sorted(t["key"]) == sorted(MODES) and set(t["mode"]) == {m.label for m in FAILURE_MODES}
    # every record's criterion is what classify_failures reports, in the rules' order
    row = classify_failures(pd.DataFrame([BASE])).iloc[0]
    assert [c.split(":")[0] for c in row["checks"].split("; ")] == list(MODES)
    for m in FAILURE_MODES:
        fired, text = m.check(BASE, FailureRules(), "FN")
        assert f"{m.name}: {'yes' if fired else 'no'} ({text})" in row["checks"]


def test_rule_order_and_fallback_are_validated_against_the_registry():
    shuffled = tuple(reversed(MODES))
    assert FailureRules(order=shuffled).order == shuffled
    row = classify_failures(pd.DataFrame([BASE]), rules=FailureRules(order=shuffled)).iloc[0]
    assert [c.split(":")[0] for c in row["checks"].split("; ")] == list(shuffled)
    for order in ((*MODES[:3], MODES[0]), (*MODES, "bad_luck"), MODES[1:]):
        with pytest.raises(ConfigError, match="'order' must list each of artifact_distraction"):
            FailureRules(order=order)
    for mode in MODES:
        assert FailureRules(fallback=mode).fallback == mode
    with pytest.raises(ConfigError, match="'fallback' must be one of"):
        FailureRules(fallback="bad_luck")


def test_dark_ita_comes_from_the_callers_scheme():
    from skinaudit.skintone import get_scheme

    assert DARK_ITA == FailureRules().dark_ita == get_scheme("binary").cuts[0]   # the binary scheme's cut
    rules = FailureRules(delta_e_max=8.0, delta_e_max_dark=12.0)
    case = pd.DataFrame([{**BASE, "delta_e": 10.0, "ita": 35.0}])
    assert classify_failures(case, rules=rules).iloc[0]["mode"] != "low_contrast"   # 35 > 28: light
    row = classify_failures(case, rules=rules, dark_ita=41.0).iloc[0]               # e.g. a scheme cut at 41
    assert row["mode"] == "low_contrast" and "ITA 35 <= 41" in row["evidence"]
    pd.testing.assert_frame_equal(classify_failures(case, rules=rules, dark_ita=41.0),
                                  classify_failures(case, rules=FailureRules(delta_e_max=8.0, delta_e_max_dark=12.0,
                                                                             dark_ita=41.0)))
    pd.testing.assert_frame_equal(classify_failures(case, rules=rules, dark_ita=None), classify_failures(case, rules=rules))
    with pytest.raises(ConfigError, match="'dark_ita' must be a finite number"):
        classify_failures(case, dark_ita=float("nan"))


def test_rules_table_documents_every_rule():
    t = FailureRules().table()
    assert list(t["name"]) == [f for f in FailureRules.__dataclass_fields__]
    assert t["meaning"].str.len().min() > 10


# ---------------------------------------------------------------------- Table 6

def test_failure_table_reproduces_table_6_layout():
    modes = pd.DataFrame({"mode": ["artifact_distraction"] * 11 + ["atypical_presentation"] * 10
                          + ["poor_localisation"] * 8 + ["low_contrast"] * 6,
                          "criterion_met": [True] * 33 + [False] * 2})
    t = failure_table(modes)
    assert list(t.columns[:4]) == ["mode", "key", "count", "percent"]
    assert list(t["mode"]) == ["artifact distraction", "atypical presentation", "poor lesion localisation", "low contrast"]
    assert list(t["count"]) == [11, 10, 8, 6]
    assert [round(p, 1) for p in t["percent"]] == [31.4, 28.6, 22.9, 17.1]
    assert t["by_elimination"].sum() == 2 and t["description"].str.len().min() > 20
    summary = failure_summary(modes)
    assert json.loads(json.dumps(summary)) == summary and summary["n"] == 35
    assert summary["low_contrast"] == {"count": 6, "share": pytest.approx(6 / 35)}
    empty = failure_table(pd.DataFrame({"mode": pd.Series([], dtype=str)}))
    assert (empty["count"] == 0).all() and empty["percent"].isna().all()
    assert failure_summary(pd.DataFrame({"mode": pd.Series([], dtype=str)}))["artifact_distraction"]["share"] is None
    with pytest.raises(DataError, match="unknown failure mode"):
        failure_table(pd.DataFrame({"mode": ["bad luck"]}))


def test_features_without_maps_still_classify(ruler_phantom):
    ph = ruler_phantom
    feats = failure_features(["a", "b"], [ph.image, ph.image], [ph.mask, ph.mask])
    assert list(feats["image_id"]) == ["a", "b"] and (feats["cam_reason"] == "no CAM").all()
    out = classify_failures(feats)
    assert set(out["mode"]) <= set(MODES) and out["checks"].str.contains("artifact_distraction: n/a").all()
    with pytest.raises(DataError, match="1 lesion_masks for 2 image ids"):
        failure_features(["a", "b"], [ph.image, ph.image], [ph.mask])


def test_case_features_carries_ita_and_parameters(ruler_phantom):
    ph = ruler_phantom
    cam = on(ph.artifact_masks["ruler"])
    a = case_features(ph.image, ph.mask, cam=cam, artifact_masks=ph.artifact_masks, ita=12.5, artifact_margin=0.0)
    b = case_features(ph.image, ph.mask, cam=cam, artifact_masks=ph.artifact_masks, ita=12.5, artifact_margin=0.05)
    assert a["ita"] == 12.5 and b["artifact_mass"] > a["artifact_mass"]
    near = on(ph.mask, sigma=8)
    c = case_features(ph.image, ph.mask, cam=near, keep_top=0.05)
    d = case_features(ph.image, ph.mask, cam=near, keep_top=0.5)
    assert c["iou_top"] != d["iou_top"]


def test_numeric_core_does_not_import_torch():
    code = "import sys, skinaudit.failures; assert 'torch' not in sys.modules and 'jinja2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- real images

@pytest.mark.realdata
def test_real_images_with_human_masks(shared_data):
    from skinaudit.imageio import read_image, read_mask

    root = shared_data("ph2")
    ids = ["IMD003", "IMD009"]
    imgs = [read_image(root / "images" / f"{i}.jpg") for i in ids]
    masks = [read_mask(root / "masks" / f"{i}_lesion.png") for i in ids]
    off = [blob(m.shape, far_skin_point(m), 20) for m in masks]
    feats = failure_features(ids, imgs, masks, cams=off, artifact_masks=[{}, {}], ita=[40.0, 20.0])
    assert feats[["delta_e", "asymmetry", "border_irregularity", "colour_variegation"]].notna().all().all()
    assert (feats["delta_e"] > 8).all()                # clearly visible nevi
    out = classify_failures(feats)
    assert list(out["mode"]) == ["poor_localisation"] * 2
    assert (out["pointing_game"] == 0).all()
