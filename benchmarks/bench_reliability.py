"""Test-retest reliability of ITA on repeated photos, and Fitzpatrick concordance, each beside
naive baselines measured on the same images.

Usage: ``python benchmarks/bench_reliability.py [--n-jobs 2] [--n-boot 2000] [--skip-ham]``;
writes ``benchmarks/results/reliability.json``.

Measures (per image): skinaudit's ITA (default settings: dataset-level cast step, the whole
set as one cast group) with the dataset's masks and with masks estimated by the learned segmenter
and by the classical rules; its L*; a naive
baseline, the plain CIE ITA of the median L* and b* of a 20-pixel image border; and that
border's L*. Sets: pad-ufes20 (432 smartphone photos, 63 lesions with 2-3 photos, human
Fitzpatrick types) and ham10000-repeats-200 (4,501 dermoscopy images of 1,956 lesions).
Statistics from :mod:`skinaudit.skintone.reliability` and :mod:`skinaudit.skintone.concordance`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.color import rgb2lab

from skinaudit import data, skintone as st
from skinaudit.imageio import read_image
from skinaudit.lesion import LesionParams
from skinaudit.skintone.concordance import fitzpatrick_concordance
from skinaudit.skintone.reliability import flip_rate, icc1, icc1_interval, icc_reading

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results"
BORDER = 20


def border_lab(path) -> tuple[float, float]:
    """Median L*, b* of a ``BORDER``-pixel frame of the image (the naive baseline)."""
    lab = rgb2lab(read_image(path))
    k = BORDER
    frame = np.concatenate([lab[:k].reshape(-1, 3), lab[-k:].reshape(-1, 3), lab[k:-k, :k].reshape(-1, 3),
                            lab[k:-k, -k:].reshape(-1, 3)])
    return float(np.median(frame[:, 0])), float(np.median(frame[:, 2]))


def measures(ds, *, n_jobs, with_given):
    t0 = time.time()
    rows = pd.DataFrame({"image_id": ds.table["image_id"].astype(str)})
    # estimated masks: the learned segmenter (the default with torch, #19) and the classical rules
    runs = [("learned mask", False, "learned"), ("classical mask", False, "classical")]
    runs += [("given mask", True, "auto")] if with_given else []
    for name, given, segmenter in runs:
        insp = st.inspect_dataset(ds, n_jobs=n_jobs, use_given_masks=given,
                                  lesion_params=LesionParams(segmenter=segmenter))
        rows[f"skinaudit ITA, {name}"] = insp["ita"].to_numpy(float)
        rows[f"skinaudit L*, {name}"] = insp["L"].to_numpy(float)
    lb = np.array([border_lab(p) for p in ds.table["image_path"]])
    rows["naive border ITA"] = st.ita_degrees(lb[:, 0], lb[:, 1])
    rows["naive border L*"] = lb[:, 0]
    return rows, time.time() - t0


def reliability(rows, clusters, *, n_boot):
    out = {}
    for col in rows.columns.drop("image_id"):
        x = rows[col].to_numpy(float)
        est = icc1(x, clusters)
        ci = icc1_interval(x, clusters, n_boot=n_boot, random_state=0)
        entry = {"icc": est["icc"], "icc_ci": [ci["low"], ci["high"]], "n_lesions": est["n_lesions"],
                 "n_images": est["n_images"], "reading": icc_reading(est["icc"])}
        if "ITA" in col:
            groups = np.where(np.isfinite(x), np.where(x > 28, "light", "dark"), "unknown")
            entry.update({k: v for k, v in flip_rate(groups, clusters).items() if k in ("flip_rate", "n_pairs")})
        out[col] = entry
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--skip-ham", action="store_true")
    args = ap.parse_args()
    result = {"border_px": BORDER, "n_boot": args.n_boot, "seed": 0, "sets": {}}
    pad = DATA / "pad-ufes20"
    ds = data.load_isic_archive(pad / "labels.csv", pad / "images", masks=pad / "masks", mask_pattern="{id}_mask.png")
    rows, secs = measures(ds, n_jobs=args.n_jobs, with_given=True)
    lesions = ds.table["lesion_id"].to_numpy()
    fitz = ds.table["fitspatrick"].to_numpy()
    conc = {}
    for name in ("given mask", "learned mask", "classical mask"):
        c = fitzpatrick_concordance(rows[f"skinaudit ITA, {name}"], rows[f"skinaudit L*, {name}"], fitz,
                                    column="fitspatrick")
        conc[f"skinaudit, {name}"] = {k: c[k] for k in ("n_images", "spearman_ita", "spearman_lightness",
                                                         "kappa_linear", "exact_agreement", "within_one")}
    c = fitzpatrick_concordance(rows["naive border ITA"], rows["naive border L*"], fitz, column="fitspatrick")
    conc["naive border"] = {k: c[k] for k in ("n_images", "spearman_ita", "spearman_lightness", "kappa_linear",
                                              "exact_agreement", "within_one")}
    result["sets"]["pad-ufes20"] = {"n_images": len(ds), "seconds": round(secs, 1),
                                    "reliability (lesion_id)": reliability(rows, lesions, n_boot=args.n_boot),
                                    "fitzpatrick concordance": conc}
    print(json.dumps(result["sets"]["pad-ufes20"], indent=1))
    if not args.skip_ham:
        ham = DATA / "ham10000-repeats-200"
        ds = data.load_isic(ham / "images", ham / "HAM10000_metadata.csv", masks=ham / "masks")
        rows, secs = measures(ds, n_jobs=args.n_jobs, with_given=True)
        result["sets"]["ham10000-repeats-200"] = {
            "n_images": len(ds), "seconds": round(secs, 1),
            "reliability (lesion_id)": reliability(rows, ds.table["lesion_id"].to_numpy(), n_boot=args.n_boot)}
        print(json.dumps(result["sets"]["ham10000-repeats-200"], indent=1))
    OUT.mkdir(exist_ok=True)
    (OUT / "reliability.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
