"""Speed of the fairness statistics: 2,000 stratified bootstrap resamples of every metric for
1,512 images in 2 groups (target: <= 2 s), plus the whole fairness section and the bootstrap
of the threshold search.

Data: synthetic, the size and make-up of the ISIC 2018 Task 3 test set (1,512 images, 19%
malignant, 58% / 42% in two ITA groups), continuous scores (every score distinct: the worst
case for the rank counts behind the bootstrap AUC). Seeded.

    .venv/bin/python benchmarks/bench_stats.py [--repeats 5] [--out benchmarks/results/bench_stats.json]

Writes JSON; timings are wall-clock medians and minima over the repeats (the machine is shared:
the minimum is the least disturbed run).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from skinaudit.fairness import fairness_report
from skinaudit.metrics import binary_metrics
from skinaudit.stats import stratified_bootstrap
from skinaudit.thresholds import bootstrap_threshold

HERE = Path(__file__).resolve().parent


def data(n=1512, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.19).astype(int)
    g = np.where(rng.random(n) < 0.58, "light", "dark")
    s = np.clip(rng.normal(0.35 + 0.3 * y - 0.05 * y * (g == "dark"), 0.2), 0, 1)
    return y, s, g


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs_s": times}


def naive_loop(y, s, g, n_boot, seed=0):
    """Reference point: a per-replicate Python loop with scikit-learn's AUC (what the vectorised
    engine replaces)."""
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero((g == name) & (y == lab)) for name in ("dark", "light") for lab in (1, 0)]
    for _ in range(n_boot):
        idx = np.concatenate([st[rng.integers(0, st.size, st.size)] for st in strata])
        for name in ("dark", "light"):
            m = g[idx] == name
            binary_metrics(y[idx][m], s[idx][m], threshold=0.46)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_stats.json"))
    args = ap.parse_args(argv)
    y, s, g = data()
    stratified_bootstrap(y, s, g, threshold=0.46, n_boot=50)   # warm-up (imports, caches)
    naive_n = 100
    res = {
        "what": "2,000 stratified (group x label) bootstrap resamples of AUC, recall, precision, F1, specificity, "
                "FNR, accuracy and TP/FN/TN/FP for 2 groups + overall",
        "data": {"n": int(y.size), "malignant": int(y.sum()), "groups": {k: int((g == k).sum()) for k in ("light", "dark")},
                 "distinct_scores": int(np.unique(s).size), "source": "synthetic, seed 0"},
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_before": os.getloadavg()[0], "python": platform.python_version(),
                    "numpy": np.__version__, "note": "shared machine; timings are noisy"},
        "target_s": 2.0,
        "stratified_bootstrap_2000": timed(
            lambda: stratified_bootstrap(y, s, g, threshold=0.46, n_boot=2000, random_state=0), args.repeats),
        "fairness_report_2000_boot_2000_perm": timed(
            lambda: fairness_report(y, s, g, threshold=0.46, n_boot=2000, random_state=0), max(1, args.repeats // 2)),
        "bootstrap_threshold_1000": timed(
            lambda: bootstrap_threshold(y, s, gamma=0.85, n_boot=1000, random_state=0), max(1, args.repeats // 2)),
        f"naive_python_loop_{naive_n}": timed(lambda: naive_loop(y, s, g, naive_n), 1),
    }
    res["naive_loop_extrapolated_2000_s"] = res[f"naive_python_loop_{naive_n}"]["median_s"] * 2000 / naive_n
    res["meets_target"] = res["stratified_bootstrap_2000"]["median_s"] <= res["target_s"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: (v["median_s"] if isinstance(v, dict) and "median_s" in v else v)
                      for k, v in res.items() if k not in ("data", "machine", "what")}, indent=2))


if __name__ == "__main__":
    main()
