"""Speed of the report for an ISIC-2018-test-sized audit: figures, context, HTML, PDF.

Data: synthetic predictions the size and make-up of the ISIC 2018 Task 3 test set (1,512
images, 19% malignant, two ITA groups), with the fairness and recalibration sections built by
skinaudit.fairness (so the tables are the real layouts). Seeded.

    .venv/bin/python benchmarks/bench_report.py [--repeats 3] [--out benchmarks/results/bench_report.json]

Writes JSON: wall-clock medians and minima over the repeats (the machine is shared: the minimum
is the least disturbed run), the page count and the file sizes.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skinaudit import report
from skinaudit.audit import AuditConfig, AuditResult
from skinaudit.fairness import fairness_report, recalibrate
from skinaudit.metrics import binary_metrics


def make_result(n: int = 1512, seed: int = 0) -> AuditResult:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.19).astype(int)
    s = np.clip(rng.beta(2, 5, n) + 0.35 * y, 0, 1)
    ita = rng.normal(38, 10, n)
    g = np.where(ita > 28, "light", "dark")
    pred = pd.DataFrame({"image_id": [f"ISIC_{i:07d}" for i in range(n)], "label": y, "score": s,
                         "prediction": (s >= 0.5).astype(int), "ita": ita, "group": g})
    cal = rng.random(n) < 0.3
    sections = {
        "overall": binary_metrics(y, s, threshold=0.5),
        "fairness": fairness_report(y, s, g, threshold=0.5, n_boot=2000, random_state=seed).section,
        "recalibration": recalibrate(y[cal], s[cal], g[cal], y[~cal], s[~cal], g[~cal], threshold=0.5,
                                     gamma=0.85, n_boot=500, random_state=seed).section,
    }
    dataset = {"name": "synthetic ISIC 2018 test", "n": n, "malignant": int(y.sum()), "benign": int(n - y.sum()),
               "with_mask": 0, "excluded": 0, "manifest_sha256": "0" * 64, "source": "synthetic"}
    model = {"name": "synthetic", "adapter": "PrecomputedScores", "path": None, "sha256": None}
    return AuditResult(config=AuditConfig(threshold=0.5, seed=seed), dataset=dataset, model=model,
                       predictions=pred, sections=sections)


def _time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_report.json"))
    args = ap.parse_args()
    result = make_result()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        html_t, html = _time(lambda: report.render_html(result, out_dir=tmp / "h"), args.repeats)
        pdf_t, _ = _time(lambda: report.html_to_pdf(html, tmp / "r.pdf"), args.repeats)
        full_t, paths = _time(lambda: report.write_report(result, tmp / "full"), args.repeats)
        pages = None
        if shutil.which("pdfinfo"):
            info = subprocess.run(["pdfinfo", str(paths["pdf"])], capture_output=True, text=True, check=True).stdout
            pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
        out = {"benchmark": "report", "n_images": len(result.predictions), "python": platform.python_version(),
               "render_html_incl_figures": html_t, "html_to_pdf": pdf_t, "write_report_html_pdf_figures": full_t,
               "html_bytes": paths["html"].stat().st_size, "pdf_bytes": paths["pdf"].stat().st_size,
               "pdf_pages": pages}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
