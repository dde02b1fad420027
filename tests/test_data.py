"""Data layer: loaders on the real shared datasets, manifest rules, bad input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinaudit.data import AuditDataset, load_isic, load_isic_archive, load_manifest, parse_label
from skinaudit.errors import ConfigError, DataError


# -- real data: each public dataset loads with one of the three kinds ---------------------

@pytest.mark.realdata
def test_isic2018_task3_test_set(shared_data):
    root = shared_data("isic2018-task3-test-224")
    ds = load_isic(root / "images", root / "ISIC2018_Task3_Test_GroundTruth.csv")
    assert len(ds) == 1512
    # MEL 171 + BCC 93 + AKIEC 43 malignant (data README)
    assert ds.labels.sum() == 171 + 93 + 43
    assert ds.table["diagnosis"].value_counts()["NV"] == 909
    assert not ds.has_masks
    assert all(p.endswith(".jpg") for p in ds.image_paths[:5])


@pytest.mark.realdata
def test_isic_malignant_classes_configurable(shared_data):
    root = shared_data("isic2018-task3-test-224")
    ds = load_isic(root / "images", root / "ISIC2018_Task3_Test_GroundTruth.csv", malignant=["MEL"])
    assert ds.labels.sum() == 171
    with pytest.raises(ConfigError, match="unknown malignant class"):
        load_isic(root / "images", root / "ISIC2018_Task3_Test_GroundTruth.csv", malignant=["XYZ"])


@pytest.mark.realdata
def test_ham10000_metadata(shared_data):
    root = shared_data("ham10000-224")
    ds = load_isic(root / "images", root / "HAM10000_metadata.csv")
    assert len(ds) == 5984
    assert ds.labels.sum() == 491 + 264 + 183  # mel + bcc + akiec
    assert "lesion_id" in ds.table.columns  # kept as metadata (grouped folds need it)


@pytest.mark.realdata
def test_isic_archive_with_isic2017_masks(shared_data):
    root = shared_data("isic-uda1")
    ds = load_isic_archive(root / "labels.csv", root / "images", masks=root / "masks")
    assert len(ds) == 557
    assert ds.labels.sum() == 159
    assert ds.table["mask_path"].notna().sum() == 456
    assert {"age_approx", "sex", "diagnosis"} <= set(ds.table.columns)


@pytest.mark.realdata
@pytest.mark.parametrize("folder, pattern, n, n_pos", [
    ("ph2", "{id}_lesion.png", 200, 40),
    ("pad-ufes20", "{id}_mask.png", 432, 259),
    ("isic2017-examples", "{id}_segmentation.png", 98, 10),
])
def test_other_public_sets_via_isic_archive(shared_data, folder, pattern, n, n_pos):
    root = shared_data(folder)
    ds = load_isic_archive(root / "labels.csv", root / "images", masks=root / "masks", mask_pattern=pattern)
    assert len(ds) == n
    assert ds.labels.sum() == n_pos
    assert ds.table["mask_path"].notna().all()


@pytest.mark.realdata
def test_missing_image_is_named(shared_data, tmp_path):
    root = shared_data("isic2018-task3-test-224")
    labels = pd.read_csv(root / "ISIC2018_Task3_Test_GroundTruth.csv").head(3)
    labels.loc[len(labels)] = ["ISIC_9999999", 1, 0, 0, 0, 0, 0, 0]
    labels.to_csv(tmp_path / "gt.csv", index=False)
    with pytest.raises(DataError, match="ISIC_9999999"):
        load_isic(root / "images", tmp_path / "gt.csv")


# -- synthetic layouts -------------------------------------------------------------------

def _img(path, size=(40, 40)):
    Image.fromarray(np.full((*size, 3), 128, np.uint8)).save(path)
    return path


def test_isic_onehot_must_have_one_class(tmp_path):
    (tmp_path / "img").mkdir()
    _img(tmp_path / "img" / "a.jpg")
    pd.DataFrame({"image": ["a"], "MEL": [1.0], "NV": [1.0], "BCC": [0.0], "AKIEC": [0.0], "BKL": [0.0],
                  "DF": [0.0], "VASC": [0.0]}).to_csv(tmp_path / "gt.csv", index=False)
    with pytest.raises(DataError, match="exactly one class"):
        load_isic(tmp_path / "img", tmp_path / "gt.csv")


def test_isic_rejects_unknown_csv(tmp_path):
    (tmp_path / "img").mkdir()
    _img(tmp_path / "img" / "a.jpg")
    pd.DataFrame({"foo": ["a"]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(DataError, match="not an ISIC 2018 Task 3 ground truth"):
        load_isic(tmp_path / "img", tmp_path / "x.csv")


def test_isic_duplicate_ids(tmp_path):
    (tmp_path / "img").mkdir()
    _img(tmp_path / "img" / "a.jpg")
    row = {"image": "a", "MEL": 1.0, "NV": 0.0, "BCC": 0.0, "AKIEC": 0.0, "BKL": 0.0, "DF": 0.0, "VASC": 0.0}
    pd.DataFrame([row, row]).to_csv(tmp_path / "gt.csv", index=False)
    with pytest.raises(DataError, match="duplicate image id"):
        load_isic(tmp_path / "img", tmp_path / "gt.csv")


def test_archive_indeterminate_rows_are_listed_not_dropped(tmp_path):
    (tmp_path / "img").mkdir()
    for i in ("a", "b", "c"):
        _img(tmp_path / "img" / f"{i}.jpg")
    pd.DataFrame({"isic_id": ["a", "b", "c"], "benign_malignant": ["benign", "malignant", "indeterminate"],
                  "diagnosis": ["nevus", "melanoma", "nevus"]}).to_csv(tmp_path / "m.csv", index=False)
    ds = load_isic_archive(tmp_path / "m.csv", tmp_path / "img")
    assert list(ds.ids) == ["a", "b"]
    assert ds.excluded["image_id"].tolist() == ["c"]
    assert "indeterminate" in ds.excluded["reason"].iloc[0]


def test_archive_diagnosis_fallback(tmp_path):
    (tmp_path / "img").mkdir()
    for i in ("a", "b"):
        _img(tmp_path / "img" / f"{i}.jpg")
    pd.DataFrame({"isic_id": ["a", "b"], "diagnosis": ["melanoma", "nevus"]}).to_csv(tmp_path / "m.csv", index=False)
    ds = load_isic_archive(tmp_path / "m.csv", tmp_path / "img")
    assert ds.labels.tolist() == [1, 0]


def _manifest(tmp_path, rows, name="manifest.csv"):
    p = tmp_path / name
    pd.DataFrame(rows).to_csv(p, index=False)
    return p


def test_manifest_relative_paths_labels_and_metadata(tmp_path):
    (tmp_path / "img").mkdir()
    _img(tmp_path / "img" / "a.png")
    _img(tmp_path / "img" / "b.png")
    p = _manifest(tmp_path, [
        {"image_id": "a", "image_path": "img/a.png", "label": "Malignant", "site": "back", "ita": 30.5, "age": 41},
        {"image_id": "b", "image_path": "img/b.png", "label": "benign", "site": "face", "ita": "", "age": ""},
    ])
    ds = load_manifest(p)
    assert ds.labels.tolist() == [1, 0]
    assert ds.image_paths[0] == str((tmp_path / "img" / "a.png").resolve())
    assert ds.table["site"].tolist() == ["back", "face"]
    assert pd.api.types.is_string_dtype(ds.table["image_id"])  # ids stay text
    assert ds.table["age"].iloc[0] == 41 and np.isnan(ds.table["age"].iloc[1])  # numeric metadata is numeric
    assert ds.table["ita"].iloc[0] == 30.5 and np.isnan(ds.table["ita"].iloc[1])


def test_manifest_path_escape_refused_unless_allowed(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    _img(tmp_path / "outside.png")
    p = _manifest(sub, [{"image_id": "x", "image_path": "../outside.png", "label": 0}])
    with pytest.raises(DataError, match="leaves the manifest's folder"):
        load_manifest(p)
    assert len(load_manifest(p, allow_outside_root=True)) == 1


@pytest.mark.parametrize("rows, match", [
    ([{"image_id": "a", "label": 0}], "missing required column"),
    ([{"image_id": "a", "image_path": "a.png", "label": 2}], "label must be 0/1"),
    ([{"image_id": "a", "image_path": "a.png", "label": 0}, {"image_id": "a", "image_path": "a.png", "label": 1}],
     "duplicate image id"),
    ([{"image_id": "a", "image_path": "nope.png", "label": 0}], "not found"),
])
def test_manifest_bad_input(tmp_path, rows, match):
    _img(tmp_path / "a.png")
    with pytest.raises(DataError, match=match):
        load_manifest(_manifest(tmp_path, rows))


def test_bad_csv_files(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_manifest(tmp_path / "empty.csv")
    (tmp_path / "latin.csv").write_bytes("image_id,image_path,label\n\xe9,x,0\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_manifest(tmp_path / "latin.csv")
    with pytest.raises(DataError, match="not found"):
        load_manifest(tmp_path / "nope.csv")


def test_dataset_validation_and_hash(tmp_path):
    t = pd.DataFrame({"image_id": ["a", "b"], "image_path": ["/x/a.png", "/y/b.png"], "label": [0, 1]})
    ds = AuditDataset(t)
    moved = AuditDataset(t.assign(image_path=["/other/a.png", "/other/b.png"]).iloc[::-1])
    assert ds.manifest_hash() == moved.manifest_hash()  # independent of location and row order
    assert ds.manifest_hash() != AuditDataset(t.assign(label=[1, 1])).manifest_hash()
    with pytest.raises(DataError, match="labels must be 0"):
        AuditDataset(t.assign(label=[0, 3]))
    assert list(ds.subset(["b"]).ids) == ["b"]
    with pytest.raises(DataError, match="no image id"):
        ds.subset(["zzz"])


def test_parse_label():
    assert [parse_label(v) for v in ("0", "1", "BENIGN", " malignant ", 1, 0.0)] == [0, 1, 0, 1, 1, 0]
    assert parse_label("indeterminate") is None and parse_label(float("nan")) is None
