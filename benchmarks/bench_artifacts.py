"""Artifact flags vs the human flags of isic-uda1/artifacts.csv (Bissoto et al.), and pad-ufes20 ink.

Usage: ``python benchmarks/bench_artifacts.py``; writes ``benchmarks/results/artifacts.json``.
Thresholds were set looking at the even-numbered rows; both halves are reported.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from skinaudit import lesion as le
from skinaudit.imageio import read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results"
LABELS = Path(__file__).resolve().parent / "labels"


def prf(y, p):
    tp = int((y & p).sum())
    pr = tp / p.sum() if p.sum() else float("nan")
    rc = tp / y.sum() if y.sum() else float("nan")
    f1 = 2 * tp / (p.sum() + y.sum()) if (p.sum() + y.sum()) else float("nan")
    return {"positives": int(y.sum()), "flagged": int(p.sum()), "precision": pr, "recall": rc, "f1": f1}


def main():
    root = DATA / "isic-uda1"
    t = pd.read_csv(root / "artifacts.csv")
    rows = []
    for r in t.itertuples():
        img = read_image(root / "images" / f"{r.isic_id}.jpg")
        _wi, lesion, masks = le.analyse_masks(img)
        rows.append(le.artifact_flags(masks, lesion_mask=lesion))
    P = pd.DataFrame(rows)
    res = {"isic-uda1": {}}
    even = np.arange(len(t)) % 2 == 0
    for k in le.ARTIFACT_NAMES:
        y = t[k].to_numpy().astype(bool)
        p = P[k].to_numpy().astype(bool)
        res["isic-uda1"][k] = {"all": prf(y, p), "even (tuning)": prf(y[even], p[even]),
                               "odd (held out)": prf(y[~even], p[~even])}
        print(k, res["isic-uda1"][k]["all"])
    pad = DATA / "pad-ufes20"
    ids = sorted(p.stem for p in (pad / "images").glob("*.jpg"))
    ink = []
    for i in ids:
        img = read_image(pad / "images" / f"{i}.jpg")
        _wi, lesion, masks = le.analyse_masks(img)
        ink.append((i, bool(le.artifact_flags(masks, lesion_mask=lesion)["ink"])))
    # marker ink labelled by eye (benchmarks/labels/pad_ufes20_marker_ink.csv: contact sheets of
    # all 432 photos in random order, labelled without the detector's output; 'unsure' left out)
    eye = pd.read_csv(LABELS / "pad_ufes20_marker_ink.csv").set_index("image_id")["marker_ink"].reindex(ids)
    flagged = np.array([f for _, f in ink])
    sure = (eye != "unsure").to_numpy()
    y = (eye == "yes").to_numpy()
    half = np.arange(len(ids)) % 2 == 0
    res["pad-ufes20_ink"] = {
        "n": len(ink), "flagged": int(flagged.sum()), "labelled_yes": int(y.sum()), "labelled_unsure": int((~sure).sum()),
        "all": prf(y[sure], flagged[sure]), "even": prf(y[sure & half], flagged[sure & half]),
        "odd": prf(y[sure & ~half], flagged[sure & ~half]),
        "flagged_unsure": int((flagged & ~sure).sum()),
        "labels": "by eye, one project engineer, blind to the detector (benchmarks/labels/pad_ufes20_marker_ink.csv)"}
    print("pad ink", res["pad-ufes20_ink"]["flagged"], len(ink))
    OUT.mkdir(exist_ok=True)
    (OUT / "artifacts.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
