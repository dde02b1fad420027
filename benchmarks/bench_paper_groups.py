"""The paper's light/dark split (ITA > 28 vs <= 28) on the ISIC 2018 Task 3 test set, recomputed.

Usage: ``python benchmarks/bench_paper_groups.py``; writes ``benchmarks/results/paper_groups.json``.
Compares skinaudit's default (the one-sided dataset-level cast reference, the test set as one
acquisition group, then b* <= 0 and implausible ITA flagged as unknown), skinaudit without the
cast step, and the plain formula applied to every image (no flags), against the paper's Table 7
(light 864 = 721 benign / 143 malignant; dark 629 = 484 / 145).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from skinaudit import skintone as st
from skinaudit.data import AuditDataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "isic2018-task3-test-224"
OUT = Path(__file__).resolve().parent / "results"


def table(groups, labels):
    ct = pd.crosstab(pd.Series(groups, name="group"), pd.Series(labels, name="label"))
    return {g: {"n": int(ct.loc[g].sum()), "benign": int(ct.loc[g].get(0, 0)), "malignant": int(ct.loc[g].get(1, 0))}
            for g in ct.index}


def main():
    gt = pd.read_csv(DATA / "ISIC2018_Task3_Test_GroundTruth.csv")
    labels = ((gt["MEL"] + gt["BCC"] + gt["AKIEC"]) > 0).astype(int).to_numpy()
    ds = AuditDataset(pd.DataFrame({"image_id": gt["image"], "label": labels,
                                    "image_path": [str(DATA / "images" / f"{i}.jpg") for i in gt["image"]]}))
    raw = st.inspect_dataset(ds, params=st.ItaParams(), n_jobs=2)  # per image, no cast step
    out = st.correct_cast(raw, st.DATASET_ITA)
    b = out["b"].to_numpy(dtype=float)
    plain = st.assign_groups(out["ita_raw"].to_numpy(dtype=float), "binary")
    res = {
        "paper_table7": {"light": {"n": 864, "benign": 721, "malignant": 143},
                         "dark": {"n": 629, "benign": 484, "malignant": 145}},
        "plain_formula_all_images": table(plain, labels),
        "skinaudit_default": table(out["group"].to_numpy(), labels),
        "skinaudit_default_cast": st.cast_summary(out).to_dict(orient="records"),
        "skinaudit_no_cast_correction": table(raw["group"].to_numpy(), labels),
        "b_nonpositive_images": int(np.sum(b <= 0)),
        "plain_dark_with_b_nonpositive": int(np.sum((plain == "dark") & (b <= 0))),
        "del_bino_default": {k: int(v) for k, v in pd.Series(st.assign_groups(out["ita"], "del_bino"))
                             .value_counts().items()},
    }
    print(json.dumps(res, indent=1))
    OUT.mkdir(exist_ok=True)
    (OUT / "paper_groups.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
