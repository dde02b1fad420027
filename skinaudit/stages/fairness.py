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
    from ..grouping import is_unknown
    from ..skintone import UNKNOWN

    if "group" not in pred:
        return StageOutput(sections={"fairness": unavailable("no skin-tone groups")})
    by_column = bool(getattr(config, "group_column", None))
    columns = [c.strip() for c in config.group_column.split(",")] if by_column else []
    # 'unknown' (an unmeasurable skin tone, or a missing value of the grouping column, alone or in an
    # intersection) is shown with its metrics and intervals, never compared (no reference, gap or verdict)
    unknown = sorted({str(g) for g in pred["group"] if is_unknown(g)})
    known = pred[~pred["group"].astype(str).isin(unknown)]
    if known["group"].nunique() < 2:
        return StageOutput(sections={"fairness": unavailable(
            f"a fairness comparison needs at least two {'groups' if by_column else 'ITA groups'} with images; "
            f"found {sorted(known['group'].unique().tolist())}"
            + (f" (besides {', '.join(map(repr, unknown))}, which is shown but never compared)" if unknown else ""))})
    res = fairness_report(pred["label"].to_numpy(), pred["score"].to_numpy(), pred["group"].to_numpy(),
                          threshold=config.threshold, reference=config.reference, alpha=config.alpha,
                          n_boot=config.n_boot, random_state=config.seed, min_positives=config.min_positives,
                          descriptive=tuple(unknown), progress=progress)
    section = dict(res.section)
    if by_column:
        section["grouping"] = {"by": "column", "columns": columns}
        noun = f"{' & '.join(columns)} group"  # the small-group notes of fairness_report name ITA groups
        section["notes"] = [n.replace("ITA group '", f"{noun} '", 1) if isinstance(n, str) else n
                            for n in section.get("notes") or []]
        section.setdefault("notes", []).insert(0, (
            f"Groups are the values of the metadata column(s) {config.group_column} (not ITA groups); a missing "
            f"value is the group '{UNKNOWN}' (or the part '{UNKNOWN}' of an intersection), shown with its metrics "
            "but not compared."))
    if unknown:
        section["unknown_images"] = (_missing_summary(pred, unknown, columns, section["groups"]) if by_column
                                     else _unknown_summary(pred, section["groups"].get(UNKNOWN, {})))
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


def _missing_summary(pred, unknown: list, columns: list, groups: dict) -> dict:
    """How many images have no value in the grouping column(s), per column, and how the model
    does on them (the ``unknown_images`` of a fairness section grouped by metadata columns)."""
    from ..grouping import JOIN

    sel = pred["group"].astype(str).isin(unknown)
    parts = pred.loc[sel, "group"].astype(str).str.split(JOIN)
    reasons = {}
    for i, col in enumerate(columns):
        n = int(parts.map(lambda p: len(p) > i and p[i] == "unknown").sum())
        if n:
            reasons[f"no value in {col}"] = n
    text = ", ".join(f"{k}: {v}" for k, v in reasons.items())
    row = groups.get(unknown[0], {}) if len(unknown) == 1 else {}

    def f(x):
        return "n/a" if x is None or x != x else f"{x:.3f}"

    metrics = (f" (recall {f(row.get('recall'))}, AUC {f(row.get('auc'))}, {row.get('n_pos', 0)} malignant)"
               if len(unknown) == 1 else "")
    shown = (f"the group '{unknown[0]}'" if len(unknown) == 1
             else f"the groups {', '.join(repr(g) for g in unknown)}")
    return {"n": int(sel.sum()), "of": len(pred), "reasons": reasons, "recall": row.get("recall"),
            "auc": row.get("auc"), "malignant": row.get("n_pos", 0) if row else int(pred.loc[sel, "label"].sum()),
            "note": (f"{int(sel.sum())} of {len(pred)} image(s) have no value in the grouping column(s) "
                     f"{', '.join(columns)}" + (f" ({text})" if text else "") + f". They are shown as {shown} with "
                     f"their metrics{metrics} but are not compared: no gap, test or verdict is computed for them.")}
