"""Full-audit speed and memory (issues 6 and 8).

1. The 1,512-image ISIC 2018 Task 3 test set audited from a scores CSV (no CAMs), cold (empty
   per-image cache) and warm (second run, cache filled): wall seconds. Target <= 30 s cold.
2. Peak memory versus the number of images: the same audit (skin tone + statistics, no
   report) on the first 1,500 and on all 5,984 HAM10000 images, each in a fresh process:
   peak RSS of the process and of its image-analysis workers.

The scores are a deterministic function of the labels and a seeded noise (a stand-in
classifier: the benchmark measures the toolkit, not a model).

    python benchmarks/bench_audit.py [--data ../shared/data] [--quick]

Writes benchmarks/results/bench_audit.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _scores_csv(ds, path: Path, seed: int = 0) -> Path:
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = ds.labels
    score = np.clip(0.3 * y + rng.beta(2, 4, len(y)) * 0.7 + 0.1 * rng.standard_normal(len(y)), 0, 1)
    pd.DataFrame({"image_id": ds.ids, "score": score}).to_csv(path, index=False)
    return path


def _one_audit(kind: str, data: str, n: int | None, cache: str, report: bool) -> dict:
    """Run in a child process: one audit, its wall time and peak RSS."""
    import skinaudit as sa
    from skinaudit.models import PrecomputedScores

    root = Path(data)
    if kind == "isic-test":
        ds = sa.load_isic(root / "isic2018-task3-test-224" / "images",
                          root / "isic2018-task3-test-224" / "ISIC2018_Task3_Test_GroundTruth.csv")
    else:
        ds = sa.load_isic(root / "ham10000-224" / "images", root / "ham10000-224" / "HAM10000_metadata.csv")
    if n:
        ds = ds.head(n)
    with tempfile.TemporaryDirectory() as tmp:
        scores = PrecomputedScores.from_csv(_scores_csv(ds, Path(tmp) / "s.csv"))
        t0 = time.perf_counter()
        result = sa.run_audit(scores, ds, sa.AuditConfig(threshold=0.5, n_jobs=2), cache=cache)
        sa.write_audit(result, Path(tmp) / "out", report=report, pdf=report)
        wall = time.perf_counter() - t0
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"n_images": len(ds), "wall_s": round(wall, 2), "peak_rss_mb": round(self_kb / 1024, 1),
            "peak_rss_worker_mb": round(child_kb / 1024, 1), "report": report,
            "groups": {g: r["n"] for g, r in result.sections["groups"]["groups"].items()}}


def _child(kind, data, n, cache, report) -> dict:
    code = ("import json, sys; sys.path.insert(0, %r); from bench_audit import _one_audit; "
            "print(json.dumps(_one_audit(%r, %r, %r, %r, %r)))") % (str(Path(__file__).parent), kind, data, n, cache,
                                                                   report)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--quick", action="store_true", help="skip the 5,984-image memory run")
    args = ap.parse_args(argv)
    out = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as cache:
        out["isic_test_cold"] = _child("isic-test", args.data, None, cache, True)
        out["isic_test_warm"] = _child("isic-test", args.data, None, cache, True)
    with tempfile.TemporaryDirectory() as cache:
        out["memory_1500"] = _child("ham", args.data, 1500, cache, False)
    if not args.quick:
        with tempfile.TemporaryDirectory() as cache:
            out["memory_5984"] = _child("ham", args.data, None, cache, False)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_audit.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
