"""The cast step's assumption measured on phantom populations of known skin colour (#15 item 6).

Usage: ``python benchmarks/bench_cast_bias.py``; writes ``benchmarks/results/cast_bias.json``.
Populations of 40 phantoms each (given lesion masks, texture SD 1.2): light skin with true
b* 6-14 (L* 60-75), intermediate skin with b* 14-22 (L* 50-65), each without a cast and under
the blue dermatoscope cast of :data:`skinaudit.phantoms.CASTS`. For each, the dataset-level cast
step (:func:`skinaudit.skintone.correct_cast`, the population as one acquisition group) with
reference b* 10, 12.5, 15 (default) and 20, and no correction: the shift of the median ITA from the
true median (bias), the median absolute error per image, and the share of images with a group
(coverage).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from skinaudit.phantoms import PhantomSpec, make_phantom
from skinaudit.skintone import ItaParams, analyse_image, correct_cast

OUT = Path(__file__).resolve().parent / "results"
POPULATIONS = {"light, b* 6-14": ((60, 75), (6, 14)), "intermediate, b* 14-22": ((50, 65), (14, 22))}
REFERENCES = (10.0, 12.5, 15.0, 20.0)


def population(name, cast, n=40):
    (l_lo, l_hi), (b_lo, b_hi) = POPULATIONS[name]
    rng = np.random.default_rng(11)
    rows = []
    for i in range(n):
        spec = PhantomSpec(seed=300 + i, skin_L=float(rng.uniform(l_lo, l_hi)), skin_b=float(rng.uniform(b_lo, b_hi)),
                           cast=cast)
        ph = make_phantom(spec)
        row = analyse_image(ph.image, ph.mask)
        row["true"] = ph.truth["ita_true"]
        rows.append(row)
    return pd.DataFrame(rows)


def summary(ita, true):
    ok = np.isfinite(ita)
    return {"median_bias": round(float(np.median(ita[ok]) - np.median(true)), 2) if ok.any() else None,
            "median_abs_error": round(float(np.median(np.abs(ita[ok] - true[ok]))), 2) if ok.any() else None,
            "coverage": round(float(ok.mean()), 3)}


def main() -> dict:
    out = {}
    for name in POPULATIONS:
        for cast in ("none", "blue"):
            t = population(name, cast)
            true = t["true"].to_numpy(float)
            res = {"true_median_ita": round(float(np.median(true)), 2),
                   "measured_median_b": round(float(np.median(t["b"])), 2),
                   "no correction": summary(t["ita"].to_numpy(float), true)}
            for ref in REFERENCES:
                c = correct_cast(t, ItaParams(ita_correction="dataset_reference", reference_b=ref))
                res[f"reference b* {ref:g}"] = {**summary(c["ita"].to_numpy(float), true),
                                                "b_offset": round(float(c["b_offset"].iloc[0]), 2)}
            out[f"{name}, cast {cast}"] = res
    return out


if __name__ == "__main__":
    res = main()
    OUT.mkdir(exist_ok=True)
    (OUT / "cast_bias.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=1))
