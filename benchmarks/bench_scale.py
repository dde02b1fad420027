"""Scale (#18): ``skinaudit inspect`` of the 5,984 HAM10000 images, local process pool vs Ray, on
this machine's cores; the driver's peak memory at 500 / 1,500 / all images; a projection for a
400,000-image archive from the measured per-image cost.

Usage: ``python benchmarks/bench_scale.py [--sizes 500,1500,5984] [--jobs 2]``; writes
``benchmarks/results/scale.json``. Each run is a fresh ``skinaudit inspect --no-sensitivity``
process (so Ray's start-up is counted, as a user pays it); the driver's peak resident memory is
its own ``ru_maxrss`` (the workers are other processes). The machine is shared: the load
average at start and end is recorded with the timings, and local and Ray runs alternate so a
burst of load does not land on one executor only.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000-224"
OUT = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
ARCHIVE = 400_000


def _child(args: list[str], rss_file: str) -> None:
    """Run one ``skinaudit`` command in this process, then record this process's peak RSS."""
    from skinaudit.cli import app

    try:
        app(args, standalone_mode=False)
    finally:
        Path(rss_file).write_text(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))  # KiB on Linux


def one_run(executor: str, n: int, jobs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        rss = Path(tmp) / "rss"
        args = ["inspect", "--data", "isic", "--images", str(DATA / "images"), "--labels",
                str(DATA / "HAM10000_metadata.csv"), "--limit", str(n), "--jobs", str(jobs), "--no-sensitivity",
                "--executor", executor, "--out", str(Path(tmp) / "out"), "-q"]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", rss, *args], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{executor} n={n} failed: {proc.stderr[-2000:]}")
        rows = sum(1 for _ in open(Path(tmp) / "out" / "inspect.csv")) - 1
        return {"executor": executor, "n_images": n, "rows": rows, "wall_s": wall,
                "driver_peak_rss_mib": int(rss.read_text()) / 1024}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="500,1500,5984")
    ap.add_argument("--jobs", type=int, default=2)
    opts = ap.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    res = {"load_average_start": os.getloadavg(), "cpu_count": os.cpu_count(), "jobs": opts.jobs,
           "dataset": "ham10000-224 (224x224 JPEG)", "command": "skinaudit inspect --no-sensitivity", "runs": []}
    import ray

    res["ray_version"] = ray.__version__
    big, small = max(sizes), min(sizes)
    # local first, then Ray, at every size; at the largest also Ray first (the load of this shared
    # machine changes over minutes: each order once, the ratio is their mean)
    plan = [(n, ex) for n in sizes for ex in ("local", "ray")] + [(big, "ray"), (big, "local")]
    for n, executor in plan:
        run = one_run(executor, n, opts.jobs)
        run["load_average_after"] = os.getloadavg()
        print(json.dumps(run), flush=True)
        res["runs"].append(run)
    res["load_average_end"] = os.getloadavg()
    by = {}
    for r in res["runs"]:
        by.setdefault((r["executor"], r["n_images"]), []).append(r)
    pairs = {n: [(by[("ray", n)][k]["wall_s"], by[("local", n)][k]["wall_s"]) for k in range(len(by[("ray", n)]))]
             for n in sizes}
    res["ray_overhead_ratio"] = {str(n): sum(r / loc for r, loc in p) / len(p) for n, p in pairs.items()}
    res["ray_overhead_ratio_each_pair"] = {str(n): [r / loc for r, loc in p] for n, p in pairs.items()}
    by = {key: {"wall_s": sum(r["wall_s"] for r in runs) / len(runs),
                "driver_peak_rss_mib": max(r["driver_peak_rss_mib"] for r in runs)} for key, runs in by.items()}
    res["target_ratio"] = 1.25
    per_image, fixed = {}, {}
    for ex in ("local", "ray"):
        # marginal cost per image from the largest and smallest run (start-up cancels out)
        slope = (by[(ex, big)]["wall_s"] - by[(ex, small)]["wall_s"]) / (big - small)
        per_image[ex] = slope
        fixed[ex] = by[(ex, small)]["wall_s"] - slope * small
    res["per_image_s_on_jobs"] = per_image
    res["fixed_s"] = fixed
    res["per_image_cpu_s"] = {ex: v * opts.jobs for ex, v in per_image.items()}
    res["driver_peak_rss_mib"] = {ex: {str(n): by[(ex, n)]["driver_peak_rss_mib"] for n in sizes}
                                  for ex in ("local", "ray")}
    cpu = res["per_image_cpu_s"]["ray"]
    res["projection_400k"] = {
        "images": ARCHIVE,
        "assumption": ("the marginal CPU cost per 224x224 image measured here on Ray, divided evenly over the "
                       "cluster's CPUs; images larger than 224x224 cost more (segmentation and ITA scale with the "
                       "pixels: about 18 ms per 600x450 image on one core, benchmarks/results/speed.json); "
                       "excludes scoring and CAMs (model-bound, on GPU actors)"),
        "cpu_hours": ARCHIVE * cpu / 3600,
        "wall_hours_by_cpus": {str(c): ARCHIVE * cpu / c / 3600 + fixed["ray"] / 3600 for c in (2, 16, 64, 256)},
        "driver_rows_mib": None,
    }
    rss = res["driver_peak_rss_mib"]["ray"]
    growth = (rss[str(big)] - rss[str(small)]) / (big - small)  # MiB per image (rows held by the driver)
    res["projection_400k"]["driver_mib_per_image"] = growth
    res["projection_400k"]["driver_rows_mib"] = growth * ARCHIVE
    OUT.mkdir(exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps({k: res[k] for k in ("ray_overhead_ratio", "per_image_cpu_s", "driver_peak_rss_mib",
                                          "projection_400k")}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(sys.argv[3:], sys.argv[2])
    else:
        main()
