"""Learned segmenter and artifact detector (skinaudit.learned) beside the classical methods, on
data the networks never saw.

Usage: ``PYTHONPATH=. python benchmarks/bench_detectors.py``; writes
``benchmarks/results/detectors.json``. One torch thread and one BLAS thread throughout.

- Segmentation: Jaccard of the full-size mask (:func:`skinaudit.lesion.segment_lesion`, the mask
  ``inspect --save-masks`` writes) against the human masks of isic-uda1 (456), isic2017-examples
  (98), ph2 (200) and a fixed sample of ham10000-repeats-200 (every 15th image id in sorted
  order: 301 of 4,501), and on synthetic phantoms (known masks). Leakage as in
  ``bench_segmentation.py``: share of the sampled skin pixels (default ITA parameters, estimated
  mask, working size) inside the human lesion mask.
- Artifact flags: F1 per flag against the human flags of the 243 flagged isic-uda1 images
  (Bissoto et al.), and marker ink against the by-eye labels of PAD-UFES-20
  (``benchmarks/labels/pad_ufes20_marker_ink.csv``; 'unsure' left out).
- Speed: ms per image on one core for the learned segmenter at working size plus the artifact
  detector (resampling, colour refinement and post-processing included; the working copy the
  refinement reads is built by the lesion stage anyway and is not timed), and for the whole per-image analysis
  (``analyse_image``) with each method, on isic-uda1 images (600x450).

Nothing here was used to train or tune: the networks were trained, their epoch chosen and their
flag thresholds set on the validation split of isic2018-task1-train-256 (which holds no image of
isic-uda1 or isic2017-examples).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from bench_artifacts import LABELS, prf
from skinaudit import learned
from skinaudit import lesion as le
from skinaudit import skintone as st
from skinaudit.imageio import read_image, read_mask
from skinaudit.lesion.segmentation import segment_working
from skinaudit.phantoms import PhantomSpec, make_phantom

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results"
SETS = {"isic-uda1": "{id}_segmentation.png", "isic2017-examples": "{id}_segmentation.png", "ph2": "{id}_lesion.png",
        "ham10000-repeats-200": "{id}_segmentation.png"}
METHODS = ("learned", "classical")


def jaccard(a, b) -> float:
    u = (a | b).sum()
    return float((a & b).sum() / u) if u else 1.0


def seg_set(name: str, pattern: str, every: int = 1) -> dict:
    root = DATA / name
    ids = sorted(p.name[: -len(pattern.format(id=""))] for p in (root / "masks").glob(pattern.format(id="*")))[::every]
    params = st.ItaParams()
    jac = {m: [] for m in METHODS}
    leak = {m: [] for m in METHODS}
    for i in ids:
        img = read_image(root / "images" / f"{i}.jpg")
        truth = read_mask(root / "masks" / pattern.format(id=i), shape=img.shape[:2])
        for m in METHODS:
            lp = le.LesionParams(segmenter=m)
            jac[m].append(jaccard(le.segment_lesion(img, params=lp), truth))
            _wi, lesion, masks = le.analyse_masks(img, params=lp)
            skin = st.skin_mask(lesion, masks, params=params)
            small = le.resize_mask(truth, skin.shape, conservative=False)
            leak[m].append(float((skin & small).sum() / max(skin.sum(), 1)))
    out = {"n": len(ids), "image_shape_example": list(img.shape)}
    for m in METHODS:
        j, lk = np.array(jac[m]), np.array(leak[m])
        out[m] = {"jaccard_mean": float(j.mean()), "jaccard_median": float(np.median(j)),
                  "jaccard_below_0.5": int((j < 0.5).sum()), "leakage_mean": float(lk.mean()),
                  "leakage_median": float(np.median(lk)), "leakage_over_2pct": int((lk > 0.02).sum())}
    return out


def phantoms(n: int = 24) -> dict:
    jac = {m: [] for m in METHODS}
    for seed in range(n):
        spec = PhantomSpec(seed=seed, hair=3 * (seed % 3), dark_corner=seed % 2 == 0, ruler=seed % 4 == 1,
                           ink=seed % 5 == 2, gel_bubble=2 * (seed % 3 == 0), skin_L=45 + 30 * (seed % 4) / 3)
        ph = make_phantom(spec)
        for m in METHODS:
            jac[m].append(jaccard(le.segment_lesion(ph.image, params=le.LesionParams(segmenter=m)), ph.mask))
    return {"n": n, "spec": "PhantomSpec(seed, hair 0/3/6, dark corner on even seeds, ruler, ink, gel bubbles, "
                              "skin_L 45-75)", **{m: {"jaccard_mean": float(np.mean(jac[m])),
                                                      "jaccard_min": float(np.min(jac[m]))} for m in METHODS}}


def artifacts() -> dict:
    root = DATA / "isic-uda1"
    t = pd.read_csv(root / "artifacts.csv")
    rows = {m: [] for m in METHODS}
    for r in t.itertuples():
        img = read_image(root / "images" / f"{r.isic_id}.jpg")
        rows["learned"].append(learned.artifact_flags(img))
        _wi, lesion, masks = le.analyse_masks(img, params=le.LesionParams(segmenter="classical"))
        rows["classical"].append(le.artifact_flags(masks, lesion_mask=lesion))
    res = {"isic-uda1": {"n": len(t)}}
    for k in le.ARTIFACT_NAMES:
        y = t[k].to_numpy().astype(bool)
        res["isic-uda1"][k] = {m: prf(y, pd.DataFrame(rows[m])[k].to_numpy().astype(bool)) for m in METHODS}
    pad = DATA / "pad-ufes20"
    ids = sorted(p.stem for p in (pad / "images").glob("*.jpg"))
    eye = pd.read_csv(LABELS / "pad_ufes20_marker_ink.csv").set_index("image_id")["marker_ink"].reindex(ids)
    sure = (eye != "unsure").to_numpy()
    y = (eye == "yes").to_numpy()
    flagged = {m: [] for m in METHODS}
    for i in ids:
        img = read_image(pad / "images" / f"{i}.jpg")
        flagged["learned"].append(learned.artifact_flags(img)["ink"])
        _wi, lesion, masks = le.analyse_masks(img, params=le.LesionParams(segmenter="classical"))
        flagged["classical"].append(le.artifact_flags(masks, lesion_mask=lesion)["ink"])
    res["pad-ufes20_ink"] = {"n": len(ids), "labelled_yes": int(y.sum()), "labelled_unsure": int((~sure).sum()),
                             **{m: prf(y[sure], np.array(flagged[m])[sure]) for m in METHODS},
                             "note": "PAD-UFES-20 are smartphone clinical photos: out of the detector's training "
                                     "distribution (dermoscopy only)"}
    return res


def speed(n: int = 60) -> dict:
    from skinaudit.learned import inference as inf

    root = DATA / "isic-uda1"
    imgs = [read_image(p) for p in sorted((root / "images").glob("*.jpg"))[:n]]
    # the lesion stage passes its working copy (built anyway, for the artifact rules and ITA) to the
    # segmenter's colour refinement: built here outside the timed calls
    copies = [le.WorkingImage(im, le.LesionParams()).raw for im in imgs]
    work = [c.shape[:2] for c in copies]
    learned.segment(imgs[0], work[0]), learned.artifact_flags(imgs[0])  # load once

    def per_image(f):
        f(0)
        t0 = time.perf_counter()
        for k in range(len(imgs)):
            f(k)
        return (time.perf_counter() - t0) * 1000 / len(imgs)

    lp = {m: le.LesionParams(segmenter=m) for m in METHODS}
    ap = {m: le.ArtifactParams(detector=m) for m in METHODS}
    return {
        "images": f"first {n} isic-uda1 images ({imgs[0].shape[1]}x{imgs[0].shape[0]})", "threads": 1,
        "learned_segmenter_working_size_ms": per_image(lambda k: learned.segment(imgs[k], work[k], copies[k])),
        "learned_artifacts_ms": per_image(lambda k: learned.artifact_flags(imgs[k])),
        "learned_both_ms": per_image(lambda k: (learned.segment(imgs[k], work[k], copies[k]),
                                                learned.artifact_flags(imgs[k]))),
        "learned_networks_only_ms": per_image(lambda k: (inf._run(inf.load("segmenter")[0], np.zeros((128, 128, 3),
                                                                                                     np.uint8)),
                                                         inf._run(inf.load("artifacts")[0], np.zeros((192, 256, 3),
                                                                                                     np.uint8)))),
        "classical_segment_working_ms": per_image(
            lambda k: segment_working(le.WorkingImage(imgs[k], lp["classical"]), lp["classical"])),
        "analyse_image_learned_ms": per_image(lambda k: st.analyse_image(imgs[k], lesion_params=lp["learned"],
                                                                         artifact_params=ap["learned"])),
        "analyse_image_classical_ms": per_image(lambda k: st.analyse_image(imgs[k], lesion_params=lp["classical"],
                                                                           artifact_params=ap["classical"])),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="speed,phantoms,segmentation,artifacts")
    a = ap.parse_args()
    torch.set_num_threads(1)
    path = OUT / "detectors.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    res["weights"] = {w: learned.weights_version(w) for w in ("segmenter", "artifacts")}
    res["tuning"] = ("networks trained, epoch selected and flag thresholds set on the validation split of "
                     "isic2018-task1-train-256 only; every set here is reported once, untouched")
    with threadpool_limits(limits=1, user_api="blas"):
        for part in a.parts.split(","):
            t0 = time.perf_counter()
            if part == "speed":
                res["speed"] = speed()
            elif part == "phantoms":
                res["phantoms"] = phantoms()
            elif part == "segmentation":
                res["segmentation"] = {name: seg_set(name, pat, 15 if name.startswith("ham") else 1)
                                       for name, pat in SETS.items()}
            elif part == "artifacts":
                res["artifacts"] = artifacts()
            print(part, f"{time.perf_counter() - t0:.0f} s", json.dumps(res.get(part), indent=1)[:3000], flush=True)
            OUT.mkdir(exist_ok=True)
            path.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
