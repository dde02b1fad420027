"""Coverage of the per-image ITA interval on phantoms of known skin colour (#15 item 2).

Usage: ``python benchmarks/bench_ita_uncertainty.py [N]``; writes
``benchmarks/results/ita_uncertainty.json``. N phantoms (default 90): skin L* 40-75, b* 8-20,
texture SD 1.2 / 3 / 5, lesion radius 0.15-0.42, a third with 3 hairs; given lesion masks. Reports
the share whose 95% interval (``ita_low``, ``ita_high``) holds the true ITA, overall and by
texture and lesion size, and the mean interval width.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from skinaudit.phantoms import PhantomSpec, make_phantom
from skinaudit.skintone import add_uncertainty, analyse_image

OUT = Path(__file__).resolve().parent / "results"


def main(n: int = 90) -> dict:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        tex = float(rng.choice([1.2, 3.0, 5.0]))
        rad = float(rng.uniform(0.15, 0.42))
        spec = PhantomSpec(seed=100 + i, skin_L=float(rng.uniform(40, 75)), skin_b=float(rng.uniform(8, 20)),
                           texture_sd=tex, radius=rad, hair=int(rng.choice([0, 0, 3])))
        ph = make_phantom(spec)
        row = analyse_image(ph.image, ph.mask)
        row.update(true=ph.truth["ita_true"], texture_sd=tex, radius=rad, hair=spec.hair)
        rows.append(row)
    t = add_uncertainty(pd.DataFrame(rows))
    t["covered"] = (t["ita_low"] <= t["true"] + 1e-6) & (t["true"] - 1e-6 <= t["ita_high"])
    t["width"] = t["ita_high"] - t["ita_low"]
    t["size"] = pd.cut(t["radius"], [0, 0.25, 0.35, 0.5], labels=["radius<=0.25", "0.25-0.35", ">0.35"])

    def by(col):
        g = t.groupby(col, observed=True)
        return {str(k): {"n": int(len(v)), "coverage": round(float(v["covered"].mean()), 3),
                         "mean_width": round(float(v["width"].mean()), 3),
                         "mean_skin_pixels": int(v["skin_pixels"].mean())} for k, v in g}

    out = {"n": int(len(t)), "covered": int(t["covered"].sum()), "coverage": round(float(t["covered"].mean()), 3),
           "mean_width": round(float(t["width"].mean()), 3), "by_texture_sd": by("texture_sd"),
           "by_lesion_size": by("size"), "by_hair": by("hair"),
           "max_abs_probability_sum_error": float(np.abs(t["p_dark"] + t["p_light"] - 1).max())}
    return out


if __name__ == "__main__":
    res = main(int(sys.argv[1]) if len(sys.argv) > 1 else 90)
    OUT.mkdir(exist_ok=True)
    (OUT / "ita_uncertainty.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
