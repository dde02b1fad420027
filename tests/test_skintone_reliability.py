"""Test-retest reliability of ITA (skinaudit.skintone.reliability): known answers on synthetic
lesions, the bootstrap's parameters reaching the computation, flips, Fleiss' kappa, real repeats."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import f_oneway
from sklearn.metrics import cohen_kappa_score

from skinaudit.errors import ConfigError
from skinaudit.skintone.reliability import (fleiss_kappa_labels, flip_rate, icc1, icc1_interval, icc_reading,
                                            reliability_summary)


def _lesions(n_lesions, sd_lesion, sd_noise, *, seed, sizes=(2, 5)):
    rng = np.random.default_rng(seed)
    n = rng.integers(sizes[0], sizes[1], n_lesions)
    cl = np.repeat(np.arange(n_lesions), n)
    x = 35 + rng.normal(0, sd_lesion, n_lesions)[cl] + rng.normal(0, sd_noise, cl.size)
    return x, cl


@pytest.mark.parametrize("sd_lesion, sd_noise", [(3.0, 1.0), (2.0, 2.0), (1.0, 3.0), (0.0, 2.0)])
def test_icc_recovers_known_variance_ratio(sd_lesion, sd_noise):
    truth = sd_lesion ** 2 / (sd_lesion ** 2 + sd_noise ** 2)
    x, cl = _lesions(3000, sd_lesion, sd_noise, seed=1)
    est = icc1(x, cl)
    assert est["n_lesions"] == 3000 and est["n_images"] == x.size
    assert est["icc"] == pytest.approx(truth, abs=0.03)


def test_icc_matches_anova_f_on_unbalanced_groups():
    # ICC(1) = (F - 1) / (F + k0 - 1) with F the one-way ANOVA statistic (scipy).
    x, cl = _lesions(40, 2.0, 1.5, seed=2)
    est = icc1(x, cl)
    f = f_oneway(*[x[cl == i] for i in range(40)]).statistic
    assert est["msb"] / est["msw"] == pytest.approx(f, rel=1e-9)
    assert est["icc"] == pytest.approx((f - 1) / (f + est["k0"] - 1), rel=1e-9)
    n = np.bincount(cl)
    assert est["k0"] == pytest.approx((n.sum() - (n ** 2).sum() / n.sum()) / 39)


def test_icc_skips_nan_and_singletons():
    x = np.array([1.0, 1.2, np.nan, 5.0, 5.3, 9.0, 3.0])
    cl = ["a", "a", "b", "c", "c", "d", "b"]  # b has one finite value, d one image: both left out
    est = icc1(x, cl)
    assert est["n_lesions"] == 2 and est["n_images"] == 4 and est["icc"] > 0.9
    one = icc1([1.0, 2.0, 3.0], ["a", "a", "b"])
    assert np.isnan(one["icc"]) and "fewer than two lesions" in one["reason"]
    with pytest.raises(ConfigError, match="same length"):
        icc1([1.0, 2.0], ["a"])


def test_interval_covers_truth_and_uses_seed_and_n_boot():
    x, cl = _lesions(300, 2.0, 2.0, seed=3)
    ci = icc1_interval(x, cl, n_boot=400, random_state=0)
    assert ci["n_defined"] == 400 and ci["low"] < 0.5 < ci["high"]
    assert ci["low"] < icc1(x, cl)["icc"] < ci["high"]
    same = icc1_interval(x, cl, n_boot=400, random_state=0)
    assert same == ci
    assert icc1_interval(x, cl, n_boot=400, random_state=1) != ci
    assert icc1_interval(x, cl, n_boot=300, random_state=0)["n_defined"] == 300
    wide = icc1_interval(x, cl, n_boot=400, alpha=0.01, random_state=0)
    assert wide["low"] < ci["low"] and wide["high"] > ci["high"]


def test_interval_replicates_equal_direct_recomputation():
    # the vectorised replicate equals icc1 on the resampled lesions (a lesion drawn twice counts twice)
    from skinaudit.stats import resample_indices

    x, cl = _lesions(12, 2.0, 1.0, seed=4)
    ci = icc1_interval(x, cl, n_boot=5, alpha=0.5, random_state=7)
    (_, (draw,)), = list(resample_indices([np.arange(12)], n_boot=5, random_state=7))
    reps = []
    for row in draw:
        xs = np.concatenate([x[cl == i] for i in row])
        cs = np.concatenate([np.full((cl == i).sum(), j) for j, i in enumerate(row)])
        reps.append(icc1(xs, cs)["icc"])
    assert ci["low"] == pytest.approx(np.quantile(reps, 0.25)) and ci["high"] == pytest.approx(np.quantile(reps, 0.75))


def test_flip_rate_counts_pairs():
    groups = ["light", "light", "dark", "light", "unknown", "dark", "dark"]
    lesion = [1, 1, 1, 2, 2, 3, 4]
    out = flip_rate(groups, lesion)
    # lesion 1: 3 pairs, 2 flips; lesion 2: one pair with an unknown; 3 and 4 have one image
    assert out == {"flip_rate": 2 / 3, "n_pairs": 3, "n_flips": 2, "n_pairs_unknown": 1}
    assert np.isnan(flip_rate(["a", "b"], [1, 2])["flip_rate"])


def test_fleiss_kappa_known_answers():
    perfect = pd.DataFrame({"a": ["x", "y", "x", "y"], "b": ["x", "y", "x", "y"], "c": ["x", "y", "x", "y"]})
    assert fleiss_kappa_labels(perfect)["kappa"] == pytest.approx(1.0)
    # Fleiss (1971) example via statsmodels' own check: two raters, compare with Cohen's kappa
    # (Fleiss' kappa of two raters equals Scott's pi; equal marginals make it equal Cohen's kappa)
    a = ["x", "x", "y", "y", "x", "y", "x", "y"]
    b = ["x", "y", "y", "x", "x", "y", "x", "y"]
    k = fleiss_kappa_labels(pd.DataFrame({"a": a, "b": b}))
    assert k["kappa"] == pytest.approx(cohen_kappa_score(a, b))
    with_unknown = pd.DataFrame({"a": ["x", "unknown", "y"], "b": ["x", "y", "y"]})
    out = fleiss_kappa_labels(with_unknown)
    assert out["n_images"] == 2 and out["n_images_unknown"] == 1 and out["kappa"] == pytest.approx(1.0)
    assert np.isnan(fleiss_kappa_labels(pd.DataFrame({"a": ["x", "x"], "b": ["x", "x"]}))["kappa"])


@pytest.mark.parametrize("icc, reading", [(-0.1, "poor"), (0.49, "poor"), (0.5, "moderate"), (0.75, "good"),
                                          (0.9, "excellent"), (float("nan"), "undefined")])
def test_reading_bands(icc, reading):
    assert icc_reading(icc) == reading


def _real_repeats(shared_data, n_lesions=80):
    """ITA (naive border median) of the first ``n_lesions`` repeated lesions of ham10000-repeats-200."""
    from skinaudit.imageio import read_image
    from skinaudit.skintone import ita_degrees

    folder = shared_data("ham10000-repeats-200")
    meta = pd.read_csv(folder / "HAM10000_metadata.csv")
    keep = sorted(meta["lesion_id"].unique())[:n_lesions]
    meta = meta[meta["lesion_id"].isin(keep)]
    from skimage.color import rgb2lab

    ita = []
    for image_id in meta["image_id"]:
        lab = rgb2lab(read_image(folder / "images" / f"{image_id}.jpg"))
        border = np.concatenate([lab[:10].reshape(-1, 3), lab[-10:].reshape(-1, 3), lab[:, :10].reshape(-1, 3),
                                 lab[:, -10:].reshape(-1, 3)])
        ita.append(ita_degrees(np.median(border[:, 0]), np.median(border[:, 2])))
    return np.asarray(ita, dtype=float), meta["lesion_id"].to_numpy()


def test_real_repeats_give_a_defined_icc(shared_data):
    ita, lesion = _real_repeats(shared_data)
    groups = np.where(np.isnan(ita), "unknown", np.where(ita > 28, "light", "dark"))
    out = reliability_summary(ita, groups, lesion, column="lesion_id", n_boot=200, alpha=0.05, random_state=0)
    assert out["n_lesions"] >= 50 and out["n_lesions_with_repeats"] == 80
    assert -1 < out["icc_ci"][0] <= out["icc"] <= out["icc_ci"][1] < 1
    assert out["reading"] in ("poor", "moderate", "good", "excellent")
    assert 0 <= out["flip_rate"] <= 1 and out["n_pairs"] > 0


# -- concordance with human types and the Monk Skin Tone mapping ---------------------------------

def test_ita_to_fitzpatrick_follows_del_bino_bins():
    from skinaudit.skintone.concordance import ita_to_fitzpatrick

    got = ita_to_fitzpatrick([60, 55, 41.5, 28, 10.1, -30, -45, np.nan])
    np.testing.assert_array_equal(got, [1, 2, 2, 4, 4, 6, 6, np.nan])


def test_concordance_known_answers():
    from skinaudit.skintone.concordance import fitzpatrick_concordance, parse_fitzpatrick

    assert np.array_equal(parse_fitzpatrick(["I", "vi", 2.0, "3", 7, None, "x"]),
                          [1, 6, 2, 3, np.nan, np.nan, np.nan], equal_nan=True)
    # ITA in the middle of each Del Bino bin for types I-VI: perfect mapping, rho -1 for ITA
    ita = np.array([60, 48, 35, 20, -10, -40] * 5, dtype=float)
    types = np.array([1, 2, 3, 4, 5, 6] * 5)
    light = np.full(ita.size, 60.0) + np.arange(ita.size) % 2  # L* unrelated to type
    out = fitzpatrick_concordance(ita, light, types, column="fst")
    assert out["n_images"] == 30 and out["spearman_ita"] == pytest.approx(-1.0)
    assert out["kappa_linear"] == pytest.approx(1.0) and out["exact_agreement"] == 1.0
    assert abs(out["spearman_lightness"]) < 0.3
    # one bin off everywhere: kappa drops, within-one stays 1
    shifted = fitzpatrick_concordance(ita, light, np.clip(types + 1, 1, 6), column="fst")
    assert shifted["within_one"] == 1.0 and shifted["kappa_linear"] < 1.0
    assert shifted["kappa_linear"] == pytest.approx(cohen_kappa_score(np.clip(types + 1, 1, 6), types,
                                                                      labels=[1, 2, 3, 4, 5, 6], weights="linear"))
    none = fitzpatrick_concordance([np.nan, 30.0], [50.0, 60.0], [2, np.nan], column="fst")
    assert none["n_images"] == 0 and np.isnan(none["spearman_ita"]) and "confusion" not in none


def test_monk_tone_maps_each_swatch_to_itself():
    from skimage.color import rgb2lab

    from skinaudit.skintone.concordance import MST_HEX, monk_tone

    rgb = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in MST_HEX], dtype=float) / 255
    lab = rgb2lab(rgb[None])[0]
    np.testing.assert_array_equal(monk_tone(lab[:, 0], lab[:, 1], lab[:, 2]), np.arange(1, 11))
    # a slightly lighter MST 6 is still MST 6; NaN stays NaN
    assert monk_tone(lab[5, 0] + 1, lab[5, 1], lab[5, 2]) == 6 and np.isnan(monk_tone(np.nan, 0, 0))
