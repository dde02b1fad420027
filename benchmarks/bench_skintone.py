"""ITA against Kinyanjui et al. 2020's published per-image values (ham10000-224), and the
validity summary of skinaudit's ITA.

Usage: ``python benchmarks/bench_skintone.py [--limit N] [--n-jobs 2]``; writes
``benchmarks/results/skintone_ham10000.json``.

``python benchmarks/bench_skintone.py --validity`` writes ``benchmarks/results/skintone_validity.json``
and prints one table: every validity figure of skinaudit's ITA beside a naive baseline and L*
alone measured on the same images: test-retest ICC(1) on repeated photos (PAD-UFES-20,
HAM10000 repeats) and Fitzpatrick concordance on PAD-UFES-20 (from ``bench_reliability.py``),
the cast step's bias on phantom populations of known skin colour (``bench_cast_bias.py``), and
agreement with Kinyanjui's published values (this script; a compatibility check only: those
values behave like a lightness scale). It assembles the JSON those benchmarks wrote; rerun them
first after a change. The first 600 images (sorted by id) were the
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


def validity() -> list[dict]:
    """One row per validity figure: measure, set, skinaudit, naive baseline, L* alone, reading."""
    rel = json.loads((OUT / "reliability.json").read_text())["sets"]
    cast = json.loads((OUT / "cast_bias.json").read_text())
    kin = json.loads((OUT / "skintone_ham10000.json").read_text())["variants"]
    rows = []
    for name, res in rel.items():
        r = res["reliability (lesion_id)"]
        mask = "given mask" if "skinaudit ITA, given mask" in r else "learned mask"
        ours, naive = r[f"skinaudit ITA, {mask}"], r["naive border ITA"]
        rows.append({"measure": f"test-retest ICC(1) [95% CI], {ours['n_lesions']} lesions", "set": name,
                     "skinaudit ITA": f"{ours['icc']:.2f} [{ours['icc_ci'][0]:.2f}, {ours['icc_ci'][1]:.2f}]",
                     "naive border ITA": f"{naive['icc']:.2f} [{naive['icc_ci'][0]:.2f}, {naive['icc_ci'][1]:.2f}]",
                     "L* alone": f"{r[f'skinaudit L*, {mask}']['icc']:.2f}",
                     "reading": "beats the naive baseline" if ours["icc"] > naive["icc"] else
                     "does NOT beat the naive baseline"})
        rows.append({"measure": "share of repeat pairs whose ITA group flips", "set": name,
                     "skinaudit ITA": f"{ours['flip_rate']:.2f}", "naive border ITA": f"{naive['flip_rate']:.2f}",
                     "L* alone": "n/a", "reading": "lower is better"})
        conc = res.get("fitzpatrick concordance") or {}
        if conc:
            ours_c = conc.get("skinaudit, given mask") or next(iter(conc.values()))
            naive_c = next((v for k, v in conc.items() if "naive" in k), {})
            rows.append({"measure": f"Spearman with human Fitzpatrick type, {ours_c['n_images']} images", "set": name,
                         "skinaudit ITA": f"{ours_c['spearman_ita']:.3f}",
                         "naive border ITA": f"{naive_c.get('spearman_ita', float('nan')):.3f}",
                         "L* alone": f"{ours_c['spearman_lightness']:.3f}",
                         "reading": "no estimator tracks the human labels" if abs(ours_c["spearman_ita"]) < 0.1
                         else "tracks the human labels"})
    for pop, res in cast.items():
        rows.append({"measure": f"median ITA bias on phantoms (true median {res['true_median_ita']})",
                     "set": pop, "skinaudit ITA": f"{res['reference b* 15']['median_bias']:+.1f} (default, b* 15)",
                     "naive border ITA": f"{res['no correction']['median_bias']:+.1f} (no cast step)",
                     "L* alone": "n/a", "reading": f"reference b* 10: {res['reference b* 10']['median_bias']:+.1f}"})
    default = next(v for k, v in kin.items() if k.startswith("default"))["all"]
    naive = kin["border frame median (naive)"]["all"]
    rows.append({"measure": "Spearman with Kinyanjui et al.'s published ITA (compatibility only)",
                 "set": "ham10000-224", "skinaudit ITA": f"{default['spearman']:.3f}",
                 "naive border ITA": f"{naive['spearman']:.3f}", "L* alone": f"{default['spearman_L_only']:.3f}",
                 "reading": "the published values behave like lightness (see docs/skintone.md)"})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--variants", default="all")
    ap.add_argument("--validity", action="store_true", help="assemble the validity summary and stop")
    args = ap.parse_args(argv)
    if args.validity:
        rows = validity()
        (OUT / "skintone_validity.json").write_text(json.dumps(rows, indent=2) + "\n")
        cols = list(rows[0])
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(str(r[c]) for c in cols) + " |")
        return rows
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
