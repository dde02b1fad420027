"""Skin-tone stage, second half: grouping by a metadata column and the reliability of ITA.

Called once, at the end of :func:`skinaudit.stages.skintone.skin_tone_stage`:

- ``AuditConfig.group_column`` set: the fairness analysis compares the values of that column
  (or the intersection of several) instead of ITA groups; ITA's group moves to ``ita_group`` in
  the predictions so the two can be compared; the ``groups`` section and ``groups.csv`` show
  the column groups and say which grouping was used (``groups.grouping``);
- repeated images of a lesion or patient in the dataset (``AuditConfig.repeat_column``, or
  ``lesion_id`` / ``patient_id``): ``skintone.reliability`` (test-retest ICC(1) of ITA, group
  flips between repeats, Fleiss' kappa of the estimator variants of the sensitivity sample).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..result import unavailable

__all__ = ["group_and_reliability", "check_grouping", "repeat_column", "variant_labels", "human_type_column",
           "add_concordance"]

#: Repeat columns looked for, in this order, when ``AuditConfig.repeat_column`` is None.
REPEAT_COLUMNS = ("lesion_id", "patient_id")


#: The column name that asks for Monk Skin Tone groups computed from the skin sample.
MST_COLUMN = "mst"


def group_and_reliability(dataset, pred: pd.DataFrame, config, out) -> pd.DataFrame:
    """Apply the column grouping (if any), add the reliability section (if repeats) and the
    concordance with a human Fitzpatrick column (if any); returns the predictions. ``out`` (a
    StageOutput) is updated in place."""
    add_reliability(dataset, pred, config, out)
    add_concordance(dataset, pred, config, out)
    return group_by_column(dataset, pred, config, out)


def _monk_column(dataset, out) -> pd.DataFrame:
    """The dataset's table with an ``mst`` column (Monk Skin Tone 1-10 from the skin sample's
    L*, a*, b*; b* after the cast step when it ran) unless it has one."""
    from ..skintone.concordance import monk_tone

    table = dataset.table
    insp = out.tables.get("skin_tone")
    if MST_COLUMN in table.columns or insp is None or "L" not in insp:
        return table
    b = insp["b_corrected"] if "b_corrected" in insp else insp["b"]
    mst = pd.Series(monk_tone(insp["L"], insp["a"], b), index=insp["image_id"].astype(str).to_numpy())
    table = table.copy()
    table[MST_COLUMN] = table["image_id"].astype(str).map(mst).map(lambda v: f"MST {int(v)}" if pd.notna(v) else v)
    return table


def _natural(label: str):
    """Sort key that puts 'MST 2' before 'MST 10'."""
    import re

    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", label) if t]


def check_grouping(dataset, config) -> None:
    """Fail early (before any image is read) on a group or repeat column the dataset lacks."""
    from ..grouping import check_group_columns, parse_group_columns

    if config.group_column:
        columns = parse_group_columns(config.group_column)
        computed = [MST_COLUMN] if config.skin_tone and MST_COLUMN not in dataset.table.columns else []
        check_group_columns(dataset.table.assign(**{c: None for c in computed}), columns)
    repeat_column(dataset, config)


def group_by_column(dataset, pred: pd.DataFrame, config, out) -> pd.DataFrame:
    """Replace ``pred['group']`` by the groups of ``config.group_column`` (ITA's kept as ``ita_group``)."""
    if not config.group_column:
        return pred
    from ..grouping import UNKNOWN, column_groups, parse_group_columns

    columns = parse_group_columns(config.group_column)
    table = _monk_column(dataset, out) if MST_COLUMN in columns else dataset.table
    labels = column_groups(table, columns, age_bins=config.age_bins)
    by_id = pd.Series(labels.to_numpy(), index=table["image_id"].astype(str).to_numpy())
    pred = pred.copy()
    if "group" in pred:
        pred = pred.rename(columns={"group": "ita_group"})
    pred["group"] = pred["image_id"].astype(str).map(by_id).fillna(UNKNOWN).astype(str)
    order = sorted(set(pred["group"]) - {UNKNOWN}, key=_natural) + ([UNKNOWN] if UNKNOWN in set(pred["group"]) else [])
    rows = {}
    for g in order:
        sel = pred["group"] == g
        rows[g] = {"n": int(sel.sum()), "benign": int((sel & (pred["label"] == 0)).sum()),
                   "malignant": int((sel & (pred["label"] == 1)).sum()), "share": float(sel.mean())}
    grouping = {"by": "column", "columns": list(columns), "label": " & ".join(columns)}
    if config.age_bins:
        grouping["age_bins"] = config.age_bins
    notes = [f"The fairness analysis compares groups of the metadata column(s) {', '.join(columns)}, not ITA "
             "groups. ITA is still estimated; each image's ITA group is in predictions.csv as 'ita_group'.",
             f"A missing value forms the group '{UNKNOWN}' (or the part '{UNKNOWN}' of an intersection): shown "
             "with its metrics, never compared, as images without a measurable skin tone are."]
    previous = out.sections.get("groups")
    section = {"grouping": grouping, "groups": rows, "notes": notes}
    if isinstance(previous, dict) and isinstance(previous.get("groups"), dict):
        section["ita_groups"] = {"scheme": previous.get("scheme"), "groups": previous["groups"]}
    out.sections["groups"] = section
    out.tables["groups"] = pd.DataFrame([{"group": g, **r} for g, r in rows.items()])
    if "ita_group" in pred:
        out.tables["groups_vs_ita"] = (pd.crosstab(pred["group"], pred["ita_group"]).reset_index()
                                       .rename_axis(columns=None))
    return pred


def repeat_column(dataset, config) -> tuple[str | None, bool]:
    """The column tying repeated images, and whether the user named it (not auto-detected)."""
    name = config.repeat_column
    if name is not None and name.strip().lower() == "none":
        return None, True
    if name is not None:
        if name not in dataset.table.columns:
            avail = [c for c in dataset.table.columns if c not in ("image_path", "mask_path", "label")]
            raise ConfigError(f"--repeat-column: no column {name!r} in the dataset; available: {', '.join(avail)}")
        return name, True
    return next((c for c in REPEAT_COLUMNS if c in dataset.table.columns), None), False


def variant_labels(per_image: pd.DataFrame, dataset, config, offsets) -> pd.DataFrame:
    """ITA group per image (rows, indexed by image id) under each estimator variant of the
    sensitivity table, from its per-image ITA table (``sensitivity_table(...).attrs['per_image']``):
    plain variants are binned as they are, the cast-reference variants after
    :func:`~skinaudit.skintone.correct_cast` with the whole dataset's ``offsets``, as the
    sensitivity table does."""
    from ..skintone import UNKNOWN, assign_groups, correct_cast, dataset_cast_groups, get_scheme
    from ..skintone.dataset import cast_variant_sources

    scheme = get_scheme(config.scheme)
    ids = per_image["image_id"].astype(str)
    labels = {c: assign_groups(per_image[c].to_numpy(dtype=float), scheme)
              for c in per_image.columns if c != "image_id" and "::" not in c}
    cast = dataclasses.replace(config.ita_params(), ita_correction="dataset_reference")
    groups = dataset_cast_groups(dataset.subset(ids), cast, ids)
    for name, source in cast_variant_sources(per_image).items():
        lab = pd.DataFrame({"L": per_image[f"{source}::L"], "b": per_image[f"{source}::b"], "flags": "",
                            "ita": np.nan, "group": UNKNOWN})
        labels[name] = correct_cast(lab, cast, groups, scheme, offsets)["group"].to_numpy()
    return pd.DataFrame(labels, index=ids.to_numpy())


def add_reliability(dataset, pred: pd.DataFrame, config, out) -> None:
    """``skintone.reliability`` when the dataset ties repeated images (see module docstring)."""
    from ..skintone.reliability import reliability_summary

    skin = out.sections.get("skintone")
    column, named = repeat_column(dataset, config)
    if column is None or not isinstance(skin, dict) or "ita" not in pred:
        return
    ids = dataset.table["image_id"].astype(str)
    clusters = pred["image_id"].astype(str).map(pd.Series(dataset.table[column].to_numpy(), index=ids.to_numpy()))
    sizes = clusters.map(clusters.value_counts())
    if not (sizes >= 2).any():
        if named:
            skin["reliability"] = unavailable(f"no two images share a value of the repeat column {column!r}")
        return
    sens = out.tables.get("ita_sensitivity")
    variants = None
    if sens is not None and "per_image" in sens.attrs:
        offsets = {g["cast_group"]: g["b_offset"] for g in skin.get("cast", {}).get("groups", []) if g["estimated"]}
        variants = variant_labels(sens.attrs["per_image"], dataset, config, offsets)
    skin["reliability"] = reliability_summary(
        pred["ita"].to_numpy(dtype=float), pred["group"].astype(str).to_numpy(), clusters.to_numpy(),
        column=column, n_boot=config.n_boot, alpha=config.alpha, random_state=config.seed, variant_labels=variants)
    rel = skin["reliability"]
    if np.isfinite(rel["icc"]):
        text = (f"Test-retest reliability of ITA over {rel['n_lesions']} lesions photographed more than once "
                f"('{column}'): ICC(1) {rel['icc']:.2f} ({rel['icc_ci_level']:.0%} interval {rel['icc_ci'][0]:.2f} to "
                f"{rel['icc_ci'][1]:.2f}), {rel['reading']} (Koo & Li 2016)")
        if np.isfinite(rel["flip_rate"]):
            text += f"; {rel['flip_rate']:.0%} of {rel['n_pairs']} repeat pairs change ITA group"
        if np.isfinite(rel.get("variant_kappa", np.nan)):
            text += f"; the estimator variants agree on the group with Fleiss' kappa {rel['variant_kappa']:.2f}"
        rel["summary"] = text + "."
        skin.setdefault("notes", []).append(rel["summary"])
    if variants is not None:
        skin["reliability"]["variant_kappa_note"] = (
            f"Fleiss' kappa of the ITA group labels of {len(variants.columns)} estimator variants on the "
            f"sensitivity sample ({len(variants)} images; images unknown under any variant left out).")


def human_type_column(dataset, config) -> str | None:
    """The human Fitzpatrick column: ``config.group_column`` when it is one, else the first
    column of the dataset named like one (:func:`skinaudit.grouping.is_fitzpatrick`)."""
    from ..grouping import is_fitzpatrick

    if config.group_column and is_fitzpatrick(config.group_column.strip()):
        return config.group_column.strip()
    return next((str(c) for c in dataset.table.columns if is_fitzpatrick(c)), None)


def add_concordance(dataset, pred: pd.DataFrame, config, out) -> None:
    """``skintone.concordance`` (ITA and L* vs a human Fitzpatrick column) when both exist."""
    from ..skintone.concordance import fitzpatrick_concordance

    skin, insp = out.sections.get("skintone"), out.tables.get("skin_tone")
    column = human_type_column(dataset, config)
    if column is None or not isinstance(skin, dict) or "ita" not in pred or insp is None or "L" not in insp:
        return
    ids = pred["image_id"].astype(str)
    human = ids.map(pd.Series(dataset.table[column].to_numpy(), index=dataset.table["image_id"].astype(str)))
    light = ids.map(pd.Series(insp["L"].to_numpy(dtype=float), index=insp["image_id"].astype(str).to_numpy()))
    conc = fitzpatrick_concordance(pred["ita"].to_numpy(dtype=float), light.to_numpy(dtype=float),
                                   human.to_numpy(), column=column)
    confusion = conc.pop("confusion", None)
    if confusion:
        conc["tables"] = {"human type x ITA-mapped type": confusion}
    skin["concordance"] = conc
    if conc["n_images"] >= 3:
        skin.setdefault("notes", []).append(
            f"Concordance with the human skin type '{column}' on {conc['n_images']} images: Spearman rho "
            f"{conc['spearman_ita']:.2f} for ITA, {conc['spearman_lightness']:.2f} for L* alone (a useful estimate "
            f"is clearly negative); linear-weighted kappa {conc['kappa_linear']:.2f} after mapping ITA to a type "
            "(approximate; see the concordance table).")
