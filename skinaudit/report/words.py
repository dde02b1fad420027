"""Sentences and compact summaries of the report: the direction of a gap in words, the flagged images by
reason, the configuration as a readable table, the dataset's name. Plain data in, plain text or records out."""
from __future__ import annotations

import math
import re
from pathlib import PurePath

from .format import fmt_num, is_missing

#: Metrics where a larger value is worse (the others: larger is better).
HIGHER_IS_WORSE = frozenset({"fnr", "fpr", "fn", "fp"})

#: Decimals of the numbers in sentences (the tables keep four).
SENTENCE_DIGITS = 3


def _num(value) -> str:
    return fmt_num(float(value), SENTENCE_DIGITS) if not is_missing(value) else "n/a"


def fmt_interval(low, high, digits: int = SENTENCE_DIGITS) -> str:
    """``[low, high]`` with the report's one interval format."""
    if is_missing(low) or is_missing(high):
        return "[n/a]"
    return f"[{fmt_num(float(low), digits)}, {fmt_num(float(high), digits)}]"


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def gap_sentence(metric: str, group: str, reference: str, *, value_group=None, value_reference=None,
                 difference=None, low=None, high=None) -> str:
    """One gap in words, naming the worse group, the size and the interval of the difference.

    ``difference``, ``low`` and ``high`` are ``group - reference`` and its interval (as in the
    fairness section's tests); without them the difference of the two values is used, with no
    interval. Example: ``"recall: dark 0.778 vs light 0.742 (light lower, worse by 0.036 [-0.199, 0.179])"``.
    """
    if not _real(difference) and _real(value_group) and _real(value_reference):
        difference = float(value_group) - float(value_reference)
    head = f"{metric}: {group} {_num(value_group)} vs {reference} {_num(value_reference)}"
    if not _real(difference):
        return f"{head} (difference undefined)"
    if difference == 0:
        return f"{head} (no difference)"
    sign = -1.0 if metric in HIGHER_IS_WORSE else 1.0
    advantage = sign * float(difference)  # > 0: the group does better than the reference
    worse, other = (reference, group) if advantage > 0 else (group, reference)
    direction = "higher" if (difference > 0) == (worse == group) else "lower"
    ci = ""
    if _real(low) and _real(high):
        # interval of (better - worse) in the metric's "better" direction
        f = sign if advantage > 0 else -sign
        lo, hi = sorted((f * float(low), f * float(high)))
        ci = " " + fmt_interval(lo, hi)
    return f"{head} ({worse} {direction}, worse by {_num(abs(advantage))}{ci})"


def fairness_gap_sentences(fair: dict, which: list[str]) -> list[str]:
    """Sentences for ``metric.group`` names of a fairness section (``groups``, ``tests``):
    each names the worse group, the size of the gap and its interval (from the test of that
    metric and group when there is one)."""
    groups = fair.get("groups") if isinstance(fair.get("groups"), dict) else {}
    tests = {(str(t.get("metric")), str(t.get("group"))): t for t in fair.get("tests") or [] if isinstance(t, dict)}
    reference = fair.get("reference")
    out = []
    for name in which:
        metric, _, group = name.partition(".")
        t = tests.get((metric, group), {})
        ref = str(t.get("reference") or reference or "reference")
        out.append(gap_sentence(metric, group, ref,
                                value_group=(groups.get(group) or {}).get(metric),
                                value_reference=(groups.get(ref) or {}).get(metric),
                                difference=t.get("difference"), low=t.get("ci_low"), high=t.get("ci_high")))
    return out


_FLAG_NAME = re.compile(r"^\s*([A-Za-z_][\w\-]*)")


def flag_names(text: str) -> list[str]:
    """The names of the flags in a ``flags`` cell: ``"hair, beyond_range(78.0)"`` -> ``["hair", "beyond_range"]``."""
    names, depth, part = [], 0, ""
    for ch in str(text) + ",":
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch in ",;" and depth == 0:
            m = _FLAG_NAME.match(part)
            if m:
                names.append(m.group(1))
            part = ""
        else:
            part += ch
    return names


def by_reason(records: list[dict], key: str) -> list[dict]:
    """Counts per reason: ``[{reason, images, malignant}]``, largest first (ties by name); a
    record whose ``key`` names several flags counts once under each."""
    counts: dict[str, list[int]] = {}
    for r in records:
        names = flag_names(r.get(key) or "") if key == "flags" else [str(r.get(key) or "unstated")]
        for name in dict.fromkeys(names):
            c = counts.setdefault(name, [0, 0])
            c[0] += 1
            c[1] += int(r.get("label") == 1)
    rows = [{"reason": k, "images": v[0], "malignant": v[1]} for k, v in counts.items()]
    return sorted(rows, key=lambda r: (-r["images"], r["reason"]))


def dataset_name(dataset: dict) -> str:
    """The dataset named by its folder: the common folder of its image folder and labels file
    (``/data/isic2018-test/images`` and ``/data/isic2018-test/labels.csv`` -> ``isic2018-test``), else the
    image folder (its parent when it is a generic ``images``), else the recorded name."""
    source = dataset.get("source") if isinstance(dataset.get("source"), dict) else {}
    paths = [PurePath(str(source[k])) for k in ("images", "labels") if isinstance(source.get(k), str) and source[k]]
    folders = [p if k == 0 and source.get("images") else p.parent for k, p in enumerate(paths)]
    generic = {"images", "image", "imgs", "img", "data", "input", "train", "test"}
    if folders:
        common = folders[0]
        for f in folders[1:]:
            while common != common.parent and not str(f).startswith(str(common)):
                common = common.parent
        while common.name.lower() in generic and common != common.parent:
            common = common.parent
        if common.name:
            return common.name
    return str(dataset.get("name") or "unnamed dataset")


#: Readable labels of the configuration's fields, in the order of the appendix table.
CONFIG_LABELS = {
    "threshold": "decision threshold (predicted malignant when score >= threshold)",
    "scheme": "ITA grouping scheme",
    "skin_tone": "estimate skin tone (ITA)",
    "ita_correction": "colour-cast correction of ITA",
    "reference_b": "reference skin b* of the cast correction",
    "cast_group": "acquisition-group column of the cast correction",
    "skin_margin": "skin sample margin around the lesion",
    "segmenter": "lesion segmentation where the dataset gives no mask (auto: learned when torch is installed)",
    "artifacts": "image-level artifact flags (auto: learned when torch is installed)",
    "sensitivity_sample": "images in the ITA estimator sensitivity sample",
    "group_column": "metadata column used as the group (instead of ITA)",
    "reference": "reference group of the tests",
    "alpha": "significance level alpha",
    "n_boot": "bootstrap resamples",
    "min_positives": "malignant cases a group needs for a test",
    "gamma": "recall target of the threshold search (gamma)",
    "step": "step of the threshold search grid",
    "calibration_fraction": "share of images held out to fit thresholds",
    "seed": "random seed",
    "explain": "Grad-CAM++ explanations",
    "target_layer": "explained layer",
    "keep_top": "share of the CAM kept as its sharpened region",
    "cases_per_kind": "example cases per kind",
    "cam_sample": "images explained per group",
    "explain_fp": "also explain false positives",
    "age_bins": "age bins",
    "repeat_column": "column of repeated images",
    "batch_size": "batch size",
    "n_jobs": "parallel workers",
    "executor": "where the per-image work ran (local process pool or Ray)",
    "ray_address": "Ray cluster address",
    "strict": "strict mode (stop on the first unreadable image)",
}


def config_records(cfg: dict) -> list[dict]:
    """The configuration as ``[{item, value, option}]`` rows, labelled fields first, unset
    values as "not set"."""
    keys = [k for k in CONFIG_LABELS if k in cfg] + sorted(k for k in cfg if k not in CONFIG_LABELS)
    rows = []
    for k in keys:
        v = cfg[k]
        if v is None:
            v = "not set"
        elif isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v) or "none"
        elif isinstance(v, dict):
            v = "; ".join(f"{a}: {b}" for a, b in v.items()) or "none"
        rows.append({"item": CONFIG_LABELS.get(k, k.replace("_", " ")), "value": v, "option": k})
    return rows


#: What the report calls the groups it compares, unless the audit grouped by metadata columns.
ITA_GROUP = "ITA group"


def grouping_label(result, section: dict | None = None) -> str | None:
    """The metadata column(s) the audit compared groups of (``"sex"``, ``"fitspatrick & gender"``),
    from the groups section of ``result`` or else ``section``'s own ``grouping``; None for ITA groups."""
    sec = result.section("groups") if result is not None and hasattr(result, "section") else None
    grouping = sec.get("grouping") if sec is not None and sec.available else None
    if not isinstance(grouping, dict) and isinstance(section, dict):
        grouping = section.get("grouping")
    if isinstance(grouping, dict) and grouping.get("by") == "column":
        return str(grouping.get("label") or " & ".join(map(str, grouping.get("columns") or [])) or "metadata")
    return None


def group_noun(result, section: dict | None = None) -> str:
    """What the report calls one compared group: ``"ITA group"``, or ``"<label> group"`` (e.g.
    ``"fitspatrick group"``, ``"fitspatrick & gender group"``) when the audit compared the groups
    of metadata columns (``--group-column``), so no caption calls a Fitzpatrick type an ITA group."""
    label = grouping_label(result, section)
    return ITA_GROUP if label is None else f"{label} group"
