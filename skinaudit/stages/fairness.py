"""Stage 3: fairness statistics across skin-tone groups."""
from __future__ import annotations

import numpy as np

from ..result import unavailable
from . import StageOutput

__all__ = ["fairness_stage"]

def fairness_stage(pred, config, *, progress=None, variants=None) -> StageOutput:
    """Per-group metrics, gaps, tests and verdicts over the images with a known group
    (:func:`skinaudit.fairness.fairness_report`); the ``fairness`` section. For ITA groups,
    ``fairness.measurement_robust`` says whether each primary finding holds across draws of the
    group assignment (the per-image ``p_<group>`` columns, when the skin-tone stage gives them)
    and across the ITA estimator variants (``variants``: image_id and one group column per
    variant, the sensitivity sample)."""
    from ..fairness import fairness_report
    from ..skintone import UNKNOWN

    if "group" not in pred:
        return StageOutput(sections={"fairness": unavailable("no skin-tone groups")})
    by_column = bool(getattr(config, "group_column", None))
    # grouped by a metadata column, 'unknown' (a missing value) is a group like any other
    known = pred if by_column else pred[pred["group"] != UNKNOWN]
    if known["group"].nunique() < 2:
        return StageOutput(sections={"fairness": unavailable(
            f"a fairness comparison needs at least two {'groups' if by_column else 'ITA groups'} with images; "
            f"found {sorted(known['group'].unique().tolist())}")})
    n_unknown = 0 if by_column else int((pred["group"] == UNKNOWN).sum())
    # an unmeasurable skin tone is shown with its metrics and intervals, never compared (no reference, gap or verdict)
    res = fairness_report(pred["label"].to_numpy(), pred["score"].to_numpy(), pred["group"].to_numpy(),
                          threshold=config.threshold, reference=config.reference, alpha=config.alpha,
                          n_boot=config.n_boot, random_state=config.seed, min_positives=config.min_positives,
                          descriptive=(UNKNOWN,) if n_unknown else (), progress=progress)
    section = dict(res.section)
    if by_column:
        section["grouping"] = {"by": "column", "columns": [c.strip() for c in config.group_column.split(",")]}
        section.setdefault("notes", []).insert(0, (
            f"Groups are the values of the metadata column(s) {config.group_column} (not ITA groups); a missing "
            f"value is the group '{UNKNOWN}', compared like any other."))
    if n_unknown:
        section["unknown_images"] = _unknown_summary(pred, section["groups"].get(UNKNOWN, {}))
    if not by_column:
        section["measurement_robust"] = _robustness(known, section, config, variants)
    if "flags" in pred:
        n_cast = int(pred["flags"].fillna("").astype(str).str.contains("b_nonpositive").sum())
        if n_cast:
            section.setdefault("notes", []).append(
                f"{n_cast} image(s) have skin with CIELAB b* <= 0 (typically a blue dermatoscope cast). The plain "
                "ITA formula would put them in the darkest groups; skinaudit leaves them 'unknown'. A light/dark "
                "comparison made with the plain formula on such data compares colour casts, not skin tones "
                "(see docs/skintone.md).")
    return StageOutput(sections={"fairness": section}, tables=dict(res.tables))


def _robustness(known, section: dict, config, variants) -> dict:
    """:func:`skinaudit.robustness.measurement_robustness` of the section's primary contrasts."""
    from ..robustness import measurement_robustness

    names = [str(g) for g in known["group"].unique()]
    prob_cols = {c[2:]: c for c in known.columns if isinstance(c, str) and c.startswith("p_") and c[2:] in names}
    probs = (known[list(prob_cols.values())].set_axis(list(prob_cols), axis=1).reset_index(drop=True)
             if set(names) <= set(prob_cols) else None)
    by_variant = {}
    if variants is not None and len(variants):
        v = variants.set_index("image_id")
        sample = known[known["image_id"].astype(str).isin(v.index.astype(str))]
        for col in v.columns[1:]:  # the first variant is the audit's own grouping
            vg = v.loc[sample["image_id"].astype(str), col].to_numpy(dtype=object)
            ok = np.array([g in set(names) for g in vg])
            by_variant[str(col)] = (sample["label"].to_numpy()[ok], sample["score"].to_numpy()[ok], vg[ok])
    observed = {met: dict(section.get("verdicts", {}).get(met) or {}) for met in section.get("primary", ())}
    out = measurement_robustness(known["label"].to_numpy(), known["score"].to_numpy(), known["group"].to_numpy(),
                                 probs, reference=section["reference"], threshold=config.threshold,
                                 alpha=config.alpha, observed=observed, variants=by_variant,
                                 primary=tuple(section.get("primary", ("recall", "auc"))),
                                 n_draws=200, random_state=config.seed)
    if probs is None:
        out["note"] = "no per-image group probabilities: only the ITA estimator variants were checked"
    if by_variant:
        out["variants_on"] = (f"the images of the sensitivity sample ({len(variants)}) with a compared group under "
                              "each variant")
    return out


def _unknown_summary(pred, row: dict) -> dict:
    """How many images have no measurable skin tone, why, and how the model does on them."""
    from ..skintone import UNKNOWN

    sel = pred["group"] == UNKNOWN
    col = "unknown_reason" if "unknown_reason" in pred else "flags" if "flags" in pred else None
    reasons = {}
    if col is not None:
        why = pred.loc[sel, col].fillna("").astype(str).str.split(";").str[0].str.split("(").str[0].str.strip()
        reasons = {str(k): int(v) for k, v in why.replace("", "no reason recorded").value_counts().items()}
    text = ", ".join(f"{k}: {v}" for k, v in reasons.items())

    def f(x):
        return "n/a" if x is None or x != x else f"{x:.3f}"

    return {"n": int(sel.sum()), "of": len(pred), "reasons": reasons, "recall": row.get("recall"),
            "auc": row.get("auc"), "malignant": row.get("n_pos", 0),
            "note": (f"{int(sel.sum())} of {len(pred)} image(s) have no measurable skin tone"
                     + (f" ({text})" if text else "") + ". They are shown as the group 'unknown' with their metrics "
                     f"(recall {f(row.get('recall'))}, AUC {f(row.get('auc'))}, {row.get('n_pos', 0)} malignant) "
                     "but are not compared: no gap, test or verdict is computed for them.")}
