"""The must-show of issue #19 through the command line: ``skinaudit inspect`` with its defaults
(the learned segmenter when torch is installed, the classical artifact flags) on isic-uda1 and
ph2, no dataset masks given, ``--save-masks DIR``; then the flags of inspect.csv against the human
flags of isic-uda1/artifacts.csv (243 images) and the saved masks against the human masks. Also
the wall time of ``inspect`` on the 1,512 ISIC 2018 test images with the defaults and with
``--segmenter/--artifacts classical`` (2 worker processes, sensitivity table on, as a user runs
it), and of the code before issue #19 ("today" in the issue) given with ``--today DIR``.

Usage: ``PYTHONPATH=. python benchmarks/bench_inspect_learned.py [--parts must_show,speed]
[--today DIR]``; adds ``inspect_cli`` to ``benchmarks/results/detectors.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bench_artifacts import prf
from skinaudit.imageio import read_mask

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results"
FLAGS = ("hair", "ruler", "dark_corner", "gel_bubble", "ink", "gel_border", "patches")


def inspect(args, out, src=None):
    """Wall time and stdout of ``skinaudit inspect`` (of the checkout ``src`` when given)."""
    env = dict(os.environ, PYTHONPATH=str(src)) if src else None
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "skinaudit.cli", "inspect", *args, "--out", str(out), "--quiet"],
                         capture_output=True, text=True, env=env, cwd=src)
    if run.returncode:
        raise RuntimeError(run.stderr[-3000:])
    return time.perf_counter() - t0, run.stdout.strip().splitlines()


def must_show(tmp: Path) -> dict:
    res = {}
    for name, pattern in (("isic-uda1", "{id}_segmentation.png"), ("ph2", "{id}_lesion.png")):
        root = DATA / name
        secs, lines = inspect(["--data", "isic-archive", "--metadata", str(root / "labels.csv"), "--images",
                               str(root / "images"), "--save-masks", str(tmp / f"{name}-masks")], tmp / name)
        table = pd.read_csv(tmp / name / "inspect.csv").set_index("image_id")
        jac = []
        for p in sorted((root / "masks").glob(pattern.format(id="*"))):
            i = p.name[: -len(pattern.format(id=""))]
            saved = np.asarray(Image.open(tmp / f"{name}-masks" / f"{i}.png")) == 255
            truth = read_mask(p, shape=saved.shape)
            u = (saved | truth).sum()
            jac.append((saved & truth).sum() / u if u else 1.0)
        entry = {"seconds": secs, "stdout": lines, "n_images": len(table),
                 "segmenter": table["segmenter"].value_counts().to_dict(),
                 "artifact_detector": table["artifact_detector"].value_counts().to_dict(),
                 "saved_masks_jaccard_mean": float(np.mean(jac)), "n_masks": len(jac)}
        if name == "isic-uda1":
            human = pd.read_csv(root / "artifacts.csv").set_index("isic_id")
            got = table.loc[human.index]
            entry["flags_vs_human"] = {k: prf(human[k].to_numpy().astype(bool), got[k].to_numpy().astype(bool))
                                       for k in FLAGS}
        res[name] = entry
        print(name, json.dumps({k: v for k, v in entry.items() if k != "stdout"}, indent=1), flush=True)
    return res


def speed(tmp: Path, today=None, rounds: int = 2) -> dict:
    """Wall time of inspect on the 1,512 ISIC 2018 test images: the defaults and the classical
    methods of this checkout and, with ``today`` (a checkout of the code before #19, e.g. ``git
    worktree add --detach DIR 25cd140``), that code's defaults; ``rounds`` rounds, interleaved."""
    root = DATA / "isic2018-task3-test-224"
    base = ["--data", "isic", "--images", str(root / "images"), "--labels",
            str(root / "ISIC2018_Task3_Test_GroundTruth.csv"), "--jobs", "2"]
    runs = [("default", [], None), ("classical", ["--segmenter", "classical", "--artifacts", "classical"], None)]
    if today:
        runs.insert(0, ("before_issue_19", [], Path(today).resolve()))
    res = {f"{name}_seconds": [] for name, _, _ in runs}
    for r in range(rounds):
        for name, extra, src in runs:
            secs, _ = inspect([*base, *extra], tmp / f"speed-{name}-{r}", src)
            res[f"{name}_seconds"].append(round(secs, 1))
            print(name, r, f"{secs:.1f} s", flush=True)
    if today:
        res["before_issue_19_code"] = subprocess.run(["git", "-C", str(today), "rev-parse", "--short", "HEAD"],
                                                     capture_output=True, text=True).stdout.strip()
    res["note"] = ("wall time of the whole command (1,512 images, 2 workers, sensitivity table on), rounds "
                   "interleaved on the shared 2-core machine; compare rows of one run only")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="must_show,speed")
    ap.add_argument("--today", default=None, help="a checkout of the code before #19, timed beside this one")
    a = ap.parse_args()
    path = OUT / "detectors.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    cli = res.setdefault("inspect_cli", {})
    with tempfile.TemporaryDirectory() as d:
        for part in a.parts.split(","):
            cli[part] = must_show(Path(d)) if part == "must_show" else speed(Path(d), a.today)
            OUT.mkdir(exist_ok=True)
            path.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
