"""Sharpening, overlays, triptychs and localisation scores: numeric, known answers, no torch.

This module imports no torch, so these tests run on every install (the Grad-CAM++ maps
themselves are tested in test_explain.py).
"""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from skinaudit.errors import ConfigError, DataError
from skinaudit.localisation import (localisation_by_group, localisation_scores, localisation_table, overlay,
                                    save_triptych, sharpen, triptych_cases)

SQUARE = (slice(10, 26), slice(30, 46))


def square_image():
    img = np.full((64, 64, 3), 50, np.uint8)
    img[SQUARE] = 240
    mask = np.zeros((64, 64), bool)
    mask[SQUARE] = True
    return img, mask


def drawn_cam():
    """A map peaking on the square, as a Grad-CAM++ map of a square detector would."""
    yy, xx = np.mgrid[0:64, 0:64]
    return np.exp(-((yy - 17.5) ** 2 + (xx - 37.5) ** 2) / (2 * 6.0 ** 2)).astype(np.float32)


def test_numeric_module_does_not_import_torch():
    code = "import sys, skinaudit.localisation; assert 'torch' not in sys.modules and 'jinja2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- sharpen, overlay, cases

def test_sharpen_keeps_the_top_fraction():
    cam = np.arange(100, dtype=np.float32).reshape(10, 10) / 99
    assert (sharpen(cam) > 0).sum() == 25
    assert (sharpen(cam, keep_top=0.1) > 0).sum() == 10
    kept = sharpen(cam, keep_top=0.1)
    np.testing.assert_array_equal(kept[kept > 0], cam[cam >= cam.ravel()[90]])
    stacked = sharpen(np.stack([cam, cam[::-1]]), keep_top=0.5)
    assert stacked.shape == (2, 10, 10) and ((stacked > 0).sum(axis=(1, 2)) == 50).all()
    assert not sharpen(np.zeros((5, 5))).any()
    with pytest.raises(ConfigError, match="keep_top"):
        sharpen(cam, keep_top=0)
    with pytest.raises(DataError, match="finite values >= 0"):
        sharpen(-cam)


def test_overlay_is_rgb_and_respects_alpha():
    img = np.full((4, 4, 3), 100, np.uint8)
    cam = np.zeros((4, 4))
    cam[0, 0] = 1.0
    hot = overlay(img, cam, alpha=1.0, cmap="jet")
    assert hot[0, 0, 0] > 100 and hot[0, 0, 2] == 0          # jet(1) is dark red: R high, B zero (RGB, not BGR)
    assert overlay(img, cam, alpha=0.0).tolist() == img.tolist()
    half = overlay(img, cam, alpha=0.5, skip_zero=True)
    assert (half[1:, 1:] == 100).all() and half[0, 0, 2] == 50
    with pytest.raises(DataError, match="differs"):
        overlay(img, np.zeros((3, 3)))


def test_triptych_cases_are_deterministic_and_most_confident_first():
    y_true = [1, 1, 1, 0, 0, 0, 1, 0]
    scores = [0.9, 0.2, 0.1, 0.3, 0.8, 0.05, 0.7, 0.95]
    y_pred = [int(s >= 0.5) for s in scores]
    ids = [f"img{i}" for i in range(8)]
    got = triptych_cases(y_true, y_pred, scores, per_kind=2, ids=ids)
    assert got == {"TP": ["img0", "img6"], "TN": ["img5", "img3"], "FN": ["img2", "img1"], "FP": ["img7", "img4"]}
    assert triptych_cases(y_true, y_pred, scores, per_kind=1) == {"TP": [0], "TN": [5], "FN": [2], "FP": [7]}
    assert triptych_cases([0, 0], [0, 0], [0.1, 0.2], per_kind=3)["TP"] == []


def test_save_triptych_writes_a_png(tmp_path):
    from PIL import Image

    img, _ = square_image()
    cam = drawn_cam()
    path = save_triptych([("FN img p=0.27", img, cam), ("TP", img, cam)], tmp_path / "fig" / "cases.png", dpi=50)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (450, 300)


# ---------------------------------------------------------------------- localisation

def test_localisation_scores_known_answers():
    mask = np.zeros((10, 10), bool)
    mask[:5] = True                                   # top half
    cam = np.zeros((10, 10))
    cam[:5] = 1.0
    cam[5:] = 1 / 3                                   # 3/4 of the mass on the lesion
    cam[7, 7] = 2.0                                   # but the peak is off it
    got = localisation_scores(cam, mask)
    assert got["relevance_mass"] == pytest.approx(50 / (50 + 49 / 3 + 2))
    assert got["pointing_game"] == 0.0
    assert got["lesion_area_frac"] == 0.5
    keep = (cam >= np.quantile(cam, 0.75))            # 50 ones + the peak
    assert got["iou_top"] == pytest.approx((keep & mask).sum() / (keep | mask).sum())
    assert localisation_scores(cam, mask, keep_top=0.01)["iou_top"] == pytest.approx(0.0)
    empty = localisation_scores(np.zeros((10, 10)), mask)
    assert math.isnan(empty["relevance_mass"]) and "all-zero" in empty["reason"]
    assert "empty lesion mask" in localisation_scores(cam, np.zeros((10, 10)))["reason"]
    with pytest.raises(DataError, match="one shape"):
        localisation_scores(cam, mask[:5])


def test_localisation_by_group_intervals_and_parameters():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({
        "relevance_mass": rng.uniform(0, 1, 30), "iou_top": rng.uniform(0, 1, 30),
        "pointing_game": [1.0] * 8 + [0.0] * 2 + [1.0] * 10 + [0.0] * 10,
        "ita_group": ["dark"] * 10 + ["light"] * 20,
    })
    df.loc[29, ["relevance_mass", "iou_top", "pointing_game"]] = np.nan
    out = localisation_by_group(df, "ita_group", n_boot=500, random_state=1).set_index("group")
    assert list(out.index) == ["dark", "light", "all"]
    dark = out.loc["dark"]
    assert dark["pointing_game"] == 0.8
    # Wilson 95% interval of 8/10 by its formula
    z, n, p = 1.959963984540054, 10, 0.8
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert dark["pointing_game_lo"] == pytest.approx(centre - half) and dark["pointing_game_hi"] == pytest.approx(centre + half)
    assert out.loc["light", "n"] == 20 and out.loc["light", "n_valid"] == 19 and out.loc["all", "n_valid"] == 29
    assert dark["relevance_mass"] == pytest.approx(df["relevance_mass"][:10].mean())
    assert dark["relevance_mass_lo"] < dark["relevance_mass"] < dark["relevance_mass_hi"]
    same = localisation_by_group(df, "ita_group", n_boot=500, random_state=1)
    other_seed = localisation_by_group(df, "ita_group", n_boot=500, random_state=2)
    more = localisation_by_group(df, "ita_group", n_boot=4000, random_state=1)
    wider = localisation_by_group(df, df["ita_group"].to_numpy(), n_boot=500, random_state=1, alpha=0.01)
    pd.testing.assert_frame_equal(same, out.reset_index())
    assert other_seed["relevance_mass_lo"].iloc[0] != out["relevance_mass_lo"].iloc[0]
    assert more["relevance_mass_lo"].iloc[0] != out["relevance_mass_lo"].iloc[0]
    assert (wider["pointing_game_hi"] - wider["pointing_game_lo"]).iloc[0] > dark["pointing_game_hi"] - dark["pointing_game_lo"]
    assert (wider["iou_top_hi"] - wider["iou_top_lo"]).iloc[0] > dark["iou_top_hi"] - dark["iou_top_lo"]
    with pytest.raises(ConfigError, match="n_boot"):
        localisation_by_group(df, "ita_group", n_boot=10)
    # gaps to the reference (default: the group with most valid rows, here "light": 10/19 hits)
    assert (out["reference"] == "light").all()
    assert math.isnan(out.loc["light", "pointing_game_diff"]) and math.isnan(out.loc["all", "pointing_game_diff"])
    assert dark["pointing_game_diff"] == pytest.approx(0.8 - 10 / 19)
    # Newcombe hybrid score interval from the two Wilson intervals (Newcombe 1998, method 10)
    def wilson(k, n):
        p = k / n
        c, h = (p + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return p, c - h, c + h
    (p1, l1, u1), (p2, l2, u2) = wilson(8, 10), wilson(10, 19)
    d = p1 - p2
    assert dark["pointing_game_diff_lo"] == pytest.approx(d - math.hypot(p1 - l1, u2 - p2))
    assert dark["pointing_game_diff_hi"] == pytest.approx(d + math.hypot(u1 - p1, p2 - l2))
    assert dark["relevance_mass_diff_lo"] < dark["relevance_mass_diff"] < dark["relevance_mass_diff_hi"]
    flipped = localisation_by_group(df, "ita_group", reference="dark", n_boot=500, random_state=1).set_index("group")
    assert flipped.loc["light", "pointing_game_diff"] == pytest.approx(-dark["pointing_game_diff"])
    with pytest.raises(ConfigError, match="'reference' group"):
        localisation_by_group(df, "ita_group", reference="medium")
    only = localisation_by_group(df, ["all"] * len(df), n_boot=500)
    assert list(only["group"]) == ["all"] and only["n_valid"].iloc[0] == 29 and only["reason"].iloc[0] == ""
    with pytest.raises(ConfigError, match="may not be named 'all'"):
        localisation_by_group(df, ["all"] * 10 + ["light"] * 20, n_boot=500)


def test_localisation_table_rows_and_columns():
    img, mask = square_image()
    cam = drawn_cam()
    t = localisation_table([cam, np.zeros_like(cam)], [mask, mask], ids=["a", "b"])
    assert list(t.columns) == ["image_id", "relevance_mass", "pointing_game", "iou_top", "lesion_area_frac", "reason"]
    assert list(t["image_id"]) == ["a", "b"]
    assert t.loc[0, "pointing_game"] == 1.0 and t.loc[0, "reason"] == ""
    assert math.isnan(t.loc[1, "relevance_mass"]) and "all-zero" in t.loc[1, "reason"]
    assert list(localisation_table([cam], [mask])["image_id"]) == [0]
    with pytest.raises(DataError, match="1 CAMs for 2 lesion masks"):
        localisation_table([cam], [mask, mask])
    with pytest.raises(DataError, match="1 ids for 2 CAMs"):
        localisation_table([cam, cam], [mask, mask], ids=["a"])


def test_bootstrap_seed_as_int_or_generator():
    """An int seed and a Generator made from it give the same intervals, to the bit."""
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"relevance_mass": rng.uniform(0, 1, 24), "iou_top": rng.uniform(0, 1, 24),
                       "pointing_game": rng.integers(0, 2, 24).astype(float)})
    groups = ["a"] * 8 + ["b"] * 16
    one = localisation_by_group(df, groups, n_boot=300, random_state=7)
    two = localisation_by_group(df, groups, n_boot=300, random_state=np.random.default_rng(7))
    pd.testing.assert_frame_equal(one, two)


@pytest.mark.parametrize("call, match", [
    (lambda c, i, m: sharpen(c, keep_top=1.5), r"'keep_top' parameter must be in \(0, 1\]; got 1.5"),
    (lambda c, i, m: localisation_scores(c, m, keep_top=0), "'keep_top' parameter"),
    (lambda c, i, m: overlay(i, c, alpha=1.2), r"'alpha' parameter must be in \[0, 1\]; got 1.2"),
    (lambda c, i, m: overlay(i, c, cmap="nope"), "unknown matplotlib colormap 'nope'"),
    (lambda c, i, m: triptych_cases([1, 0], [1, 0], [0.9, 0.1], per_kind=-1),
     "'per_kind' parameter must be an integer"),
    (lambda c, i, m: triptych_cases([1, 0], [1, 0], [0.9, 0.1], per_kind=1.5), "'per_kind' parameter"),
    (lambda c, i, m: localisation_by_group(pd.DataFrame({"relevance_mass": [0.5], "pointing_game": [1.0],
                                                         "iou_top": [0.2]}), ["x"], alpha=1.0),
     r"'alpha' parameter must be in \(0, 0.5\]"),
])
def test_bad_options_fail_with_a_sentence(call, match):
    img, mask = square_image()
    with pytest.raises(ConfigError, match=match):
        call(drawn_cam(), img, mask)


@pytest.mark.parametrize("call, match", [
    (lambda: sharpen(np.zeros(5)), r"\(H, W\) or \(n, H, W\)"),
    (lambda: sharpen(np.full((3, 3), np.nan)), "finite values"),
    (lambda: overlay(np.zeros((4, 4), np.uint8), np.zeros((4, 4))), "uint8 RGB"),
    (lambda: triptych_cases([1, 0], [1], [0.9, 0.1]), "1-D of one length"),
    (lambda: triptych_cases([2, 0], [1, 0], [0.9, 0.1]), "0 \\(benign\\) or 1"),
    (lambda: triptych_cases([1, 0], [1, 0], [0.9, 0.1], ids=["a"]), "1 ids for 2 cases"),
    (lambda: save_triptych([], "x.png"), "at least one"),
    (lambda: localisation_by_group(pd.DataFrame({"x": [1]}), ["a"]), "needs a DataFrame with columns"),
])
def test_bad_data_fails_with_a_sentence(call, match):
    with pytest.raises(DataError, match=match):
        call()
