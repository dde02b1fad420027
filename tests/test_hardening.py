"""Interruption, the per-image cache, and determinism."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from skinaudit.audit import AuditConfig, run_audit
from skinaudit.cache import ResultCache
from skinaudit.report import write_audit

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def scripted_model(tmp_path_factory):
    from skinaudit.models import build_torchvision_model

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("model") / "m.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(build_torchvision_model("resnet18", num_outputs=2).eval()), str(path))
    return path


FAST = AuditConfig(n_boot=200, sensitivity_sample=0, n_jobs=1)


def test_cache_hits_and_never_stale(phantom_dataset, scripted_model, tmp_path):
    from skinaudit.models import load_model

    ds = phantom_dataset.head(6)
    cache = ResultCache(tmp_path / "cache")
    model = load_model(scripted_model, image_size=64)
    first = run_audit(model, ds, FAST, cache=cache)
    assert cache.stats == {"score": {"hits": 0, "misses": 6}, "inspect": {"hits": 0, "misses": 6}}
    cache.reset_stats()
    second = run_audit(model, ds, FAST, cache=cache)
    assert cache.stats == {"score": {"hits": 6, "misses": 0}, "inspect": {"hits": 6, "misses": 0}}
    assert first.to_json() == second.to_json()
    # Change one image's bytes: its entries must not be served.
    table = ds.table.copy()
    changed = tmp_path / "changed.png"
    img = np.asarray(Image.open(table.loc[0, "image_path"])).copy()
    img[:20] = 0
    Image.fromarray(img).save(changed)
    table.loc[0, "image_path"] = str(changed)
    from skinaudit.data import AuditDataset

    cache.reset_stats()
    third = run_audit(model, AuditDataset(table), FAST, cache=cache)
    assert cache.stats == {"score": {"hits": 5, "misses": 1}, "inspect": {"hits": 5, "misses": 1}}
    assert third.predictions["score"].iloc[0] != first.predictions["score"].iloc[0]
    # Change a model parameter (input size): every score key differs, skin tone is reused.
    cache.reset_stats()
    run_audit(load_model(scripted_model, image_size=96), ds, FAST, cache=cache)
    assert cache.stats == {"score": {"hits": 0, "misses": 6}, "inspect": {"hits": 6, "misses": 0}}
    # Change a skin-tone parameter (the scheme): every inspect key differs.
    cache.reset_stats()
    run_audit(load_model(scripted_model, image_size=96), ds, dataclasses.replace(FAST, scheme="del_bino"),
              cache=cache)
    assert cache.stats["inspect"] == {"hits": 0, "misses": 6}
    # Change the image-analysis code (an upgrade without a version bump): skin-tone rows are
    # recomputed, scores (whose code did not change) are reused.
    import skinaudit.cache as cache_module

    real = cache_module.source_digest

    def edited(modules=None):
        return real(modules) + ("-edited" if modules and "lesion" in modules else "")

    cache_module.source_digest = edited
    try:
        cache.reset_stats()
        run_audit(load_model(scripted_model, image_size=96), ds, FAST, cache=cache)
    finally:
        cache_module.source_digest = real
    assert cache.stats == {"score": {"hits": 6, "misses": 0}, "inspect": {"hits": 0, "misses": 6}}


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    cache = ResultCache(tmp_path)
    key = cache.key("abc", "score", {"p": 1})
    cache.put(key, {"score": 0.25})
    assert cache.get(key)["score"] == 0.25
    next(tmp_path.rglob("*.npz")).write_bytes(b"garbage")
    assert cache.get(key) is None


def test_same_inputs_same_bytes(phantom_dataset, tmp_path):
    from skinaudit.demo import fit_colour_model
    from skinaudit.imageio import read_image

    ds = phantom_dataset
    model = fit_colour_model([read_image(p) for p in ds.image_paths[:20]], ds.labels[:20], seed=0)
    config = dataclasses.replace(FAST, seed=5, n_jobs=2)
    a = run_audit(model, ds, config)
    b = run_audit(model, ds, config)
    write_audit(a, tmp_path / "a")
    write_audit(b, tmp_path / "b")
    assert (tmp_path / "a" / "audit.json").read_bytes() == (tmp_path / "b" / "audit.json").read_bytes()


@pytest.mark.slow
def test_sigterm_mid_run_keeps_previous_outputs(phantom_dataset, scripted_model, tmp_path):
    rows = pd.DataFrame({"image_id": [f"x{i}" for i in range(300)],
                         "image_path": [phantom_dataset.image_paths[i % 10] for i in range(300)],
                         "label": [i % 2 for i in range(300)]})
    manifest = tmp_path / "m.csv"
    rows.to_csv(manifest, index=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text('{"previous": true}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "skinaudit.cli", "run", "--model", str(scripted_model), "--image-size", "384",
         "--data", "manifest", "--manifest", str(manifest), "--allow-outside-root", "--no-cache",
         "--out", str(out), "--force"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    end = time.monotonic() + 60  # mid-run: the staging folder exists, the images are being scored
    while proc.poll() is None and time.monotonic() < end and not any(
            p.name.startswith(".out.partial") for p in tmp_path.iterdir()):
        time.sleep(0.2)
    time.sleep(2.0)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert (out / "metrics.json").read_text() == '{"previous": true}'
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())


def test_cams_cached_and_identical_warm(phantom_dataset, tmp_path):
    from skinaudit.models import build_torchvision_model, load_model

    torch.manual_seed(4)
    torch.save(build_torchvision_model("resnet18", num_outputs=2).state_dict(), tmp_path / "sd.pt")
    model = load_model(tmp_path / "sd.pt", arch="resnet18", image_size=64)
    config = dataclasses.replace(FAST, cam_sample=4, cases_per_kind=1, threshold=0.5)
    cache = ResultCache(tmp_path / "cache")
    ds = phantom_dataset.head(10)
    cold = run_audit(model, ds, config, cache=cache)
    assert cache.stats["cam"]["misses"] > 0
    cache.reset_stats()
    warm = run_audit(model, ds, config, cache=cache)
    assert cache.stats["cam"]["misses"] == 0 and cache.stats["cam"]["hits"] > 0
    assert cold.to_json() == warm.to_json()


def test_source_digest_follows_the_stage_modules(tmp_path):
    from skinaudit.cache import STAGE_CODE, source_digest

    assert source_digest(STAGE_CODE["inspect"]) != source_digest(STAGE_CODE["score"])
    assert source_digest(STAGE_CODE["inspect"]) == source_digest(("lesion", "skintone", "imageio"))
    cache = ResultCache(tmp_path)
    assert cache.key("d", "inspect", {}) != cache.key("d", "ita_variants", {})  # stage name still counts
    assert cache.key("d", "unlisted", {}).startswith("unlisted-")  # whole-package digest, no error
