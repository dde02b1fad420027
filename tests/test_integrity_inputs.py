"""Issue #14, inputs: every user mistake on the input paths ends in a one-line error naming the
row, value or path (or a flagged row, or a correct result), never in a traceback."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from skinaudit.cli import app
from skinaudit.data import AuditDataset, load_isic, load_isic_archive, load_manifest
from skinaudit.errors import ConfigError, DataError

runner = CliRunner()
CLASSES = ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
FAST = ["--n-boot", "200", "--sensitivity-sample", "0", "--jobs", "1", "--no-report", "--no-explain", "--no-cache"]


def _img(path, size=(40, 40), value=128):
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def _isic(tmp_path, rows, n_images=3):
    """An ISIC 2018 Task 3 layout: images/ID_i.jpg and a one-hot ground truth (rows: class dicts)."""
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        _img(tmp_path / "images" / f"ID_{i}.jpg")
    gt = pd.DataFrame([{"image": f"ID_{i}", **{c: r.get(c, 0) for c in CLASSES}} for i, r in enumerate(rows)])
    gt.to_csv(tmp_path / "gt.csv", index=False)
    return tmp_path / "images", tmp_path / "gt.csv"


def _manifest(tmp_path, rows, name="m.csv"):
    for r in rows:
        usable = "\0" not in r["image_path"] and len(r["image_path"]) < 200
        if usable and not (tmp_path / r["image_path"]).exists():
            _img(tmp_path / r["image_path"])
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _cli_fails(args, *words):
    """Run the CLI; it must exit 2 with one line naming every word, and no traceback."""
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit), res.output
    line = res.output.strip()
    for w in words:
        assert w in line, (w, line)
    return line


# ------------------------------------------------------------------------------ 1. labels
@pytest.mark.parametrize("bad, shown", [
    ({"MEL": 0.5, "NV": 0.5}, "MEL=0.5, NV=0.5"),
    ({"MEL": 2, "NV": -1}, "MEL=2, NV=-1"),
    ({"MEL": 1, "NV": 1}, "MEL=1, NV=1"),
    ({}, "0 for every class"),
])
def test_isic_onehot_values_must_be_0_or_1(tmp_path, bad, shown):
    images, gt = _isic(tmp_path, [{"NV": 1}, bad, {"BCC": 1}])
    with pytest.raises(DataError, match=r"row 3 \(image 'ID_1'\): every class value must be 0 or 1") as info:
        load_isic(images, gt)
    assert shown in str(info.value)


def test_isic_onehot_accepts_float_spelling(tmp_path):
    images, gt = _isic(tmp_path, [{"NV": "1.0"}, {"MEL": "1.0"}, {"BCC": 1}])
    assert load_isic(images, gt).labels.tolist() == [0, 1, 1]


@pytest.mark.parametrize("column, value, match", [
    ("label", "maybe", r"row 3 \(image 'b'\): the label must be 0/1 or benign/malignant; got 'maybe'"),
    ("label", "2", r"row 3 \(image 'b'\): the label must be 0/1"),
    ("label", "", r"row 3 \(image 'b'\): the label must be 0/1 or benign/malignant; the cell is empty"),
    ("ita", "dark-ish", r"row 3 \(image 'b'\): ita 'dark-ish' is not a finite number"),
    ("ita", "inf", r"row 3 \(image 'b'\): ita 'inf' is not a finite number"),
    ("group", "all", r"row 3 \(image 'b'\): the group name 'all' is reserved"),
])
def test_manifest_bad_cells_name_the_row(tmp_path, column, value, match):
    rows = [{"image_id": i, "image_path": f"{i}.png", "label": "0", "ita": "12.5", "group": "x"} for i in "abc"]
    rows[1][column] = value
    with pytest.raises(DataError, match=match):
        load_manifest(_manifest(tmp_path, rows))


def test_manifest_blank_ita_and_group_are_estimated(tmp_path):
    rows = [{"image_id": "a", "image_path": "a.png", "label": 1, "ita": " ", "group": " "},
            {"image_id": "b", "image_path": "b.png", "label": 0, "ita": "30", "group": " light "}]
    t = load_manifest(_manifest(tmp_path, rows)).table
    assert np.isnan(t["ita"].iloc[0]) and t["ita"].iloc[1] == 30.0
    assert t["group"].tolist() == [None, "light"]


def test_dataset_backstops_for_library_tables():
    t = pd.DataFrame({"image_id": ["a", "b"], "image_path": ["/x/a.png", "/x/b.png"], "label": [0, 1]})
    with pytest.raises(DataError, match="ita column must hold finite numbers.*'b'"):
        AuditDataset(t.assign(ita=[10.0, "dark-ish"]))
    with pytest.raises(DataError, match="group name 'all' is reserved.*'a'"):
        AuditDataset(t.assign(group=["all", "x"]))
    with pytest.raises(DataError, match="image_path of image\\(s\\) 'b' contains a NUL byte"):
        AuditDataset(t.assign(image_path=["/x/a.png", "/x/b\0.png"]))


# ------------------------------------------------------------------------ 5. mask pattern
def _archive(tmp_path, n=3):
    """An isic-archive layout: images/, masks/<id>_segmentation.png and a metadata CSV."""
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "masks").mkdir(exist_ok=True)
    ids = [f"ISIC_{i:07d}" for i in range(n)]
    for i in ids:
        _img(tmp_path / "images" / f"{i}.jpg")
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "masks" / f"{i}_segmentation.png")
    pd.DataFrame({"isic_id": ids, "benign_malignant": ["benign", "malignant", "benign"][:n]}).to_csv(
        tmp_path / "meta.csv", index=False)
    return tmp_path / "meta.csv", tmp_path / "images", tmp_path / "masks"


@pytest.mark.parametrize("pattern, match", [
    ("{id}_{kind}.png", r"has the field\(s\) \{kind\}"),
    ("{id_seg.png", "is malformed"),
    ("{id}_seg.png}", "is malformed"),
    ("{}.png", r"has the field\(s\) \{\}"),
    ("{0}.png", r"has the field\(s\) \{0\}"),
    ("{id.upper}.png", r"has the field\(s\) \{id.upper\}"),
    ("{id!r}.png", r"has the field\(s\) \{id\}"),
    ("mask.png", "must contain '{id}'"),
])
def test_mask_pattern_is_validated(tmp_path, pattern, match):
    meta, images, masks = _archive(tmp_path)
    with pytest.raises(ConfigError, match=match):
        load_isic_archive(meta, images, masks=masks, mask_pattern=pattern)
    gt_images, gt = _isic(tmp_path / "isic", [{"NV": 1}] * 3)
    with pytest.raises(ConfigError, match=match):  # library users get it even without a mask folder
        load_isic(gt_images, gt, mask_pattern=pattern)


def test_mask_pattern_literal_braces_and_cli(tmp_path):
    meta, images, masks = _archive(tmp_path)
    for i in ("ISIC_0000000", "ISIC_0000001", "ISIC_0000002"):
        (masks / f"{i}_segmentation.png").rename(masks / f"{{{i}}}.png")
    ds = load_isic_archive(meta, images, masks=masks, mask_pattern="{{{id}}}.png")
    assert ds.has_masks and ds.mask_paths[0].endswith("{ISIC_0000000}.png")
    pd.DataFrame({"image_id": ds.ids, "score": [0.2, 0.7, 0.4]}).to_csv(tmp_path / "s.csv", index=False)
    for pattern, word in (("{id}_{kind}.png", "{kind}"), ("{id_seg.png", "malformed")):
        _cli_fails(["run", "--scores", tmp_path / "s.csv", "--data", "isic-archive", "--metadata", meta,
                    "--images", images, "--masks", masks, "--mask-pattern", pattern, "--out", tmp_path / "o", *FAST],
                   "mask pattern", word)


# ------------------------------------------------------------- 6. unusable manifest paths
@pytest.mark.parametrize("raw, reason", [
    ("a\0b.png", "embedded null byte"),
    ("x" * 5000 + ".png", "File name too long"),
    ("/".join(["d" * 200] * 30) + "/a.png", "File name too long"),
])
def test_manifest_unusable_path_names_the_row(tmp_path, raw, reason):
    rows = [{"image_id": "a", "image_path": "a.png", "label": 0}, {"image_id": "b", "image_path": raw, "label": 1}]
    path = _manifest(tmp_path, rows)
    with pytest.raises(DataError, match=r"row 3 \(image 'b'\): the image_path .* is not a usable path") as info:
        load_manifest(path)
    assert reason in str(info.value) and len(str(info.value)) < 400
    _cli_fails(["inspect", "--data", "manifest", "--manifest", path, "--out", tmp_path / "o"], "row 3", "'b'")


def test_unusable_mask_name_from_the_pattern(tmp_path):
    meta, images, masks = _archive(tmp_path)
    with pytest.raises(DataError, match="mask name .* of image 'ISIC_0000000' is not a usable path"):
        load_isic_archive(meta, images, masks=masks, mask_pattern="{id}" + "x" * 300 + ".png")


# --------------------------------------------------------------- 11. symlinks out of a folder
def test_isic_symlink_out_of_the_folder(tmp_path):
    images, gt = _isic(tmp_path / "in", [{"NV": 1}, {"MEL": 1}], 2)
    (tmp_path / "elsewhere").mkdir()
    secret = _img(tmp_path / "elsewhere" / "secret.jpg")
    (images / "ID_1.jpg").unlink()
    (images / "ID_1.jpg").symlink_to(secret)
    (images / "ID_0.jpg").rename(images / "real.jpg")
    (images / "ID_0.jpg").symlink_to(images / "real.jpg")  # a link inside the folder is fine
    with pytest.raises(DataError, match=r"image file of 'ID_1' resolves to .*secret.jpg, outside the folder"):
        load_isic(images, gt)
    ds = load_isic(images, gt, allow_outside_root=True)
    assert ds.image_paths[1] == str(secret.resolve())
    pd.DataFrame({"image_id": ds.ids, "score": [0.2, 0.7]}).to_csv(tmp_path / "s.csv", index=False)
    args = ["run", "--scores", tmp_path / "s.csv", "--data", "isic", "--images", images, "--labels", gt,
            "--out", tmp_path / "o", "--no-skin-tone", *FAST]
    _cli_fails(args, "ID_1", "--allow-outside-root")
    res = runner.invoke(app, [str(a) for a in args] + ["--allow-outside-root"])
    assert res.exit_code == 0, res.output


def test_isic_archive_symlinked_mask_out_of_the_folder(tmp_path):
    meta, images, masks = _archive(tmp_path)
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(outside)
    (masks / "ISIC_0000001_segmentation.png").unlink()
    (masks / "ISIC_0000001_segmentation.png").symlink_to(outside)
    with pytest.raises(DataError, match="mask of 'ISIC_0000001' resolves to .*outside the folder"):
        load_isic_archive(meta, images, masks=masks)
    assert load_isic_archive(meta, images, masks=masks, allow_outside_root=True).has_masks
