"""Whole datasets (skinaudit.skintone.dataset): inspect_dataset and the sensitivity table."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from skinaudit import skintone as st
from skinaudit.data import AuditDataset
from skinaudit.errors import ConfigError, ImageError


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
    over = st.inspect_dataset(AuditDataset(table), n_jobs=1, scheme="del_bino")
    assert over.loc[0, "ita"] == 12.0 and over.loc[0, "group"] == "tan" and over.loc[0, "method"] == "given"
    assert over.loc[1, "ita"] == pytest.approx(given.loc[1, "ita"])


def test_inspect_parallel_equals_serial(phantom_dataset):
    ds = phantom_dataset.head(10)
    serial = st.inspect_dataset(ds, n_jobs=1)
    parallel = st.inspect_dataset(ds, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_unreadable_image_becomes_a_row_unless_strict(phantom_dataset, tmp_path):
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
    # the cast step's assumption (#15): reference b* 10 / 15 / 20 on the given mask; 15 is the default row
    rows = tab.set_index("variant")
    for ref in ("10", "15", "20"):
        assert f"given mask, cast reference b* {ref}" in rows.index
    assert rows.loc["given mask, cast reference b* 15", "agreement"] == 1.0
    again = st.sensitivity_table(tab.attrs["per_image"], scheme="del_bino")
    assert (again.drop(columns=["variant", "n", "agreement"]).sum(axis=1) == 6).all()


@pytest.mark.parametrize("use_given_masks", [True, False])
def test_inspect_with_sensitivity_equals_the_two_passes(phantom_dataset, tmp_path, use_given_masks):
    # one pass (each image read and analysed once) gives what inspect_dataset + sensitivity_table give;
    # masks: one empty (the row estimates the lesion, the given-mask variants use it as given), one missing
    table = phantom_dataset.table.head(6).copy()
    table["site"] = ["a", "b"] * 3
    from PIL import Image

    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros(np.asarray(Image.open(table.loc[1, "mask_path"])).shape[:2], np.uint8)).save(empty)
    table.loc[1, "mask_path"] = str(empty)
    table.loc[2, "mask_path"] = None
    ds = AuditDataset(table)
    params = replace(st.DATASET_ITA, cast_group="site", min_cast_images=2)
    table_1, sens_1 = st.inspect_with_sensitivity(ds, n_jobs=1, params=params, use_given_masks=use_given_masks)
    pd.testing.assert_frame_equal(table_1, st.inspect_dataset(ds, n_jobs=1, params=params,
                                                              use_given_masks=use_given_masks))
    sens_2 = st.sensitivity_table(ds, n_jobs=1, params=params)
    pd.testing.assert_frame_equal(sens_1, sens_2)
    pd.testing.assert_frame_equal(sens_1.attrs["per_image"], sens_2.attrs["per_image"])
    assert "empty_given_mask" in table_1.loc[1, "flags"] or not use_given_masks


def test_inspect_dataset_cast_group_column(phantom_dataset):
    ds = phantom_dataset.head(24)
    table = ds.table.copy()
    table["site"] = ["a"] * 24

    out = st.inspect_dataset(AuditDataset(table), n_jobs=1, params=replace(st.DATASET_ITA, cast_group="site"))
    assert set(out["cast_group"]) == {"a"} and out["b_offset"].notna().any()
    raw = st.inspect_dataset(AuditDataset(table), n_jobs=1, correct=False)
    assert "b_offset" not in raw.columns
    with pytest.raises(ConfigError, match="cast group column 'nope'"):
        st.inspect_dataset(AuditDataset(table), n_jobs=1, params=replace(st.DATASET_ITA, cast_group="nope"))


def test_sensitivity_first_row_is_what_inspect_reports_when_some_masks_are_missing(phantom_dataset, tmp_path):
    # 3 of 8 images without a usable given mask (one empty, two missing): inspect_dataset estimates
    # their lesions, so the first row must too, else its unknown count disagrees with inspect.csv
    from PIL import Image

    table = phantom_dataset.table.head(8).copy()
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros(np.asarray(Image.open(table.loc[1, "mask_path"])).shape[:2], np.uint8)).save(empty)
    table.loc[1, "mask_path"] = str(empty)
    table.loc[[2, 5], "mask_path"] = None
    ds = AuditDataset(table)
    for params in (st.DATASET_ITA, replace(st.DATASET_ITA, ita_correction="none")):
        inspected, sens = st.inspect_with_sensitivity(ds, n_jobs=1, params=params)
        first = sens.iloc[0]
        suffix = "cast reference" if params.ita_correction == "dataset_reference" else "no correction"
        assert first["variant"] == f"{st.dataset.MIXED}, {suffix}"
        counts = inspected["group"].value_counts()
        for label in (*st.get_scheme("binary").labels, st.UNKNOWN):
            assert first[label] == counts.get(label, 0)
        per = sens.attrs["per_image"].set_index("image_id")
        assert per["given mask::used"].tolist() == [True, False, False, True, True, False, True, True]
        assert f"{st.dataset.MIXED}, cast reference b* 10" in set(sens["variant"])
        # the per-image groups of every variant (ita_variant_groups.csv, reliability) include it too
        from skinaudit.config import AuditConfig
        from skinaudit.stages.groups import variant_labels

        config = AuditConfig(ita_correction=params.ita_correction)
        labels = variant_labels(sens.attrs["per_image"], ds, config, offsets=None)
        assert labels[first["variant"]].tolist() == inspected["group"].tolist()
        # the given-mask rows are still there, with the images without a mask as unknown
        given = sens.set_index("variant").loc[f"given mask, {suffix}"]
        assert given[st.UNKNOWN] >= 2
    # every image with its mask: the first row is the given mask's, as before
    full = st.sensitivity_table(phantom_dataset.head(8), n_jobs=1)
    assert full.iloc[0]["variant"] == "given mask, cast reference"
    assert st.dataset.MIXED not in " ".join(full["variant"])


def test_sensitivity_table_without_any_readable_image_is_a_data_error():
    from skinaudit.errors import DataError

    with pytest.raises(DataError, match="no readable image"):
        st.sensitivity_table(pd.DataFrame({"image_id": ["a", "b"]}))


@pytest.mark.parametrize("sample", [12, 40])  # part of the audited images, and all of them
def test_an_audit_analyses_each_sensitivity_image_once(phantom_dataset, monkeypatch, sample):
    import skinaudit as sa
    from skinaudit.skintone import dataset as impl

    ds = phantom_dataset.head(24)
    calls = {"inspect": 0, "variants": 0}

    def counted(name, fn):
        def wrapper(job):
            calls[name] += 1
            return fn(job)
        return wrapper

    monkeypatch.setattr(impl, "_inspect_one", counted("inspect", impl._inspect_one))
    monkeypatch.setattr(impl, "_inspect_variants_one", counted("inspect", impl._inspect_variants_one))
    monkeypatch.setattr(impl, "_variants_one", counted("variants", impl._variants_one))
    scores = pd.Series(np.linspace(0.1, 0.9, len(ds)), index=ds.ids)
    config = sa.AuditConfig(n_boot=200, n_jobs=1, explain="off", sensitivity_sample=sample)
    res = sa.run_audit(sa.PrecomputedScores(scores), ds, config, stages=("skintone",))
    assert calls == {"inspect": len(ds), "variants": 0}  # one read and analysis per image, variants included
    n = res.sections["skintone"].data["sensitivity"]["n_images"]
    assert n == min(sample, len(ds))
    # the same table as the two passes it replaces
    alone = st.sensitivity_table(res.tables["ita_variant_groups"]["image_id"].pipe(
        lambda ids: ds.subset(list(ids))), scheme="binary", params=config.ita_params(), n_jobs=1,
        lesion_params=config.lesion_params(), artifact_params=config.artifact_params())
    assert calls["variants"] == n
    assert alone.attrs["per_image"].equals(res.tables["ita_sensitivity"].attrs["per_image"])
