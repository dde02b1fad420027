"""The files an audit writes are never silently wrong or mixed (issue 14): the per-image cache
keyed by content, not by id; one canonical serialisation (cold, warm and uncached runs give the
same bytes); an output folder replaced as a whole or not at all; spreadsheet formulas
neutralised."""
from __future__ import annotations

import csv
import errno
import hashlib
import logging
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import skinaudit as sa
from skinaudit import output_folder
from skinaudit.cache import ResultCache
from skinaudit.cli import app
from skinaudit.errors import ConfigError, OutputError
from skinaudit.output_folder import MARKER, atomic_output_dir
from skinaudit.outputs import neutralise_formulas, restore_formulas

runner = CliRunner()
FAST = sa.AuditConfig(n_boot=200, sensitivity_sample=0, n_jobs=1, explain="off")


# -- helpers ----------------------------------------------------------------------------------
def _copied_manifest(folder: Path, paths: list, ids: list, labels: list) -> Path:
    """A manifest of copies of ``paths`` under ``ids`` (a later id may repeat an earlier path:
    a byte-identical copy under a second id)."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for path, i, y in zip(paths, ids, labels):
        dst = folder / "img" / f"{hashlib.sha1(i.encode()).hexdigest()[:12]}{Path(path).suffix}"
        shutil.copyfile(path, dst)
        rows.append({"image_id": i, "image_path": f"img/{dst.name}", "label": y})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _scores(folder: Path, ids: list, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pd.DataFrame({"image_id": ids, "score": np.round(rng.uniform(size=len(ids)), 4)}).to_csv(
        folder / "scores.csv", index=False)
    return folder / "scores.csv"


def _hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def real_copies(shared_data, tmp_path):
    """14 real ISIC 2018 test images, the first one also under a second id (same bytes)."""
    folder = shared_data("isic2018-task3-test-224")
    gt = pd.read_csv(folder / "ISIC2018_Task3_Test_GroundTruth.csv").sort_values("image").head(14)
    paths = [folder / "images" / f"{i}.jpg" for i in gt["image"]]
    ids, labels = list(gt["image"]), list((gt["MEL"] + gt["BCC"] + gt["AKIEC"]).astype(int))
    manifest = _copied_manifest(tmp_path / "data", [*paths, paths[0]], [*ids, "COPY_OF_FIRST"],
                                [*labels, labels[0]])
    return manifest, [*ids, "COPY_OF_FIRST"]


@pytest.fixture
def phantom_copies(phantom_dataset, tmp_path):
    ids = list(phantom_dataset.ids[:12])
    paths = list(phantom_dataset.image_paths[:12])
    labels = list(phantom_dataset.labels[:12])
    manifest = _copied_manifest(tmp_path / "data", [*paths, paths[3]], [*ids, "twin"], [*labels, labels[3]])
    return manifest, [*ids, "twin"], ids[3]


# -- the cache: content, not ids ----------------------------------------------------------------
def _skin(manifest, cache):
    ds = sa.load_manifest(manifest)
    result = sa.run_audit(sa.PrecomputedScores(pd.Series(0.5, index=ds.ids)), ds, FAST, cache=cache)
    return result, result.tables["skin_tone"].set_index("image_id")


def test_identical_bytes_each_keep_their_row_cold_and_warm(phantom_copies, tmp_path):
    manifest, ids, first = phantom_copies
    cache = ResultCache(tmp_path / "cache")
    for run in ("cold", "warm"):
        result, skin = _skin(manifest, cache)
        assert list(skin.index) == ids, run  # every id once, none twice
        assert skin.loc["twin", "ita"] == skin.loc[first, "ita"] and skin.loc["twin", "group"] != "unknown", run
        assert result.dataset["duplicates"] == {"images": 2, "sets": 1, "ids": [[first, "twin"]]}
        assert list(result.tables["duplicates"]["image_id"]) == [first, "twin"]
    assert cache.stats["inspect"]["misses"] == 12 and cache.stats["inspect"]["hits"] == 12  # one row per content


def test_identical_real_images_cold_warm_and_uncached_give_the_same_bytes(real_copies, tmp_path):
    manifest, ids = real_copies
    scores = _scores(tmp_path, ids)
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    outs = {}
    for run, flags in (("cold", ["--cache", str(tmp_path / "cache")]), ("warm", ["--cache", str(tmp_path / "cache")]),
                       ("uncached", ["--no-cache"])):
        res = runner.invoke(app, ["run", "--data", "manifest", "--manifest", str(manifest), "--scores", str(scores),
                                  "--out", str(tmp_path / run), "--n-boot", "200", "--no-pdf", *flags], env=env)
        assert res.exit_code == 0, res.output
        outs[run] = _hashes(tmp_path / run)
    assert "byte-identical copies" in res.output
    assert outs["cold"] == outs["warm"] == outs["uncached"]
    skin = pd.read_csv(tmp_path / "warm" / "skin_tone.csv").set_index("image_id")
    assert len(skin) == len(ids) and skin.loc["COPY_OF_FIRST", "ita"] == skin.loc[ids[0], "ita"]
    assert skin.loc["COPY_OF_FIRST", "group"] != "unknown"


def test_a_renamed_image_is_served_its_own_numbers(phantom_copies, tmp_path):
    manifest, ids, _ = phantom_copies
    cache = ResultCache(tmp_path / "cache")
    _, cold = _skin(manifest, cache)
    table = pd.read_csv(manifest)
    table.loc[0, "image_id"] = "renamed"
    table.to_csv(manifest, index=False)
    cache.reset_stats()
    _, warm = _skin(manifest, cache)
    assert cache.stats["inspect"]["misses"] == 0
    assert warm.loc["renamed", "ita"] == cold.loc[ids[0], "ita"] and ids[0] not in warm.index


def test_an_entry_swapped_in_under_another_key_is_refused(tmp_path, caplog):
    cache = ResultCache(tmp_path)
    a, b = cache.key("a", "score", {}), cache.key("b", "score", {})
    cache.put(a, {"score": 0.9})
    cache.put(b, {"score": 0.1})
    os.replace(cache._path(a), cache._path(b))  # a valid entry, misplaced
    with caplog.at_level(logging.WARNING):
        assert cache.get(b) is None
    assert "stored under another key" in caplog.text


@pytest.mark.parametrize("damage", ["file", "entry_folder", "unwritable"])
def test_an_unusable_cache_warns_once_and_the_audit_goes_on(phantom_copies, tmp_path, caplog, monkeypatch, damage):
    manifest, ids, _ = phantom_copies
    root = tmp_path / "cache"
    if damage == "file":
        root.write_text("not a folder")
    elif damage == "unwritable":
        def refuse(*a, **k):
            raise PermissionError(errno.EACCES, "Permission denied", str(root))
        monkeypatch.setattr("skinaudit.cache.tempfile.mkstemp", refuse)
    cache = ResultCache(root)
    if damage == "entry_folder":  # a folder where the first entry should be written
        real_put, seen = cache.put, []

        def put(key, value):
            if not seen:
                seen.append(key)
                os.makedirs(cache._path(key))
            real_put(key, value)
        monkeypatch.setattr(cache, "put", put)
    with caplog.at_level(logging.WARNING, logger="skinaudit.cache"):
        _, skin = _skin(manifest, cache)
        _, plain = _skin(manifest, None)
    assert list(skin.index) == ids
    pd.testing.assert_frame_equal(skin, plain)
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1 and cache.disabled


# -- the output folder --------------------------------------------------------------------------
def _run(manifest, scores, out, *extra, env=None):
    return runner.invoke(app, ["run", "--data", "manifest", "--manifest", str(manifest), "--scores", str(scores),
                               "--out", str(out), "--n-boot", "200", "--no-report", "--sensitivity-sample", "0",
                               *extra], env=env)


@pytest.fixture
def small(phantom_dataset, tmp_path):
    ids = list(phantom_dataset.ids[:16])
    manifest = _copied_manifest(tmp_path / "data", list(phantom_dataset.image_paths[:16]), ids,
                                list(phantom_dataset.labels[:16]))
    return manifest, _scores(tmp_path, ids), ids


def test_a_new_audit_replaces_the_whole_folder(small, tmp_path):
    manifest, scores, ids = small
    out = tmp_path / "out"
    assert _run(manifest, scores, out, "--report", "--no-pdf").exit_code == 0
    assert (out / "report.html").is_file() and (out / MARKER).is_file()
    res = _run(manifest, scores, out)  # --no-report
    assert res.exit_code == 0, res.output
    assert not (out / "report.html").exists()  # a file the new audit does not write is gone with the old one
    listed = (out / MARKER).read_text().splitlines()[1:]
    assert sorted(listed) == sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                                    if p.is_file() and p.name != MARKER)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_a_folder_with_other_files_is_refused_unless_forced(small, tmp_path):
    manifest, scores, _ = small
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    res = _run(manifest, scores, out)
    assert res.exit_code == 2 and "did not write (notes.txt)" in res.output and "--force" in res.output
    assert len(res.output.strip().splitlines()) == 1 and (out / "notes.txt").read_text() == "my notes"
    res = _run(manifest, scores, out, "--force")
    assert res.exit_code == 0 and not (out / "notes.txt").exists() and (out / "metrics.json").is_file()


def test_the_data_folder_is_never_an_output_folder(small, tmp_path):
    manifest, scores, _ = small
    (manifest.parent / "groups.csv").write_text("image_id,group\n")
    before = _hashes(manifest.parent)
    for extra in ([], ["--force"]):
        res = _run(manifest, scores, manifest.parent, *extra)
        assert res.exit_code == 2 and "holds an input of this run" in res.output, res.output
    assert _hashes(manifest.parent) == before


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(small, tmp_path):
    manifest, scores, _ = small
    out = tmp_path / "out"
    with atomic_output_dir(out):
        res = _run(manifest, scores, out)
        assert res.exit_code == 2 and "another skinaudit run" in res.output and str(os.getpid()) in res.output
    assert _run(manifest, scores, out).exit_code == 0  # released


def test_staging_folders_of_a_killed_run_are_cleaned(small, tmp_path):
    manifest, scores, _ = small
    stale = tmp_path / ".out.partial-99999-abc"
    stale.mkdir()
    (stale / "metrics.json").write_text("{}")
    assert _run(manifest, scores, tmp_path / "out").exit_code == 0
    assert not stale.exists()


def test_the_previous_audit_set_aside_by_a_killed_swap_is_put_back(tmp_path):
    prev = tmp_path / ".out.previous-xyz"
    prev.mkdir()
    (prev / "metrics.json").write_text('{"previous": true}')
    (prev / MARKER).write_text("skinaudit\nmetrics.json\n")
    with pytest.raises(RuntimeError):
        with atomic_output_dir(tmp_path / "out"):
            raise RuntimeError("the audit failed")
    assert (tmp_path / "out" / "metrics.json").read_text() == '{"previous": true}' and not prev.exists()


@pytest.mark.parametrize("where", ["under_a_file", "proc", "read_only"])
def test_an_unwritable_output_folder_fails_in_one_line_before_any_work(small, tmp_path, monkeypatch, where):
    manifest, scores, _ = small
    out = {"under_a_file": tmp_path / "a-file" / "out", "proc": Path("/proc/skinaudit-out"),
           "read_only": tmp_path / "ro" / "out"}[where]
    (tmp_path / "a-file").write_text("x")
    if where == "read_only":
        real = os.open

        def ro(path, *a, **k):
            if str(path).startswith(str(tmp_path / "ro")):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real(path, *a, **k)
        monkeypatch.setattr(output_folder.os, "open", ro)
    called = []
    monkeypatch.setattr("skinaudit.cli.load_dataset", lambda *a, **k: called.append(1))
    res = _run(manifest, scores, out)
    assert res.exit_code == 2 and res.output.startswith("skinaudit: error: ") and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1 and called == []  # before the dataset is even read


def test_a_full_disk_is_one_line_and_the_previous_audit_stays(small, tmp_path, monkeypatch):
    manifest, scores, _ = small
    out = tmp_path / "out"
    assert _run(manifest, scores, out).exit_code == 0
    before = _hashes(out)

    def full(frame, path):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("skinaudit.result.write_csv", full)
    res = _run(manifest, scores, out, "--threshold", "0.3")
    assert res.exit_code == 2 and "No space left on device" in res.output and "untouched" in res.output
    assert len(res.output.strip().splitlines()) == 1 and _hashes(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


@pytest.mark.parametrize("fallback", ["mount_point", "cross_device", "no_exchange"])
def test_the_swap_fallbacks_replace_the_folder_too(small, tmp_path, monkeypatch, fallback):
    manifest, scores, _ = small
    out = tmp_path / "vol"
    assert _run(manifest, tmp_path / "scores.csv", out, "--threshold", "0.3").exit_code == 0
    (out / "skipped.csv").write_text("image_id,reason\nold,old\n")  # as if the earlier audit had written it
    (out / MARKER).write_text((out / MARKER).read_text() + "skipped.csv\n")
    if fallback == "mount_point":
        real = os.path.ismount
        monkeypatch.setattr(output_folder.os.path, "ismount", lambda p: Path(p) == out or real(p))
    elif fallback == "cross_device":
        def exdev(a, b):
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(b))
        monkeypatch.setattr(output_folder, "_exchange", exdev)
    else:
        monkeypatch.setattr(output_folder, "_exchange", lambda a, b: False)
    res = _run(manifest, scores, out)
    assert res.exit_code == 0, res.output
    assert not (out / "skipped.csv").exists() and (out / "metrics.json").is_file()
    assert '"threshold": 0.5' in (out / "metrics.json").read_text()
    assert not [p for p in [*out.iterdir(), *tmp_path.iterdir()] if p.name.startswith((".skinaudit.", ".vol."))]


def test_a_signal_during_the_swap_lands_after_it(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        (tmp / "metrics.json").write_text("old")
    real = output_folder._exchange
    # Python's own SIGINT handler, whatever an earlier test (or a library it loaded) left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def interrupted(a, b):
        signal.raise_signal(signal.SIGINT)  # to this thread; held back until the swap is done
        return real(a, b)
    monkeypatch.setattr(output_folder, "_exchange", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            with atomic_output_dir(out) as tmp:
                (tmp / "metrics.json").write_text("new")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (out / "metrics.json").read_text() == "new" and out in output_folder.committed()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_report_from_the_audit_folder_rerenders_beside_its_files(small, tmp_path):
    manifest, scores, _ = small
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", "--data", "manifest", "--manifest", str(manifest), "--scores", str(scores),
                              "--out", str(out), "--n-boot", "200", "--no-pdf", "--sensitivity-sample", "0"],
                        env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert res.exit_code == 0
    before = _hashes(out)
    res = runner.invoke(app, ["report", "--from", str(out), "--out", str(out), "--no-pdf"],
                        env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert res.exit_code == 0, res.output
    assert _hashes(out) == before


def test_library_write_audit_refuses_a_foreign_folder(phantom_dataset, tmp_path):
    ds = phantom_dataset.head(12)
    result = sa.run_audit(sa.PrecomputedScores(pd.Series(0.5, index=ds.ids)), ds, FAST)
    (tmp_path / "paper.docx").write_text("x")
    with pytest.raises(ConfigError, match="did not write"):
        sa.write_audit(result, tmp_path, report=False)
    sa.write_audit(result, tmp_path, report=False, force=True)
    assert not (tmp_path / "paper.docx").exists()
    with pytest.raises(OutputError):
        with atomic_output_dir(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device")


# -- spreadsheet formulas -----------------------------------------------------------------------
FORMULAS = ['=HYPERLINK("http://x")', "+cmd", "@SUM(1)", "-2+3", "=1+1"]


def test_formula_ids_appear_in_no_csv_as_formulas(phantom_dataset, tmp_path):
    paths = list(phantom_dataset.image_paths[:15])
    ids = [*FORMULAS, *phantom_dataset.ids[5:15]]
    manifest = _copied_manifest(tmp_path / "data", paths, ids, list(phantom_dataset.labels[:15]))
    table = pd.read_csv(manifest)
    table["site"] = ["=cmd|' /C calc'!A0"] * len(table)  # metadata too
    table.to_csv(manifest, index=False)
    scores = _scores(tmp_path, ids)
    out = tmp_path / "out"
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    res = runner.invoke(app, ["run", "--data", "manifest", "--manifest", str(manifest), "--scores", str(scores),
                              "--out", str(out), "--n-boot", "200", "--no-pdf", "--sensitivity-sample", "0"], env=env)
    assert res.exit_code == 0, res.output
    cells = 0
    for path in out.rglob("*.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    cells += 1
                    assert not cell.startswith(("=", "+", "@", "\t", "\r")), (path.name, cell)
                    if cell.startswith("-"):
                        float(cell)  # only a negative number may start with a minus
    assert cells > 100
    pred = pd.read_csv(out / "predictions.csv")
    assert "'=HYPERLINK(\"http://x\")" in set(pred["image_id"])
    saved = sa.AuditResult.read(out)
    assert set(FORMULAS) <= set(saved.predictions["image_id"])  # audit.json keeps the ids as they are
    html = (out / "report.html").read_bytes()
    res = runner.invoke(app, ["report", "--from", str(out), "--out", str(tmp_path / "again"), "--no-pdf"], env=env)
    assert res.exit_code == 0 and (tmp_path / "again" / "report.html").read_bytes() == html


def test_neutralising_formulas_is_undone_exactly():
    frame = pd.DataFrame({"image_id": [*FORMULAS, "'quoted", "plain", None], "x": [-1.5, 2, 3, 4, 5, 6, 7, np.nan],
                          "=col": ["a"] * 8})
    out = neutralise_formulas(frame)
    assert list(out["image_id"][:6]) == ["'" + v for v in [*FORMULAS, "'quoted"]]
    assert list(out.columns) == ["image_id", "x", "'=col"] and out["x"].equals(frame["x"])
    pd.testing.assert_frame_equal(restore_formulas(out), frame)
    assert list(frame["image_id"][:1]) == [FORMULAS[0]]  # the input is left as it was


@pytest.mark.parametrize("scheme", ["del_bino", "10,28,41"])
def test_report_from_disk_is_the_report_of_the_run_for_any_scheme(small, tmp_path, scheme):
    # group names the order table does not know (a scheme's own) keep their order through audit.json
    manifest, scores, _ = small
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    res = runner.invoke(app, ["run", "--data", "manifest", "--manifest", str(manifest), "--scores", str(scores),
                              "--out", str(tmp_path / "a"), "--n-boot", "200", "--no-pdf", "--scheme", scheme,
                              "--min-positives", "0"], env=env)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", "--from", str(tmp_path / "a"), "--out", str(tmp_path / "b"), "--no-pdf"],
                        env=env)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b" / "report.html").read_bytes() == (tmp_path / "a" / "report.html").read_bytes()
