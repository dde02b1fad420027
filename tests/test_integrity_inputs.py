"""Issue #14, inputs: every user mistake on the input paths ends in a one-line error naming the
row, value or path (or a flagged row, or a correct result), never in a traceback."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

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
    ("ita", "dark-ish", r"row 3 \(image 'b'\): ita 'dark-ish' is not an angle in \[-90, 90\] degrees"),
    ("ita", "inf", r"row 3 \(image 'b'\): ita 'inf' is not an angle"),
    ("ita", "500", r"row 3 \(image 'b'\): ita '500' is not an angle"),
    ("group", "all", r"row 3 \(image 'b'\): the group name 'all' is reserved"),
])
def test_manifest_bad_cells_name_the_row(tmp_path, column, value, match):
    rows = [{"image_id": i, "image_path": f"{i}.png", "label": "0", "ita": "12.5", "group": "x"} for i in "abc"]
    rows[1][column] = value
    with pytest.raises(DataError, match=match):
        load_manifest(_manifest(tmp_path, rows))


def test_empty_image_id_is_refused_with_its_row(tmp_path):
    rows = [{"image_id": i, "image_path": f"{i or 'x'}.png", "label": 0} for i in ("a", "", "c")]
    with pytest.raises(DataError, match=r"m.csv: row 3 \(image ''\): the image_id cell is empty"):
        load_manifest(_manifest(tmp_path, rows))  # was: an image called 'nan'
    images, gt = _isic(tmp_path / "isic", [{"NV": 1}, {"MEL": 1}], 2)
    pd.read_csv(gt).assign(image=["ID_0", None]).to_csv(gt, index=False)
    with pytest.raises(DataError, match=r"row 3 \(image ''\): the image cell is empty"):
        load_isic(images, gt)
    pd.DataFrame({"image_id": ["ID_0", "ID_1"], "dx": ["nv", "melanocytic"]}).to_csv(tmp_path / "ham.csv", index=False)
    with pytest.raises(DataError, match=r"row 3 \(image 'ID_1'\): unknown diagnosis 'melanocytic' in column 'dx'"):
        load_isic(images, tmp_path / "ham.csv")


def test_manifest_blank_ita_and_group_are_estimated(tmp_path):
    rows = [{"image_id": "a", "image_path": "a.png", "label": 1, "ita": " ", "group": " "},
            {"image_id": "b", "image_path": "b.png", "label": 0, "ita": "30", "group": " light "}]
    t = load_manifest(_manifest(tmp_path, rows)).table
    assert np.isnan(t["ita"].iloc[0]) and t["ita"].iloc[1] == 30.0
    assert t["group"].tolist() == [None, "light"]


def test_dataset_backstops_for_library_tables():
    t = pd.DataFrame({"image_id": ["a", "b"], "image_path": ["/x/a.png", "/x/b.png"], "label": [0, 1]})
    with pytest.raises(DataError, match=r"ita column must hold angles in \[-90, 90\] degrees.*'b'"):
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


def test_unusable_path_in_a_library_dataset_is_flagged(tmp_path):
    from skinaudit.errors import ImageError
    from skinaudit.imageio import read_image
    from skinaudit.models import CallableModel, score_dataset

    long = str(tmp_path / ("x" * 300 + ".png"))
    with pytest.raises(ImageError, match=r"not a usable path \(File name too long\)"):
        read_image(long)
    ds = AuditDataset(pd.DataFrame({"image_id": ["a", "b"], "image_path": [str(_img(tmp_path / "a.png")), long],
                                    "label": [0, 1]}))
    scored = score_dataset(CallableModel(lambda images: [0.5] * len(images)), ds)
    assert scored["status"].tolist() == ["ok", "not a usable path (File name too long)"]


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


# ---------------------------------------------------------------- 3. bootstrap replicates
@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """20 phantoms (96 px) and a seeded scores CSV for fast CLI runs."""
    from skinaudit.phantoms import generate_phantoms

    root = tmp_path_factory.mktemp("phantoms")
    ds = generate_phantoms(root, n=20, seed=3, size=96, artifact_rate=0.0)
    rng = np.random.default_rng(0)
    scores = np.clip(0.3 * ds.labels + rng.uniform(0, 0.7, len(ds)), 0, 1)
    pd.DataFrame({"image_id": ds.ids, "score": scores}).to_csv(root / "scores.csv", index=False)
    return ds, root / "scores.csv"


def _run_args(phantoms, out, *extra):
    ds, scores = phantoms
    return ["run", "--scores", scores, "--data", "manifest", "--manifest", ds.source["manifest"], "--out", out,
            *FAST, *extra]


@pytest.mark.parametrize("n_boot, alpha, minimum", [(1, 0.05, 200), (199, 0.05, 200), (999, 0.01, 1000),
                                                     (99, 0.5, 100)])
def test_audit_n_boot_minimum(n_boot, alpha, minimum):
    from skinaudit.config import AuditConfig, min_n_boot

    assert min_n_boot(alpha) == minimum
    with pytest.raises(ConfigError, match=f"'n_boot' parameter must be at least {minimum} at alpha = {alpha:g}.*"
                                          f"beyond each end .*; got {n_boot}"):
        AuditConfig(n_boot=n_boot, alpha=alpha)
    assert AuditConfig(n_boot=minimum, alpha=alpha).n_boot == minimum


def test_saved_audit_with_few_replicates_is_still_read():
    from skinaudit.config import AuditConfig

    saved = AuditConfig().to_dict() | {"n_boot": 50}  # e.g. an audit.json written before the minimum
    assert AuditConfig.from_dict(saved).n_boot == 50
    with pytest.raises(ConfigError, match="n_boot"):
        AuditConfig(**saved)


def test_cli_n_boot_one_is_refused_and_few_replicates_warn(phantoms, tmp_path, caplog):
    line = _cli_fails(_run_args(phantoms, tmp_path / "o") + ["--n-boot", "1"], "'n_boot'", "at least 200", "got 1")
    assert len(line.splitlines()) == 1 and not (tmp_path / "o").exists()
    with caplog.at_level("WARNING", logger="skinaudit.audit"):
        res = runner.invoke(app, [str(a) for a in _run_args(phantoms, tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "n_boot = 200" in caplog.text and "fewer than 1000" in caplog.text


def test_interval_beside_its_estimate_is_said():
    """Three identical groups: every max - min is 0, but its bootstrap replicates are >= 0 and
    mostly > 0, so the percentile interval lies above the estimate; the section says so."""
    from skinaudit.fairness import fairness_report

    y1 = np.r_[np.ones(30, int), np.zeros(30, int)]
    s1 = np.r_[np.linspace(0.2, 0.9, 30), np.linspace(0.05, 0.7, 30)]
    sec = fairness_report(np.tile(y1, 3), np.tile(s1, 3), np.repeat(["a", "b", "c"], 60), threshold=0.5,
                          n_boot=200, random_state=0).section
    spread = sec["max_min"]["recall"]
    assert spread["value"] == 0.0 and spread["boot_low"] > 0.0
    note = [n for n in sec["notes"] if "do not contain their own estimate" in n]
    assert len(note) == 1 and "'recall max - min'" in note[0] and "middle 95% of the bootstrap replicates" in note[0]


# ------------------------------------------------------------------------------ 4. alpha
@pytest.mark.parametrize("alpha", ["0.999", "0.51", "1", "0", "-0.1"])
def test_cli_alpha_out_of_range(phantoms, tmp_path, alpha):
    _cli_fails(_run_args(phantoms, tmp_path / "o") + ["--alpha", alpha], "'alpha'", "(0, 0.5]", f"got {alpha}")


def test_alpha_half_runs(phantoms, tmp_path):
    res = runner.invoke(app, [str(a) for a in _run_args(phantoms, tmp_path / "o") + ["--alpha", "0.5"]])
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------------ 2. calibration file
def _calibration(tmp_path, n=30, repeat=1, seed=1, prefix="VAL"):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(int)
    cal = pd.DataFrame({"image_id": [f"{prefix}_{i}" for i in range(n)], "label": y,
                        "score": np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1).round(4)})
    path = tmp_path / f"cal_{prefix}_{repeat}.csv"
    pd.concat([cal] * repeat).to_csv(path, index=False)
    return path


def test_calibration_with_repeated_rows_is_refused(phantoms, tmp_path):
    from skinaudit.audit import load_calibration

    path = _calibration(tmp_path, repeat=5)
    with pytest.raises(DataError, match=r"30 image id\(s\) appear more than once \('VAL_0', 'VAL_1'.*and 25 more\)"):
        load_calibration(path)
    _cli_fails(_run_args(phantoms, tmp_path / "o") + ["--calibration", path], "appear more than once", "'VAL_0'")
    ok = runner.invoke(app, [str(a) for a in _run_args(phantoms, tmp_path / "o") + ["--calibration",
                                                                                   _calibration(tmp_path)]])
    assert ok.exit_code == 0, ok.output


def test_calibration_on_the_audited_images_is_refused(phantoms, tmp_path):
    from skinaudit.audit import run_audit
    from skinaudit.config import AuditConfig
    from skinaudit.models import PrecomputedScores

    ds, scores = phantoms
    first = tmp_path / "first"
    res = runner.invoke(app, [str(a) for a in _run_args(phantoms, first)])
    assert res.exit_code == 0, res.output
    line = _cli_fails(_run_args(phantoms, tmp_path / "o") + ["--calibration", first / "predictions.csv"],
                      f"shares {len(ds)} of its {len(ds)} image ids", "tuned and reported on the same images")
    assert "Traceback" not in line
    # a partial overlap through the library, with a DataFrame
    cal = pd.read_csv(_calibration(tmp_path)).assign(image_id=lambda d: [*ds.ids[:2], *d["image_id"][2:]])
    with pytest.raises(DataError, match="shares 2 of its 30 image ids"):
        run_audit(PrecomputedScores.from_csv(scores), ds, AuditConfig(n_boot=200, sensitivity_sample=0,
                                                                      skin_tone=False, explain="off"),
                  calibration=cal)


@pytest.mark.parametrize("column, value, match", [
    ("label", "perhaps", r"row 3 \(image 'VAL_1'\): the label must be 0/1"),
    ("score", "1.5", r"row 3 \(image 'VAL_1'\): the score must be a finite probability in \[0, 1\]; got '1.5'"),
    ("group", "all", r"row 3 \(image 'VAL_1'\): the group name 'all' is reserved"),
    ("ita", "dark-ish", r"row 3 \(image 'VAL_1'\): ita 'dark-ish' is not an angle in \[-90, 90\] degrees"),
])
def test_calibration_bad_cells_name_the_row(tmp_path, column, value, match):
    from skinaudit.audit import load_calibration

    df = pd.read_csv(_calibration(tmp_path), dtype=str)
    if column not in df:
        df[column] = "light" if column == "group" else "40"
    df.loc[1, column] = value
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=match):
        load_calibration(tmp_path / "bad.csv")


# ----------------------------------------------------- 12. an audit without skin-tone groups
def test_audit_without_skin_tone_groups(phantoms):
    from skinaudit.audit import run_audit
    from skinaudit.config import AuditConfig
    from skinaudit.models import PrecomputedScores

    ds, scores = phantoms
    config = AuditConfig(n_boot=200, sensitivity_sample=0, skin_tone=False, explain="off", calibration_fraction=0.5)
    res = run_audit(PrecomputedScores.from_csv(scores), ds, config)
    rec = res.sections["recalibration"].to_dict()
    glob = rec["methods"]["global"]
    assert glob["status"] == "ok" and [r["group"] for r in glob["per_group"]] == ["all"]
    assert glob["recall_gap_before"] is None or np.isnan(glob["recall_gap_before"])
    assert res.tables["recalibration"]["group"].tolist() == ["all"]
    assert res.sections["fairness"].available is False


def test_threshold_tables_refuse_all_among_groups():
    from skinaudit.thresholds import evaluate_thresholds

    y, p = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    assert evaluate_thresholds(y, p, ["all"] * 4)["group"].tolist() == ["all"]
    with pytest.raises(DataError, match="'all' names the row of every case"):
        evaluate_thresholds(y, p, ["all", "all", "dark", "dark"])


# ------------------------------------------------------------------- 8. the 100 MP image limit
def _png_header_only(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` grey pixels, with almost no pixel data
    (nothing of that size is ever allocated)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_documented_pixel_limit_is_the_real_one(tmp_path):
    from skinaudit.errors import ImageError
    from skinaudit.imageio import read_image

    # 90 MP (over Pillow's own 89.5 MP warning): not refused as a bomb; it fails only because
    # this file has no pixel data.
    with pytest.raises(ImageError, match="corrupt or truncated") as info:
        read_image(_png_header_only(tmp_path / "90mp.png", 9500, 9474))
    assert "bomb" not in info.value.reason and "limit" not in info.value.reason
    with pytest.raises(ImageError, match=r"10001x10000 = 100,010,000 pixels, over the 100,000,000-pixel limit"):
        read_image(_png_header_only(tmp_path / "100mp.png", 10001, 10000))
    with pytest.raises(ImageError, match="over the 100,000,000-pixel limit, refused as a possible decompression bomb"):
        read_image(_png_header_only(tmp_path / "200mp.png", 20000, 10000))  # Pillow's own error (> 2 x 89.5 MP)


def test_pixel_limit_boundary(tmp_path, monkeypatch):
    from skinaudit import imageio
    from skinaudit.errors import ImageError

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above this, errors above 2000
    monkeypatch.setattr(imageio, "MAX_IMAGE_PIXELS", 40 * 40)
    assert imageio.read_image(_img(tmp_path / "at.png", (40, 40))).shape == (40, 40, 3)  # at the limit: read
    with pytest.raises(ImageError, match="40x41 = 1,640 pixels, over the 1,600-pixel limit"):
        imageio.read_image(_img(tmp_path / "over.png", (41, 40)))


# --------------------------------------------------------------------- 9. random model bytes
def test_random_bytes_are_not_a_model_but_pickles_stay_unsafe(tmp_path):
    pytest.importorskip("torch")
    from skinaudit.errors import ModelError, UnsafeCheckpointError
    from skinaudit.models import load_model

    rnd = tmp_path / "random.bin"
    rnd.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match="not a recognised model file: not TorchScript, not ONNX") as info:
        load_model(rnd, arch="resnet18")
    assert not isinstance(info.value, UnsafeCheckpointError) and "pickle" not in str(info.value)
    classic = tmp_path / "classic.pkl"  # a protocol-0 pickle that would call os.system
    classic.write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    with pytest.raises(UnsafeCheckpointError, match="pickle that would run code"):
        load_model(classic, arch="resnet18")
    _cli_fails(["run", "--model", rnd, "--arch", "resnet18", "--data", "manifest", "--manifest",
                _manifest(tmp_path, [{"image_id": "a", "image_path": "a.png", "label": 0}]), "--out", tmp_path / "o",
                *FAST], "not a recognised model file")


# ---------------------------------------------------------------------- 10. permission denied
def _deny(monkeypatch, target):
    """Make opening ``target`` fail as a file without read permission does."""
    import builtins

    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(target):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


def test_permission_denied_is_not_called_corrupt(tmp_path, monkeypatch):
    from skinaudit.errors import ImageError
    from skinaudit.imageio import read_image
    from skinaudit.models import CallableModel, score_dataset

    rows = [{"image_id": i, "image_path": f"{i}.png", "label": k} for k, i in enumerate("ab")]
    ds = load_manifest(_manifest(tmp_path, rows))
    _deny(monkeypatch, ds.image_paths[1])
    with pytest.raises(ImageError, match=r"b.png: cannot read the file \(Permission denied\)"):
        read_image(ds.image_paths[1])
    model = CallableModel(lambda images: [0.5] * len(images))
    scored = score_dataset(model, ds)
    assert scored["status"].tolist() == ["ok", "cannot read the file (Permission denied)"]
    with pytest.raises(ImageError, match="Permission denied"):
        score_dataset(model, ds, strict=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="running as root: chmod 000 does not stop root reading the file")
def test_permission_denied_real_chmod(tmp_path):
    from skinaudit.errors import ImageError
    from skinaudit.imageio import read_image

    path = _img(tmp_path / "locked.png")
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="Permission denied"):
            read_image(path)
    finally:
        path.chmod(0o644)


# ----------------------------------------------------------------- 7. SOURCE_DATE_EPOCH=yesterday
def test_malformed_source_date_epoch_on_the_command_line(tmp_path):
    """numpy.f2py (imported through scipy) reads SOURCE_DATE_EPOCH at import time: `import
    skinaudit` must survive a malformed value so the CLI can report it in one line."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "yesterday",
           "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "skinaudit.cli", "demo", "--n", "20", "--out", str(tmp_path / "d")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "d").exists()
    assert proc.stderr.strip() == ("skinaudit: error: SOURCE_DATE_EPOCH='yesterday': expected whole seconds since "
                                   "1970-01-01 UTC")


def test_malformed_source_date_epoch_each_command(phantoms, tmp_path, monkeypatch):
    saved = tmp_path / "saved"
    assert runner.invoke(app, [str(a) for a in _run_args(phantoms, saved)]).exit_code == 0
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    ds, scores = phantoms
    with_report = ["run", "--scores", scores, "--data", "manifest", "--manifest", ds.source["manifest"], "--out",
                   tmp_path / "o", "--n-boot", "200", "--sensitivity-sample", "0", "--no-explain", "--no-cache"]
    for args in (with_report,
                 ["demo", "--n", "20", "--out", tmp_path / "d"],
                 ["report", "--from", saved, "--out", tmp_path / "r", "--no-pdf"]):
        _cli_fails(args, "SOURCE_DATE_EPOCH='yesterday'")
    assert not any((tmp_path / d).exists() for d in ("o", "d", "r"))
    from skinaudit._environ import malformed_epoch_hidden

    with malformed_epoch_hidden():
        assert "SOURCE_DATE_EPOCH" not in os.environ
    assert os.environ["SOURCE_DATE_EPOCH"] == "yesterday"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    with malformed_epoch_hidden():
        assert os.environ["SOURCE_DATE_EPOCH"] == "1767225600"


# --------------------------------------------------------- 13. other mistakes on these paths
def test_cli_jobs_beyond_the_images_do_not_fork_idle_processes(phantoms, tmp_path, monkeypatch):
    from skinaudit import executors as skd  # the local process pool (moved from skintone.dataset, #18)

    seen = {}
    real = skd.ProcessPoolExecutor

    def spy(max_workers, **kwargs):  # kwargs: the worker initialiser (one BLAS thread per worker)
        seen["workers"] = max_workers
        return real(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(skd, "ProcessPoolExecutor", spy)  # --jobs 100000 forked 100000 processes
    ds, scores = phantoms
    few = pd.read_csv(ds.source["manifest"]).head(8)  # 8 images (the fewest a pool is used for), not 20
    for rel in [*few["image_path"], *few["mask_path"].dropna()]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(ds.source["manifest"]).parent / rel, tmp_path / rel)
    few.to_csv(tmp_path / "few.csv", index=False)
    pd.read_csv(scores).head(8).to_csv(tmp_path / "few_scores.csv", index=False)
    args = _run_args((ds, tmp_path / "few_scores.csv"), tmp_path / "o")
    args[args.index("--manifest") + 1] = tmp_path / "few.csv"
    args[args.index("--jobs") + 1] = "100000"
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert seen["workers"] == 8


def test_archive_unknown_malignant_class(tmp_path):
    meta, images, _ = _archive(tmp_path)
    pd.DataFrame({"isic_id": [f"ISIC_{i:07d}" for i in range(3)], "diagnosis": ["melanoma", "nevus", "nevus"]}).to_csv(
        meta, index=False)
    assert load_isic_archive(meta, images).labels.tolist() == [1, 0, 0]
    with pytest.raises(ConfigError, match=r"unknown malignant class\(es\) \['XYZ'\]"):  # was: all benign
        load_isic_archive(meta, images, malignant=["XYZ"])


def test_cache_path_that_is_a_file(phantoms, tmp_path, caplog):
    # the cache is an optimisation: a path that cannot hold it warns once and the audit runs without it
    (tmp_path / "afile").write_text("x")
    args = [a for a in _run_args(phantoms, tmp_path / "o") if a != "--no-cache"] + ["--cache", tmp_path / "afile"]
    with caplog.at_level("WARNING", logger="skinaudit.cache"):
        res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    assert "afile is not a folder" in caplog.text and (tmp_path / "afile").read_text() == "x"


def test_unusable_torch_device():
    torch = pytest.importorskip("torch")
    from skinaudit.models import TorchModel

    net = torch.nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="the 'device' parameter 'gpu' cannot be used here"):
        TorchModel(net, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="the 'device' parameter 'cuda' cannot be used here"):
            TorchModel(net, device="cuda")
    assert TorchModel(net, device="cpu").device.type == "cpu"


def test_limit_with_a_scores_csv_of_the_whole_dataset(phantoms, tmp_path):
    ds, scores = phantoms
    res = runner.invoke(app, [str(a) for a in _run_args(phantoms, tmp_path / "o", "--limit", "8")])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "o" / "predictions.csv")
    assert pred["image_id"].tolist() == list(ds.ids[:8])
    table = pd.read_csv(scores)
    assert pred["score"].tolist() == pytest.approx(table.set_index("image_id").loc[pred["image_id"], "score"].tolist())
    # an id the dataset does not have is still refused, --limit or not
    pd.concat([table, pd.DataFrame({"image_id": ["NOT_IN_DATA"], "score": [0.5]})]).to_csv(tmp_path / "s.csv",
                                                                                           index=False)
    res = runner.invoke(app, [str(a) for a in _run_args((ds, tmp_path / "s.csv"), tmp_path / "o2", "--limit", "8")])
    assert res.exit_code == 2 and "1 scored image id(s) are not in the dataset: 'NOT_IN_DATA'" in res.output
