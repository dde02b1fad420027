"""Speed of image analysis: ms per 600x450 image on one core (segmentation + artifacts + ITA,
with the default segmenter and with the classical one), and ``inspect_dataset`` of the 1,512-image ISIC 2018 Task 3 test set on 2 processes.

Usage: ``python benchmarks/bench_speed.py``; writes ``benchmarks/results/speed.json``. The
machine is shared: the load average at start and end is recorded with the timings.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from skinaudit import lesion as le
from skinaudit import skintone as st
from skinaudit.data import AuditDataset
from skinaudit.imageio import read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results"


def per_image_ms(images, fn, repeats=7):
    """Each image timed ``repeats`` times (passes over the whole list, so a burst of load on
    this shared host hits one pass, not one image's every repeat). Headline: the mean over
    images of each image's best time (timeit's rule: the minimum is the cost of the code, the
    rest is other processes); also the mean of each image's median, and the whole-pass means."""
    fn(images[0])
    t = np.full((len(images), repeats), np.inf)
    for r in range(repeats):
        for i, im in enumerate(images):
            t0 = time.perf_counter()
            fn(im)
            t[i, r] = time.perf_counter() - t0
    return {"mean_of_per_image_best": float(t.min(axis=1).mean() * 1000),
            "mean_of_per_image_median": float(np.median(t, axis=1).mean() * 1000),
            "pass_means": [float(v) for v in t.mean(axis=0) * 1000], "repeats": repeats}


def main():
    res = {"load_average_start": os.getloadavg()}
    paths = sorted((DATA / "isic-uda1" / "images").glob("*.jpg"))
    images = [im for im in (read_image(p) for p in paths[:60]) if im.shape[:2] == (450, 600)][:30]
    res["n_images_600x450"] = len(images)
    # the defaults (the learned segmenter when torch is installed, since #19) and the classical rules
    res["segmenter_default"] = le.methods_used()["segmenter"]
    res["analyse_image_ms"] = per_image_ms(images, st.analyse_image)
    classical = le.LesionParams(segmenter="classical")
    res["analyse_image_classical_ms"] = per_image_ms(images, lambda im: st.analyse_image(im, lesion_params=classical))
    res["segment_lesion_ms"] = per_image_ms(images, le.segment_lesion)
    res["detect_artifacts_ms"] = per_image_ms(images, le.detect_artifacts)
    test = DATA / "isic2018-task3-test-224" / "images"
    ids = sorted(p.stem for p in test.glob("*.jpg"))
    ds = AuditDataset(pd.DataFrame({"image_id": ids, "label": 0, "image_path": [str(test / f"{i}.jpg") for i in ids]}))
    t0 = time.perf_counter()
    out = st.inspect_dataset(ds, n_jobs=2)
    res["inspect_isic2018_test_2_processes_s"] = time.perf_counter() - t0
    res["inspect_isic2018_test_groups"] = {k: int(v) for k, v in out["group"].value_counts().items()}
    res["inspect_isic2018_test_flags"] = {k: int(v) for k, v in out["flags"].fillna("").str.split(";").explode()
                                          .str.split("(").str[0].replace("", np.nan).dropna().value_counts().items()}
    res["load_average_end"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    OUT.mkdir(exist_ok=True)
    (OUT / "speed.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
