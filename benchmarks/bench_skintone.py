"""ITA against Kinyanjui et al. 2020's published per-image values (ham10000-224).

Usage: ``python benchmarks/bench_skintone.py [--limit N] [--n-jobs 2]``; writes
``benchmarks/results/skintone_ham10000.json``. The first 600 images (sorted by id) were the
development split used to choose defaults; results are reported for it and for the rest.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from skinaudit import skintone as st
from skinaudit.data import AuditDataset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000-224"
OUT = Path(__file__).resolve().parent / "results"

#: Dataset-level cast variants: derived from the per-image rows of "no correction" (the
#: per-image analysis is the same) by skintone.correct_cast; acquisition group = HAM10000's
#: ``dataset`` column (four sources) or the whole set as one group.
CAST_VARIANTS = {
    "default: cast reference b*=15, groups = HAM 'dataset' column": ("dataset", st.DEFAULT_REFERENCE_B),
    "cast reference b*=15, one group (no acquisition column)": (None, st.DEFAULT_REFERENCE_B),
    "cast reference b*=12, groups = 'dataset'": ("dataset", 12.0),
    "cast reference b*=17.5, groups = 'dataset'": ("dataset", 17.5),
    "cast reference b*=20, groups = 'dataset'": ("dataset", 20.0),
}

VARIANTS = {
    "no correction (trimmed median)": st.ItaParams(),
    "plain median": st.ItaParams(statistic="median"),
    "trimmed mean (Groh 2021)": st.ItaParams(statistic="trimmed_mean"),
    "specular correction": st.ItaParams(ita_correction="specular"),
    "shades of gray (whole image)": st.ItaParams(ita_correction="shades_of_gray"),
    "border frame median (naive)": st.ItaParams(method="border", statistic="median"),
    "opencv8 compatibility (reproduces Kinyanjui)": st.ItaParams(lab_scale="opencv8"),
    "plain formula, no flags (paper-compatible)": st.ItaParams(b_min=-np.inf, plausible_range=(-90.0, 90.0)),
    "full margin, no correction (shrink_margin=False)": st.ItaParams(skin_margin="full"),
}


def summarise(est: np.ndarray, raw: np.ndarray, ref: np.ndarray, L: np.ndarray, flags: pd.Series) -> dict:
    ok = np.isfinite(est)
    rho = spearmanr(est[ok], ref[ok]).statistic if ok.sum() > 2 else float("nan")
    implausible_unflagged = int(np.sum(ok & ((est < -60) | (est > 75) | (np.abs(est) > 90))))
    return {
        "n": int(len(ref)), "with_value": int(ok.sum()), "coverage": float(ok.mean()),
        "spearman": float(rho), "bias": float(np.mean(est[ok] - ref[ok])), "mae": float(np.mean(np.abs(est[ok] - ref[ok]))),
        "spearman_raw_all": float(spearmanr(np.nan_to_num(raw, nan=0.0), ref).statistic),
        "spearman_L_only": float(spearmanr(np.nan_to_num(L, nan=0.0), ref).statistic),
        "flag_counts": {k: int(v) for k, v in flags.str.split(";").explode().str.split("(").str[0]
                        .replace("", np.nan).dropna().value_counts().items()},
        "implausible_unflagged": implausible_unflagged,
    }


def by_lesion_fraction(out: pd.DataFrame, ref: np.ndarray) -> list[dict]:
    """Agreement within quintiles of the (estimated) lesion's share of the image, among the
    images with a value: where the skin sample is small, agreement drops."""
    est = out["ita"].to_numpy(dtype=float)
    ok = np.isfinite(est)
    frac = out["lesion_fraction"].to_numpy(dtype=float)
    edges = np.quantile(frac[ok], np.linspace(0, 1, 6))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = ok & (frac >= lo) & (frac <= hi)
        rows.append({"lesion_fraction": [float(lo), float(hi)], "n": int(sel.sum()),
                     "spearman": float(spearmanr(est[sel], ref[sel]).statistic)})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--variants", default="all")
    args = ap.parse_args(argv)
    ref = pd.read_csv(DATA / "skin_tone_reference.csv").dropna(subset=["kinyanjui_ita"]).sort_values("image_id")
    if args.limit:
        ref = ref.head(args.limit)
    meta = pd.read_csv(DATA / "HAM10000_metadata.csv").set_index("image_id")
    table = pd.DataFrame({"image_id": ref["image_id"], "label": 0,
                          "image_path": [str(DATA / "images" / f"{i}.jpg") for i in ref["image_id"]],
                          "dataset": meta["dataset"].reindex(ref["image_id"]).to_numpy()})
    ds = AuditDataset(table, name="ham10000-224")
    dev = np.arange(len(ref)) < 600
    results = {"reference": "Kinyanjui et al. 2020 per-image ITA (skin_tone_reference.csv)",
               "development_split": "first 600 image ids (sorted); defaults chosen there", "variants": {}}
    names = list(VARIANTS) if args.variants == "all" else [n for n in VARIANTS if n.startswith(args.variants)]
    r = ref["kinyanjui_ita"].to_numpy(dtype=float)

    def record(name, out, dt):
        est, raw, L = (out[c].to_numpy(dtype=float) for c in ("ita", "ita_raw", "L"))
        res = {"all": summarise(est, raw, r, L, out["flags"].fillna(""))}
        if (~dev).any():
            res["development"] = summarise(est[dev], raw[dev], r[dev], L[dev], out["flags"].fillna("")[dev])
            res["held_out"] = summarise(est[~dev], raw[~dev], r[~dev], L[~dev], out["flags"].fillna("")[~dev])
        res["seconds"] = dt
        res["groups_binary"] = {k: int(v) for k, v in out["group"].value_counts().items()}
        res["by_lesion_fraction"] = by_lesion_fraction(out, r)
        if "b_offset" in out:
            res["cast"] = st.cast_summary(out).to_dict(orient="records")
        results["variants"][name] = res
        print(name, json.dumps(res["all"]))

    for name in names:
        t0 = time.perf_counter()
        out = st.inspect_dataset(ds, params=VARIANTS[name], n_jobs=args.n_jobs)
        dt = time.perf_counter() - t0
        record(name, out, dt)
        if name.startswith("full margin"):  # the default cast step on top (--skin-margin full)
            params = st.ItaParams(ita_correction="dataset_reference", skin_margin="full")
            t0 = time.perf_counter()
            cast = st.correct_cast(out, params, table["dataset"].to_numpy())
            record("full margin + default cast reference (--skin-margin full)", cast, dt + time.perf_counter() - t0)
        if name.startswith("no correction"):
            for cname, (column, reference_b) in CAST_VARIANTS.items():
                params = st.ItaParams(ita_correction="dataset_reference", reference_b=reference_b)
                t0 = time.perf_counter()
                cast = st.correct_cast(out, params, None if column is None else table[column].to_numpy())
                record(cname, cast, dt + time.perf_counter() - t0)
    OUT.mkdir(exist_ok=True)
    suffix = f"_limit{args.limit}" if args.limit else ""
    (OUT / f"skintone_ham10000{suffix}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
