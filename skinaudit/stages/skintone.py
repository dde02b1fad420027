"""Stage 2: skin tone. ITA per image from non-lesion skin (cached per image), the dataset-level cast
step, groups under the scheme (the paper's Table 7) and the estimator's sensitivity."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..per_image import cached_rows
from ..result import unavailable
from . import StageOutput

__all__ = ["skin_tone_stage", "inspect_cached", "sensitivity_cached", "lesion_methods_key"]


def lesion_methods_record(insp, config) -> dict:
    """Which lesion masks and artifact flags the skin-tone rows used: counts per method and the
    learned weights' hashes (the ``lesion_methods`` of the skin-tone section)."""
    rec = {}
    for col in ("segmenter", "artifact_detector"):
        if col in insp:
            rec[col] = {str(k): int(v) for k, v in insp[col].dropna().astype(str).value_counts().sort_index().items()}
    rec.update({"requested": {"segmenter": config.segmenter, "artifacts": config.artifacts}})
    used = {"segmenter": "learned" in rec.get("segmenter", {}),
            "artifacts": "learned" in rec.get("artifact_detector", {})}
    versions = {w: _version(w) for w, on in used.items() if on}
    if versions:
        rec["learned_weights"] = versions
    return rec


def _version(which: str):
    from .. import learned

    return learned.weights_version(which) if learned.weights_present(which) else None


def lesion_methods_key(lesion_params, artifact_params) -> dict:
    """The segmenter and artifact detector a run uses, with the weights' hash when learned (part of
    the per-image cache keys: rows of another method, or of older weights, are never reused)."""
    from ..lesion import methods_used

    used = methods_used(lesion_params, artifact_params)
    key = {"segmenter": used["segmenter"], "artifacts": used["artifact_detector"]}
    if "learned" in used.values():
        from .. import learned

        for name, which in (("segmenter", "segmenter"), ("artifacts", "artifacts")):
            if key[name] == "learned":
                key[name] = f"learned:{learned.weights_version(which)}"
    return key

def inspect_cached(dataset, config, *, progress=None, cache=None, executor=None, variants_for=None,
                   variants=None) -> pd.DataFrame:
    """Per-image skin-tone rows (cached one by one), then the dataset-level cast step on all.

    ``variants_for`` (image ids) and ``variants`` (a dict, filled): the images of the sensitivity
    sample whose rows are computed here also get their ITA estimator variants from the same pass
    (``variants`` maps their id to the row :func:`sensitivity_cached` would compute), so no image is
    read and analysed twice."""
    from ..skintone import add_uncertainty, correct_cast, dataset_cast_groups, inspect_dataset

    params = config.ita_params()
    lesion_params, artifact_params = config.lesion_params(), config.artifact_params()
    dataset_cast_groups(dataset, params)  # checks the column before any image is read
    kwargs = dict(scheme=config.scheme, params=params, n_jobs=config.n_jobs, progress=progress, strict=config.strict,
                  executor=executor, lesion_params=lesion_params, artifact_params=artifact_params)

    def compute(ds):
        ids = [str(i) for i in ds.ids]
        both = [i for i in ids if variants_for is not None and i in variants_for]
        if not both:
            return inspect_dataset(ds, correct=False, **kwargs)
        from ..skintone import inspect_rows_and_variants

        rest = set(ids) - set(both)
        parts = [inspect_dataset(ds.subset([i for i in ids if i in rest]), correct=False, **kwargs)] if rest else []
        rows, per = inspect_rows_and_variants(ds.subset(both), **kwargs)
        variants.update((str(v["image_id"]), v) for v in per)
        return pd.concat([*parts, rows], ignore_index=True) if parts else rows

    out = cached_rows(dataset, cache, "inspect", {"scheme": config.scheme, "method": params.describe(),
                                                  "beyond_range": params.beyond_range,
                                                  "bootstrap": [params.n_boot, params.patch_size,
                                                                params.random_state],
                                                  **lesion_methods_key(lesion_params, artifact_params)}, compute)
    for col in ("hair", "ruler", "ink", "dark_corner", "gel_bubble", "gel_border", "patches"):
        if col in out.columns:
            out[col] = out[col].map(lambda v: bool(v) if v is not None and not pd.isna(v) else False)
    if params.ita_correction == "dataset_reference":
        out = correct_cast(out, params, dataset_cast_groups(dataset, params, out["image_id"]), config.scheme)
    return add_uncertainty(out, config.scheme, random_state=params.random_state)


def sensitivity_cached(dataset, config, *, progress=None, cache=None, offsets=None, executor=None,
                       variants=None) -> pd.DataFrame:
    """The ITA estimator variants on ``dataset`` (cached per image), as the sensitivity table;
    ``variants``: rows already computed with the inspect rows (:func:`inspect_cached`), used when
    they cover every image to compute."""
    from ..skintone import dataset_cast_groups, sensitivity_table

    params = config.ita_params()
    lesion_params, artifact_params = config.lesion_params(), config.artifact_params()

    def compute(ds):
        ids = [str(i) for i in ds.ids]
        # the rows the same images gave during inspect, through the same table code (which adds the
        # mixed-mask columns to them, as it does to rows it computes)
        source = pd.DataFrame([variants[i] for i in ids]) if variants and all(i in variants for i in ids) else ds
        return sensitivity_table(source, scheme=config.scheme, n_jobs=config.n_jobs, progress=progress,
                                 params=params, executor=executor, lesion_params=lesion_params,
                                 artifact_params=artifact_params).attrs["per_image"]

    per_image = cached_rows(dataset, cache, "ita_variants",
                                  {"variants": 3, "shrink_margin": params.skin_margin == "shrink",
                                   **lesion_methods_key(lesion_params, artifact_params)}, compute)
    groups = dataset_cast_groups(dataset, dataclasses.replace(params, ita_correction="dataset_reference"),
                                 per_image["image_id"])
    return sensitivity_table(per_image, scheme=config.scheme, params=params, groups=groups, offsets=offsets)


def skin_tone_stage(dataset, pred, config, *, progress=None, cache=None, executor=None):
    """ITA and group per image (estimated, or the dataset's ``ita`` / ``group`` columns), Table 7
    and the skin-tone section with the estimator's sensitivity; returns
    ``(predictions with ita/group/flags, StageOutput)``."""
    out = StageOutput()
    sections, result_tables = out.sections, out.tables
    from ..skintone import UNKNOWN, get_scheme

    scheme = get_scheme(config.scheme)
    if not config.skin_tone:
        given = [c for c in ("group", "ita") if c in dataset.table.columns]
        if not given:
            sections["groups"] = unavailable("skin-tone estimation was switched off and the dataset gives no "
                                             "ita or group column")
            return _groups_and_reliability(dataset, pred, config, out), out
    sample, variants = _sensitivity_sample(dataset, config), {}
    insp = inspect_cached(dataset, config, progress=progress, cache=cache, executor=executor,
                          variants_for=set(map(str, sample.ids)) if sample is not None else None,
                          variants=variants) if config.skin_tone else pd.DataFrame(
        {"image_id": dataset.table["image_id"], "ita": dataset.table.get("ita"), "group": dataset.table.get("group")})
    if "group" not in insp or insp["group"].isna().all():
        from ..skintone import assign_groups

        insp["group"] = assign_groups(insp["ita"], scheme)
    insp["group"] = insp["group"].fillna(UNKNOWN).astype(str)
    if "status" in insp.columns and "flags" in insp.columns:
        # an image the skin-tone stage could not read carries the reason in its flags
        bad = insp["status"].notna() & (insp["status"].astype(str) != "ok")
        insp.loc[bad, "flags"] = insp.loc[bad, "status"].astype(str)
    from ..skintone import probability_columns, unknown_reasons

    insp["unknown_reason"] = unknown_reasons(insp["flags"] if "flags" in insp else [""] * len(insp), insp["group"])
    keep = [c for c in ("ita", "ita_low", "ita_high", *probability_columns(scheme), "group", "flags",
                        "unknown_reason") if c in insp.columns]
    pred = pred.merge(insp[["image_id", *keep]], on="image_id", how="left")
    pred["group"] = pred["group"].fillna(UNKNOWN)
    # Table 7: per group N, benign, malignant, share
    order = [g for g in (*reversed(scheme.labels), UNKNOWN) if g in set(pred["group"])]
    order += sorted(set(pred["group"]) - set(order))
    rows = {}
    for g in order:
        sel = pred["group"] == g
        rows[g] = {"n": int(sel.sum()), "benign": int((sel & (pred["label"] == 0)).sum()),
                   "malignant": int((sel & (pred["label"] == 1)).sum()), "share": float(sel.mean())}
    intervals = dict(zip(scheme.labels, scheme.intervals))
    sections["groups"] = {"scheme": scheme.name, "intervals": intervals, "groups": rows,
                          "notes": ["ITA groups are a colorimetric proxy for skin tone, not Fitzpatrick types.",
                                    "Bins are half-open (lower, upper]: a value equal to a cut point belongs to "
                                    "the darker bin."]}
    result_tables["groups"] = pd.DataFrame([{"group": g, "interval": intervals.get(g, ""), **r}
                                            for g, r in rows.items()])
    if config.skin_tone:
        result_tables["skin_tone"] = insp
        flagged = insp["flags"].fillna("").astype(str).str.len().gt(0) if "flags" in insp else pd.Series(False)
        skin = {"scheme": scheme.name, "method": str(insp["method"].mode().iloc[0]) if "method" in insp and
                insp["method"].notna().any() else None,
                "n_unknown": int((insp["group"] == UNKNOWN).sum()), "n_flagged": int(flagged.sum()),
                "unknown_by_reason": {str(k): int(v) for k, v in insp.loc[insp["group"] == UNKNOWN, "unknown_reason"]
                                      .value_counts().sort_index().items()},
                "n_beyond_range": int(insp["flags"].fillna("").astype(str).str.contains("beyond_range").sum())
                if "flags" in insp else 0,
                "mask_source": {str(k): int(v) for k, v in insp.get("mask_source", pd.Series(dtype=str))
                                .value_counts().items()},
                "lesion_methods": lesion_methods_record(insp, config),
                "artifacts": {a: int(insp[a].sum()) for a in ("hair", "ruler", "ink", "dark_corner", "gel_bubble",
                                                              "gel_border", "patches") if a in insp}}
        if "ita_low" in insp:
            from ..skintone import straddle_counts

            skin["uncertainty"] = {
                "method": (f"{config.ita_params().n_boot} bootstrap resamples of {config.ita_params().patch_size} px "
                           "skin patches per image; 95% interval and group probabilities from draws of (L*, b*) "
                           "after the cast step"), **straddle_counts(insp, scheme)}
            u = skin["uncertainty"]
            u["note"] = (f"{u['n_straddling']} of {u['n_with_interval']} images have a 95% ITA interval that "
                         "contains a cut point of the scheme, so their group is uncertain (their group "
                         "probabilities are the p_<group> columns of predictions.csv). The interval covers the "
                         "sampling error of the skin pixels only, not the cast assumption or the segmentation.")
        if "b_offset" in insp:
            from ..skintone import cast_summary

            skin["cast"] = {
                "correction": "dataset_reference", "reference_b": float(config.reference_b),
                "cast_group_column": config.cast_group, "groups": cast_summary(insp).to_dict(orient="records"),
                "assumption": (f"Each acquisition group's median skin b* is taken to be at least "
                               f"{config.reference_b:g} (light-to-intermediate skin); groups below it are shifted "
                               "up by the difference (a blue dermatoscope cast), L* is left as measured. For a "
                               "population of mostly dark skin this assumption fails: rerun with "
                               "--ita-correction none and compare.")}
            small = [g["cast_group"] for g in skin["cast"]["groups"] if not g["estimated"]]
            if small:
                skin["cast"]["not_estimated"] = (
                    f"no cast offset for {', '.join(small)}: fewer than {config.ita_params().min_cast_images} "
                    "images with a skin sample, so b* is used as measured")
        if sample is not None:
            # the whole dataset's cast offsets, not re-estimated on the sample
            offsets = {g["cast_group"]: g["b_offset"] for g in skin.get("cast", {}).get("groups", [])
                       if g["estimated"]}
            sens = sensitivity_cached(sample, config, progress=progress, cache=cache, offsets=offsets,
                                      executor=executor, variants=variants)
            result_tables["ita_sensitivity"] = sens
            from .groups import variant_labels  # the group of each sample image under every variant

            by_variant = variant_labels(sens.attrs["per_image"], sample, config, offsets)
            by_variant = by_variant[[v for v in sens["variant"] if v in by_variant.columns]]  # the audit's own first
            result_tables["ita_variant_groups"] = by_variant.rename_axis("image_id").reset_index()
            skin["sensitivity"] = {"n_images": len(sample), "tables": {"group sizes by ITA estimator variant":
                                                                       sens.to_dict(orient="records")}}
        sections["skintone"] = skin
    return _groups_and_reliability(dataset, pred, config, out), out


def _sensitivity_sample(dataset, config):
    """The images of the ITA sensitivity table: all, or ``config.sensitivity_sample`` of them drawn
    with ``config.seed`` (sorted by id); None when the table is off or skin tone is not estimated."""
    if not config.skin_tone or config.sensitivity_sample <= 0:
        return None
    if len(dataset) <= config.sensitivity_sample:
        return dataset
    rng = np.random.default_rng(config.seed)
    return dataset.subset(sorted(rng.choice(dataset.ids, size=config.sensitivity_sample, replace=False)))


# --- #15 items 4-5 (branch groups): grouping by a metadata column, test-retest reliability of ITA.
# The one hook of skin_tone_stage (both of its returns go through it); the logic is in stages/groups.py.
def _groups_and_reliability(dataset, pred, config, out):
    from .groups import group_and_reliability

    return group_and_reliability(dataset, pred, config, out)
