"""Memory flat in the number of images (issue 8) without changing a single output byte.

The resampling engine works in blocks of ``stats._CHUNK_CELLS`` cells; the per-image cache
holds rows as tuples; audit.json / metrics.json are streamed and CSV tables written in blocks.
Each of these must give exactly what the one-shot form gives.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from skinaudit import stats
from skinaudit.audit import AuditConfig, run_audit
from skinaudit.outputs import RowRecords as _RowRecords
from skinaudit.outputs import dump_json as _dump_json
from skinaudit.outputs import write_json as _write_json
from skinaudit.per_image import _frame_from_packed, _packed
from skinaudit.report import write_audit
from skinaudit.cache import ResultCache
from skinaudit.models import PrecomputedScores
from skinaudit.thresholds import bootstrap_threshold


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    s = np.round(np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1), 3)   # rounded: ties
    g = np.array(["dark", "light", "tan"])[rng.integers(0, 3, n)]
    return y, s, g


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (np.ndarray, list, tuple)):
        a, b = np.asarray(a), np.asarray(b)
        return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return a == b or (pd.isna(a) and pd.isna(b))


@pytest.mark.parametrize("cells", [1, 97, 5_000])
def test_block_size_never_changes_the_resampling(monkeypatch, cells):
    y, s, g = _data(400)
    one_shot = {"boot": stats.stratified_bootstrap(y, s, g, threshold=0.5, n_boot=300, random_state=4),
                "perm": stats.permutation_test(y, s, g, "dark", "light", threshold=0.5, n_perm=300, random_state=5),
                "thr": bootstrap_threshold(y, s, n_boot=200, random_state=6)[0].to_dict(orient="list")}
    monkeypatch.setattr(stats, "_CHUNK_CELLS", cells)
    blocks = {"boot": stats.stratified_bootstrap(y, s, g, threshold=0.5, n_boot=300, random_state=4),
              "perm": stats.permutation_test(y, s, g, "dark", "light", threshold=0.5, n_perm=300, random_state=5),
              "thr": bootstrap_threshold(y, s, n_boot=200, random_state=6)[0].to_dict(orient="list")}
    assert _same(one_shot, blocks)


def test_resampling_blocks_are_small():
    # the block bound is what keeps the statistics' memory flat: ~0.5 MB per int64 / float64 matrix
    assert stats._CHUNK_CELLS * 8 <= 1 << 20


def test_packed_rows_build_the_same_frame_as_row_dicts():
    rows = [{"image_id": "a", "ita": 12.5, "group": "dark", "hair": True, "flags": "", "n": 3},
            {"image_id": "b", "ita": None, "group": "unknown", "hair": False, "flags": "x;y", "n": 4},
            {"group": "light", "image_id": "c", "ita": 40.0, "hair": None, "flags": None, "n": 5},  # other order
            {"image_id": "d", "status": "error: unreadable", "ita": None, "group": "unknown"}]       # fewer keys
    shapes = {}
    got = _frame_from_packed([_packed(r, shapes) for r in rows])
    want = pd.DataFrame(rows)
    pd.testing.assert_frame_equal(got, want)
    assert list(got.columns) == list(want.columns) and got.dtypes.equals(want.dtypes)
    assert len(shapes) == 3
    pd.testing.assert_frame_equal(_frame_from_packed([]), pd.DataFrame([]))


def test_row_records_encode_like_the_whole_list(tmp_path):
    frame = pd.DataFrame({"image_id": [f"i{k}" for k in range(2500)], "label": np.arange(2500) % 2,
                          "score": np.linspace(0, 1, 2500), "ita": np.where(np.arange(2500) % 7, 20.0, np.nan)})
    data = {"b": 1, "predictions": frame.to_dict(orient="records"), "a": [1.5, None]}
    _write_json(tmp_path / "x.json", {**{k: v for k, v in data.items() if k != "predictions"},
                                      "predictions": _RowRecords(frame, block=300)})
    assert (tmp_path / "x.json").read_text(encoding="utf-8") == _dump_json(data)
    _write_json(tmp_path / "empty.json", {"predictions": _RowRecords(frame.iloc[:0])})
    assert json.loads((tmp_path / "empty.json").read_text()) == {"predictions": []}


def test_written_files_equal_the_in_memory_forms(phantom_dataset, tmp_path):
    ds = phantom_dataset.head(24)
    rng = np.random.default_rng(1)
    scores = PrecomputedScores(pd.Series(rng.random(len(ds)), index=ds.ids))
    config = AuditConfig(n_boot=200, sensitivity_sample=0, n_jobs=1)
    cold = run_audit(scores, ds, config, cache=ResultCache(tmp_path / "cache"))
    write_audit(cold, tmp_path / "cold", report=False)
    assert (tmp_path / "cold" / "audit.json").read_text(encoding="utf-8") == cold.to_json()
    assert (tmp_path / "cold" / "metrics.json").read_text(encoding="utf-8") == _dump_json(cold.metrics_dict())
    assert (tmp_path / "cold" / "predictions.csv").read_text() == cold.predictions.to_csv(index=False)
    for name, table in cold.tables.items():
        assert (tmp_path / "cold" / f"{name}.csv").read_text() == table.to_csv(index=False)
    warm = run_audit(scores, ds, config, cache=ResultCache(tmp_path / "cache"))
    write_audit(warm, tmp_path / "warm", report=False)
    assert (tmp_path / "warm" / "audit.json").read_bytes() == (tmp_path / "cold" / "audit.json").read_bytes()


def test_cache_paths_are_plain_strings(tmp_path):
    cache = ResultCache(tmp_path / "c")
    key = cache.key("abc", "inspect", {"x": 1})
    assert isinstance(cache._path(key), str)
    assert cache.get(key) is None
    cache.put(key, {"row": json.dumps({"a": 1})})
    assert json.loads(cache.get(key)["row"]) == {"a": 1}
    assert cache.stats == {"inspect": {"hits": 1, "misses": 1}}
