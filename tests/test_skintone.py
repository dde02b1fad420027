"""ITA estimation, grouping schemes and dataset inspection: answers known in advance."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from skimage import color

from skinaudit import skintone as st
from skinaudit.errors import ConfigError, ImageError
from skinaudit.phantoms import PhantomSpec, make_phantom


def patch(L, a, b, size=96):
    """Uniform image of a CIELAB colour; returns the image and the L*, b* its 8-bit pixels hold."""
    rgb = np.clip(np.round(color.lab2rgb(np.array([[[L, a, b]]], dtype=float)) * 255), 0, 255).astype(np.uint8)
    lab = color.rgb2lab(rgb / 255.0)[0, 0]
    return np.tile(rgb, (size, size, 1)), float(lab[0]), float(lab[2])


NO_LESION = np.zeros((96, 96), dtype=bool)


# -- schemes ----------------------------------------------------------------------------
@pytest.mark.parametrize("scheme,value,label", [
    ("binary", 28.0, "dark"), ("binary", 28.000001, "light"), ("binary", -90, "dark"), ("binary", 90, "light"),
    ("del_bino", -30.0, "dark"), ("del_bino", -29.99, "brown"), ("del_bino", 10.0, "brown"),
    ("del_bino", 28.0, "tan"), ("del_bino", 41.0, "intermediate"), ("del_bino", 55.0, "light"),
    ("del_bino", 55.01, "very_light"),
    ("kinyanjui", 10.0, "brown_or_darker"), ("kinyanjui", 19.0, "tan_1"), ("kinyanjui", 34.5, "intermediate_1"),
    ("kinyanjui", 48.0, "light_1"), ("kinyanjui", 55.0, "light_2"), ("kinyanjui", 55.5, "very_light"),
    ("binary", math.inf, "light"), ("binary", -math.inf, "dark"), ("binary", math.nan, "unknown"),
])
def test_group_boundaries_are_half_open(scheme, value, label):
    assert st.assign_groups([value], scheme)[0] == label


@pytest.mark.parametrize("scheme", ["binary", "del_bino", "kinyanjui", [0, 20.5, 40]])
def test_every_finite_value_lands_in_exactly_one_bin(scheme):
    sch = st.get_scheme(scheme)
    values = np.concatenate([np.linspace(-100, 100, 2001), np.array(sch.cuts), np.array(sch.cuts) + 1e-9])
    groups = st.assign_groups(values, sch)
    assert set(groups) <= set(sch.labels)
    t = sch.table()
    for v, g in zip(values, groups):
        inside = t[(v > t["lower"]) & (v <= t["upper"])]
        assert list(inside["label"]) == [g]


def test_custom_scheme_labels_are_intervals():
    sch = st.get_scheme("10, 28")
    assert sch.labels == ("(-inf, 10]", "(10, 28]", "(28, inf)")
    assert st.get_scheme([28, 10]).cuts == (10.0, 28.0)
    assert list(st.assign_groups([10, 10.5, 30], "10,28")) == ["(-inf, 10]", "(10, 28]", "(28, inf)"]
    assert st.SCHEMES["del_bino"].intervals[0] == "(-inf, -30]"


@pytest.mark.parametrize("bad,match", [("nonsense", "unknown ITA scheme"), ([10, 10], "strictly increase"),
                                       ([math.nan], "finite"), (3.5, "name or a list")])
def test_bad_schemes_raise(bad, match):
    with pytest.raises(ConfigError, match=match):
        st.get_scheme(bad)


def test_ita_formula():
    assert st.ita_degrees(50, 10) == pytest.approx(0.0)
    assert st.ita_degrees(60, 10) == pytest.approx(45.0)
    assert st.ita_degrees(40, 10) == pytest.approx(-45.0)
    assert np.isnan(st.ita_degrees(60, 0))


# -- known colours ----------------------------------------------------------------------
@pytest.mark.parametrize("L,a,b", [(70, 10, 15), (55, 12, 20), (40, 12, 18), (30, 8, 12)])
def test_uniform_patch_gives_its_ita(L, a, b):
    img, L8, b8 = patch(L, a, b)
    res = st.estimate_ita(img, lesion_mask=NO_LESION)
    assert res.ita == pytest.approx(math.degrees(math.atan((L8 - 50) / b8)), abs=0.05)
    assert res.L == pytest.approx(L8, abs=0.01) and res.b == pytest.approx(b8, abs=0.01)
    assert res.mask_source == "given" and res.flags == ()
    assert res.skin_pixels == 96 * 96


def test_b_nonpositive_is_flagged_not_a_number():
    img, L8, b8 = patch(65, 10, -6)
    assert b8 < 0
    res = st.estimate_ita(img, lesion_mask=NO_LESION)
    assert math.isnan(res.ita) and "b_nonpositive" in res.reason
    assert res.ita_raw == pytest.approx(math.degrees(math.atan((L8 - 50) / b8)), abs=0.05)
    row = st.analyse_image(img, NO_LESION)
    assert row["group"] == "unknown" and "b_nonpositive" in row["flags"]
    # b_min reaches the computation: with b_min below the patch's b*, the number is kept (but implausible?)
    res2 = st.estimate_ita(img, lesion_mask=NO_LESION, params=st.ItaParams(b_min=-10, plausible_range=(-90, 90)))
    assert res2.ita == pytest.approx(res.ita_raw)


def test_implausible_ita_is_flagged_and_range_reaches_computation():
    img, L8, b8 = patch(80, 5, 3)  # ITA ~ 84 degrees: not skin
    res = st.estimate_ita(img, lesion_mask=NO_LESION)
    assert math.isnan(res.ita) and "implausible_ita" in res.reason
    wide = st.estimate_ita(img, lesion_mask=NO_LESION, params=st.ItaParams(plausible_range=(-90, 90)))
    assert wide.ita == pytest.approx(res.ita_raw) and wide.flags == ()


def test_too_few_skin_pixels_gives_unknown_with_reason():
    img, _, _ = patch(60, 10, 15)
    lesion = np.ones((96, 96), dtype=bool)
    lesion[:4, :4] = False
    res = st.estimate_ita(img, lesion_mask=lesion)
    assert math.isnan(res.ita) and "too_few_skin_pixels" in res.reason
    row = st.analyse_image(img, lesion)
    assert row["group"] == "unknown"
    # min_skin_fraction reaches the computation
    lesion2 = np.zeros((96, 96), dtype=bool)
    lesion2[:, :80] = True
    assert not math.isnan(st.estimate_ita(img, lesion_mask=lesion2, params=st.ItaParams(lesion_margin=0, lesion_margin_radius=0)).ita)
    strict = st.ItaParams(lesion_margin=0, lesion_margin_radius=0, min_skin_fraction=0.5)
    assert "too_few_skin_pixels" in st.estimate_ita(img, lesion_mask=lesion2, params=strict).reason


def test_full_margin_reports_unknown_where_the_default_shrinks_the_margin():
    img, _, _ = patch(60, 10, 15)
    yy, xx = np.mgrid[:96, :96]
    lesion = (yy - 48) ** 2 + (xx - 48) ** 2 < 42 ** 2  # a lesion filling most of the frame
    shrunk = st.estimate_ita(img, lesion_mask=lesion)
    full = st.estimate_ita(img, lesion_mask=lesion, params=st.ItaParams(shrink_margin=False))
    assert not math.isnan(shrunk.ita) and shrunk.flags == ()
    assert math.isnan(full.ita) and "too_few_skin_pixels" in full.reason
    assert full.skin_pixels < shrunk.skin_pixels and full.method.endswith("/full-margin")
    small = (yy - 48) ** 2 + (xx - 48) ** 2 < 20 ** 2  # room for the full margin: no difference
    a = st.estimate_ita(img, lesion_mask=small)
    b = st.estimate_ita(img, lesion_mask=small, params=st.ItaParams(shrink_margin=False))
    assert (a.ita, a.skin_pixels) == (b.ita, b.skin_pixels)


def test_statistic_margin_and_trim_reach_the_computation():
    img, _, _ = patch(70, 10, 15)
    dark, _, _ = patch(40, 10, 15)
    img = img.copy()
    img[:, :40] = dark[:, :40]  # 40 of 96 columns of darker skin: mean and median differ
    lesion = np.zeros((96, 96), dtype=bool)
    lesion[40:56, 60:76] = True
    p = lambda **kw: st.ItaParams(plausible_range=(-90, 90), **kw)  # noqa: E731
    med = st.estimate_ita(img, lesion_mask=lesion, params=p(statistic="median"))
    tmean = st.estimate_ita(img, lesion_mask=lesion, params=p(statistic="trimmed_mean", trim_sd=3))
    assert med.L != pytest.approx(tmean.L, abs=1)
    narrow = st.estimate_ita(img, lesion_mask=lesion, params=p(lesion_margin=0.0))
    wide = st.estimate_ita(img, lesion_mask=lesion, params=p(lesion_margin=0.1))
    assert narrow.skin_pixels > wide.skin_pixels


@pytest.mark.parametrize("kw,match", [({"statistic": "mode"}, "statistic"), ({"trim_sd": 0}, "trim_sd"),
                                      ({"plausible_range": (10, 0)}, "plausible_range"),
                                      ({"color_correction": "magic"}, "color_correction"),
                                      ({"lesion_margin": 0.7}, "lesion_margin")])
def test_bad_params_raise(kw, match):
    with pytest.raises(ConfigError, match=match):
        st.ItaParams(**kw)


def test_bad_image_raises():
    with pytest.raises(ImageError, match="RGB"):
        st.estimate_ita(np.zeros((20, 20)))


# -- phantoms: known skin colour under artifacts ---------------------------------------
def _phantom_errors(**kw):
    errs = []
    rng = np.random.default_rng(11)
    for i in range(6):
        ph = make_phantom(PhantomSpec(skin_L=float(rng.uniform(35, 75)), skin_b=float(rng.uniform(9, 22)),
                                      seed=i, **kw))
        res = st.estimate_ita(ph.image)
        errs.append(abs(res.ita - ph.truth["ita_true"]))
    return np.array(errs)


def test_clean_phantoms_within_one_degree():
    assert np.all(_phantom_errors() < 1.0)


def test_phantoms_with_hair_ink_vignette_ruler_bubbles_within_three_degrees():
    errs = _phantom_errors(hair=6, ink=True, dark_corner=True, ruler=True, gel_bubble=2)
    assert np.all(errs < 3.0)


def test_opencv8_scale_is_a_lightness_scale():
    img, L8, b8 = patch(65, 10, 15)
    res = st.estimate_ita(img, lesion_mask=NO_LESION, params=st.ItaParams(lab_scale="opencv8"))
    assert res.ita == pytest.approx(math.degrees(math.atan((2.55 * L8 - 50) / (b8 + 128))), abs=0.05)


# -- datasets ---------------------------------------------------------------------------
def test_inspect_dataset_columns_overrides_and_determinism(phantom_dataset):
    ds = phantom_dataset.head(10)
    a = st.inspect_dataset(ds, n_jobs=1, use_given_masks=False)
    for col in ("image_id", "ita", "group", "L", "b", "skin_pixels", "mask_source", "flags", "method", "hair",
                "ruler", "ink", "dark_corner", "gel_bubble", "gel_border", "status"):
        assert col in a.columns
    assert list(a["image_id"]) == list(ds.ids) and set(a["mask_source"]) == {"estimated"}
    assert a["hair"].dtype == bool
    truth = ds.table["ita_true"].astype(float).to_numpy()  # the manifest keeps metadata as text
    assert np.nanmax(np.abs(a["ita"].to_numpy() - truth)) < 3.0
    given = st.inspect_dataset(ds, n_jobs=1)
    assert set(given["mask_source"]) == {"given"}
    table = ds.table.copy()
    table["ita"] = [12.0] + [np.nan] * 9
    from skinaudit.data import AuditDataset
    over = st.inspect_dataset(AuditDataset(table), n_jobs=1, scheme="del_bino")
    assert over.loc[0, "ita"] == 12.0 and over.loc[0, "group"] == "tan" and over.loc[0, "method"] == "given"
    assert over.loc[1, "ita"] == pytest.approx(given.loc[1, "ita"])


def test_inspect_parallel_equals_serial(phantom_dataset):
    ds = phantom_dataset.head(10)
    serial = st.inspect_dataset(ds, n_jobs=1)
    parallel = st.inspect_dataset(ds, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_unreadable_image_becomes_a_row_unless_strict(phantom_dataset, tmp_path):
    from skinaudit.data import AuditDataset

    table = phantom_dataset.table.head(2).copy()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    table.loc[1, "image_path"] = str(bad)
    table["mask_path"] = None
    ds = AuditDataset(table)
    out = st.inspect_dataset(ds, n_jobs=1)
    assert out.loc[1, "group"] == "unknown" and out.loc[1, "status"].startswith("error")
    assert out.loc[0, "status"] == "ok"
    with pytest.raises(ImageError):
        st.inspect_dataset(ds, n_jobs=1, strict=True)


def test_sensitivity_table_counts(phantom_dataset):
    ds = phantom_dataset.head(6)
    tab = st.sensitivity_table(ds, scheme="binary", n_jobs=1)
    assert "given mask, no correction" in set(tab["variant"]) and "border frame (naive baseline)" in set(tab["variant"])
    assert (tab[["dark", "light", "unknown"]].sum(axis=1) == 6).all()
    assert tab.loc[0, "agreement"] == 1.0 and tab.loc[0, "variant"] == "given mask, cast reference"
    again = st.sensitivity_table(tab.attrs["per_image"], scheme="del_bino")
    assert (again.drop(columns=["variant", "n", "agreement"]).sum(axis=1) == 6).all()


# -- real images ------------------------------------------------------------------------
@pytest.mark.realdata
def test_ham10000_opencv8_reproduces_published_values(shared_data):
    from skinaudit.imageio import read_image

    root = shared_data("ham10000-224")
    ref = pd.read_csv(root / "skin_tone_reference.csv").dropna().sort_values("image_id").head(8)
    for r in ref.itertuples():
        img = read_image(root / "images" / f"{r.image_id}.jpg")
        cie = st.estimate_ita(img)
        assert math.isnan(cie.ita) or -60 <= cie.ita <= 75
        ocv = st.estimate_ita(img, params=st.ItaParams(lab_scale="opencv8"))
        assert abs(ocv.ita - r.kinyanjui_ita) < 5.0


# -- colour casts -----------------------------------------------------------------------
def test_specular_correction_recovers_a_warm_cast_from_gel_bubble_highlights():
    errs = []
    rng = np.random.default_rng(5)
    for i in range(5):
        ph = make_phantom(PhantomSpec(seed=i, cast="warm", gel_bubble=2, skin_L=float(rng.uniform(40, 75)),
                                      skin_b=float(rng.uniform(9, 22))))
        plain = st.estimate_ita(ph.image)
        corrected = st.estimate_ita(ph.image, params=st.ItaParams(color_correction="specular"))
        assert corrected.flags == () and "specular" in corrected.method
        errs.append((abs(plain.ita - ph.truth["ita_true"]), abs(corrected.ita - ph.truth["ita_true"])))
    errs = np.array(errs)
    assert np.all(errs[:, 1] < 3.0)
    assert errs[:, 1].mean() < errs[:, 0].mean() / 2


def test_no_reference_means_no_correction_and_a_flag():
    ph = make_phantom(PhantomSpec(seed=2, cast="warm"))  # no bubbles, no highlight
    res = st.estimate_ita(ph.image, params=st.ItaParams(color_correction="specular"))
    plain = st.estimate_ita(ph.image)
    assert "no_colour_reference" in res.reason
    assert res.L == pytest.approx(plain.L) and res.b == pytest.approx(plain.b)


def test_paper_compatible_plain_formula_keeps_every_value():
    img, L8, b8 = patch(65, 10, -6)
    paper = st.ItaParams(b_min=-math.inf, plausible_range=(-90, 90))
    res = st.estimate_ita(img, lesion_mask=NO_LESION, params=paper)
    assert res.flags == () and res.ita == pytest.approx(math.degrees(math.atan((L8 - 50) / b8)), abs=0.05)
    assert st.assign_groups([res.ita], "binary")[0] == "dark"  # a blue cast reads as dark skin


# -- dataset-level cast correction ------------------------------------------------------
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
    weak = st.correct_cast(rows, st.ItaParams(color_correction="dataset_reference", reference_b=0.5))
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


def test_inspect_dataset_cast_group_column(phantom_dataset):
    ds = phantom_dataset.head(24)
    table = ds.table.copy()
    table["site"] = ["a"] * 24
    from skinaudit.data import AuditDataset

    out = st.inspect_dataset(AuditDataset(table), n_jobs=1, params=replace_params(cast_group="site"))
    assert set(out["cast_group"]) == {"a"} and out["b_offset"].notna().any()
    raw = st.inspect_dataset(AuditDataset(table), n_jobs=1, correct=False)
    assert "b_offset" not in raw.columns
    with pytest.raises(ConfigError, match="cast group column 'nope'"):
        st.inspect_dataset(AuditDataset(table), n_jobs=1, params=replace_params(cast_group="nope"))


def replace_params(**kw):
    from dataclasses import replace

    return replace(st.DATASET_ITA, **kw)


def test_correct_cast_takes_given_offsets():
    rows = _lab_rows(np.full(25, 65.0), np.linspace(-6, 4, 25))
    out = st.correct_cast(rows, st.DATASET_ITA, offsets={"all": 20.0})
    assert (out["b_offset"] == 20.0).all() and out["cast_estimated"].all()
    small = st.correct_cast(rows.head(3), st.DATASET_ITA, offsets={"all": 20.0})  # a sample of 3 images
    assert (small["b_offset"] == 20.0).all() and small["ita"].notna().all()
