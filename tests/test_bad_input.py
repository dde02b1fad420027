"""Bad input, end to end through `skinaudit run` (issue 8.1).

Each case is either a clear one-line error naming the file and the problem (exit code 2, no
traceback, no output written), or, for a per-image problem, a flagged row with its reason
while the rest of the audit proceeds; `--strict` turns per-image problems into errors.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from skinaudit.cli import app

runner = CliRunner()
FAST = ["--n-boot", "200", "--sensitivity-sample", "0", "--jobs", "1", "--no-report", "--no-explain", "--no-cache"]


def _skin(size=96, seed=0, dark=False):
    rng = np.random.default_rng(seed)
    base = np.array([120, 85, 60] if dark else [215, 170, 150], float)
    img = base + rng.normal(0, 3, (size, size, 3))
    yy, xx = np.mgrid[:size, :size]
    lesion = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2
    img[lesion] = [90, 60, 45]
    return np.clip(img, 0, 255).astype(np.uint8), lesion


@pytest.fixture()
def bed(tmp_path):
    """A manifest of 16 good images (8 light, 8 dark, both labels) plus per-test extras."""
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(16):
        img, mask = _skin(seed=i, dark=i % 2 == 1)
        Image.fromarray(img).save(tmp_path / "img" / f"g{i}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "img" / f"g{i}_m.png")
        rows.append({"image_id": f"g{i}", "image_path": f"img/g{i}.png", "label": (i // 2) % 2,
                     "mask_path": f"img/g{i}_m.png"})
    return tmp_path, rows


def _run(tmp_path, rows, extra=(), scores=None, strict=False):
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    if scores is None:
        rng = np.random.default_rng(0)
        scores = pd.DataFrame({"image_id": [r["image_id"] for r in rows], "score": rng.uniform(0, 1, len(rows))})
    scores.to_csv(tmp_path / "s.csv", index=False)
    args = ["run", "--scores", str(tmp_path / "s.csv"), "--data", "manifest", "--manifest", str(tmp_path / "m.csv"),
            "--out", str(tmp_path / "out"), *FAST, *extra]
    if strict:
        args.append("--strict")
    return runner.invoke(app, args)


def _add(tmp_path, rows, name, writer, *, mask=None, label=1):
    path = tmp_path / "img" / name
    writer(path)
    row = {"image_id": "bad", "image_path": f"img/{name}", "label": label, "mask_path": mask}
    return rows + [row]


def _save_array(arr, **kw):
    return lambda p: Image.fromarray(arr, **kw).save(p)


def _truncated(p):
    img, _ = _skin(200)
    Image.fromarray(img).save(p.with_suffix(".tmp.jpg"))
    data = p.with_suffix(".tmp.jpg").read_bytes()
    p.write_bytes(data[: len(data) // 3])


def _exif_rotated(p):
    img, _ = _skin(96)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img[:, :64]).save(p, exif=exif)


# per-image problems: flagged rows, audit proceeds; --strict -> error
FLAGGED = {
    "truncated jpeg": ("t.jpg", _truncated),
    "zero-byte jpeg": ("z.jpg", lambda p: p.write_bytes(b"")),
    "not an image": ("n.png", lambda p: p.write_text("hello")),
    "tiny image": ("tiny.png", _save_array(np.zeros((20, 20, 3), np.uint8))),
}


@pytest.mark.parametrize("case", sorted(FLAGGED))
def test_per_image_problem_is_flagged_then_strict_errors(bed, case):
    tmp_path, rows = bed
    name, writer = FLAGGED[case]
    rows = _add(tmp_path, rows, name, writer)
    res = _run(tmp_path, rows)
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    bad = pred[pred["image_id"] == "bad"]
    assert len(pred) == 17 and len(bad) == 1
    assert bad["group"].iloc[0] == "unknown" and isinstance(bad["flags"].iloc[0], str) and bad["flags"].iloc[0]
    res = _run(tmp_path, rows, strict=True)
    assert res.exit_code == 2 and name in res.output and "Traceback" not in res.output


CONVERTED = {
    "grayscale": ("gray.png", lambda p: Image.fromarray(_skin()[0]).convert("L").save(p)),
    "rgba": ("rgba.png", lambda p: Image.fromarray(_skin()[0]).convert("RGBA").save(p)),
    "palette": ("pal.png", lambda p: Image.fromarray(_skin()[0]).convert("P").save(p)),
    "cmyk": ("cmyk.jpg", lambda p: Image.fromarray(_skin()[0]).convert("CMYK").save(p)),
    "16-bit png": ("16.png", lambda p: Image.fromarray((np.asarray(Image.fromarray(_skin()[0]).convert("L"),
                                                                   np.uint16) * 257)).save(p)),
    "exif rotated": ("rot.jpg", _exif_rotated),
}


@pytest.mark.parametrize("case", sorted(CONVERTED))
def test_unusual_image_modes_are_converted(bed, case):
    tmp_path, rows = bed
    name, writer = CONVERTED[case]
    res = _run(tmp_path, _add(tmp_path, rows, name, writer), strict=True)
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert "bad" in set(pred["image_id"])


def test_decompression_bomb_is_refused(bed, monkeypatch):
    from skinaudit import imageio

    tmp_path, rows = bed
    monkeypatch.setattr(imageio, "MAX_IMAGE_PIXELS", 96 * 96 - 1)  # every 96 px image is "too big"
    res = _run(tmp_path, rows[:2], strict=True)
    assert res.exit_code == 2 and "decompression bomb" in res.output


MASKS = {
    "mask size mismatch": lambda p: Image.fromarray(np.zeros((50, 50), np.uint8)).save(p),
    "non-binary mask": lambda p: Image.fromarray((np.arange(96 * 96) % 256).reshape(96, 96).astype(np.uint8)).save(p),
    "empty mask": lambda p: Image.fromarray(np.zeros((96, 96), np.uint8)).save(p),
    "all-lesion mask": lambda p: Image.fromarray(np.full((96, 96), 255, np.uint8)).save(p),
}


@pytest.mark.parametrize("case", sorted(MASKS))
def test_mask_problems_are_flagged(bed, case):
    tmp_path, rows = bed
    MASKS[case](tmp_path / "img" / "badmask.png")
    rows = _add(tmp_path, rows, "b.png", _save_array(_skin(seed=99)[0]), mask="img/badmask.png")
    res = _run(tmp_path, rows)
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv").set_index("image_id")
    flags = str(pred.loc["bad", "flags"])
    assert flags and flags != "nan", f"{case}: no flag"
    res = _run(tmp_path, rows, strict=True)
    assert res.exit_code == 2 and "badmask.png" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("mutate, message", [
    (lambda rows, s: (rows, s[s["image_id"] != "g3"]), "no score for 1 image"),
    (lambda rows, s: (rows, pd.concat([s, s.iloc[:1]])), "duplicate image id"),
    (lambda rows, s: (rows, s.assign(score=np.where(s["image_id"] == "g1", np.nan, s["score"]))), "finite"),
    (lambda rows, s: (rows, s.assign(score=np.where(s["image_id"] == "g1", np.inf, s["score"]))), "finite"),
    (lambda rows, s: (rows, s.assign(score=np.where(s["image_id"] == "g1", 1.5, s["score"]))), "finite"),
    (lambda rows, s: (rows + [dict(rows[0], image_id="g0")], s), "duplicate image id"),
    (lambda rows, s: ([dict(r, label=2) if r["image_id"] == "g1" else r for r in rows], s), "label must be 0/1"),
    (lambda rows, s: ([dict(r, image_path="../../etc/passwd") if r["image_id"] == "g1" else r for r in rows], s),
     "leaves the manifest's folder"),
])
def test_dataset_level_errors(bed, mutate, message):
    tmp_path, rows = bed
    scores = pd.DataFrame({"image_id": [r["image_id"] for r in rows], "score": np.linspace(0.05, 0.95, len(rows))})
    rows, scores = mutate(rows, scores)
    res = _run(tmp_path, rows, scores=scores)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_single_class_dataset_reports_undefined_metrics(bed):
    tmp_path, rows = bed
    rows = [dict(r, label=0) for r in rows]
    res = _run(tmp_path, rows)
    assert res.exit_code == 0, res.output
    overall = json.loads((tmp_path / "out" / "metrics.json").read_text())["overall"]
    assert overall["auc"] is None and overall["recall"] is None  # NaN -> null, never 0


def test_single_group_dataset_says_why_no_fairness(bed):
    tmp_path, rows = bed
    rows = [r for i, r in enumerate(rows) if i % 2 == 0]  # light skin only
    res = _run(tmp_path, rows)
    assert res.exit_code == 0, res.output
    fairness = json.loads((tmp_path / "out" / "metrics.json").read_text())["fairness"]
    assert fairness["available"] is False and "two ITA groups" in fairness["reason"]


def test_unicode_and_html_in_ids_and_paths(bed):
    tmp_path, rows = bed
    name = "été <b>x&amp;.png"
    img, _ = _skin(seed=5)
    Image.fromarray(img).save(tmp_path / "img" / name)
    rows = rows + [{"image_id": "<script>alert(1)</script>é", "image_path": f"img/{name}", "label": 1,
                    "mask_path": None}]
    res = _run(tmp_path, rows)
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert "<script>alert(1)</script>é" in set(pred["image_id"])
