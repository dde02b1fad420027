"""The must-show of issue #19 through the command line: ``skinaudit inspect`` with its defaults
(learned segmenter and artifact flags when torch is installed) on isic-uda1 and ph2, no dataset
masks given, ``--save-masks DIR``; then the flags of inspect.csv against the human flags of
isic-uda1/artifacts.csv (243 images) and the saved masks against the human masks. Also the wall
time of ``inspect`` on the 1,512 ISIC 2018 test images with ``--segmenter/--artifacts classical``
and with the defaults (2 worker processes, sensitivity table on, as a user runs it).

Usage: ``PYTHONPATH=. python benchmarks/bench_inspect_learned.py [--parts must_show,speed]``;
adds ``inspect_cli`` to ``benchmarks/results/detectors.json``.
"""
from __future__ import annotations

import argparse
import json
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


def inspect(args, out):
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "skinaudit.cli", "inspect", *args, "--out", str(out), "--quiet"],
                         capture_output=True, text=True)
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


def speed(tmp: Path) -> dict:
    root = DATA / "isic2018-task3-test-224"
    base = ["--data", "isic", "--images", str(root / "images"), "--labels",
            str(root / "ISIC2018_Task3_Test_GroundTruth.csv"), "--jobs", "2"]
    res = {}
    for name, extra in (("classical", ["--segmenter", "classical", "--artifacts", "classical"]), ("default", [])):
        secs, _ = inspect([*base, *extra], tmp / f"speed-{name}")
        res[f"{name}_seconds"] = secs
        print(name, secs, flush=True)
    res["note"] = ("wall time of the whole command (1,512 images, 2 workers, sensitivity table on), on the shared "
                   "2-core machine: other jobs ran at the same time, so compare the two rows only")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="must_show,speed")
    a = ap.parse_args()
    path = OUT / "detectors.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    cli = res.setdefault("inspect_cli", {})
    with tempfile.TemporaryDirectory() as d:
        for part in a.parts.split(","):
            cli[part] = must_show(Path(d)) if part == "must_show" else speed(Path(d))
            OUT.mkdir(exist_ok=True)
            path.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
