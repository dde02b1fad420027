"""ITA vs human Fitzpatrick types on pad-ufes20 (smartphone photos). Reported as measured.

Usage: ``python benchmarks/bench_fitzpatrick.py``; writes ``benchmarks/results/fitzpatrick_pad_ufes20.json``.
A higher Fitzpatrick type should mean a lower ITA: the expected Spearman is negative.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from skinaudit import skintone as st
from skinaudit.data import AuditDataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pad-ufes20"
OUT = Path(__file__).resolve().parent / "results"


def main():
    lab = pd.read_csv(DATA / "labels.csv")
    table = pd.DataFrame({"image_id": lab["image_id"], "label": 0,
                          "image_path": [str(DATA / "images" / f"{i}.jpg") for i in lab["image_id"]],
                          "mask_path": [str(DATA / "masks" / f"{i}_mask.png") for i in lab["image_id"]]})
    ds = AuditDataset(table, name="pad-ufes20")
    fst = lab["fitspatrick"].to_numpy(dtype=float)
    res = {}
    for name, given in (("given mask", True), ("estimated mask", False)):
        out = st.inspect_dataset(ds, use_given_masks=given, n_jobs=2)
        ita = out["ita"].to_numpy(dtype=float)
        ok = np.isfinite(ita) & np.isfinite(fst)
        okL = np.isfinite(out["L"].to_numpy(dtype=float)) & np.isfinite(fst)
        res[name] = {"n": int(len(ita)), "with_value": int(np.isfinite(ita).sum()),
                     "spearman_ita_vs_fitzpatrick": float(spearmanr(ita[ok], fst[ok]).statistic),
                     "spearman_L_vs_fitzpatrick": float(spearmanr(out["L"].to_numpy(float)[okL], fst[okL]).statistic),
                     "median_ita_by_type": {str(int(k)): float(v) for k, v in
                                            pd.Series(ita[ok]).groupby(fst[ok]).median().items()},
                     "n_by_type": {str(int(k)): int(v) for k, v in pd.Series(fst[ok]).value_counts().items()}}
        print(name, json.dumps(res[name]))
    OUT.mkdir(exist_ok=True)
    (OUT / "fitzpatrick_pad_ufes20.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
