"""The summary badges (PASS / WARN / FAIL / not run) and the rules that set them."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ..errors import ConfigError
from .format import fmt_num, fmt_pct, fmt_threshold, is_missing
from .tables import is_records
from .words import ITA_GROUP, fairness_gap_sentences, group_noun


@dataclass(frozen=True)
class ReportRules:
    """Thresholds of the summary badges (PASS / WARN / FAIL / not run).

    min_recall : overall recall at the audit threshold below which the recall badge FAILs.
        None (default): the audit's own recall target ``config.gamma`` (the target of the
        threshold search) when the configuration has one, else 0.85.
    min_group_positives : malignant cases a skin-tone group needs; fewer gives WARN
        ("too small to compare"). Under 30 positives a recall's 95% Wilson interval is
        about +-0.15 wide or more.
    max_skipped_share : share of images that could not be scored above which the
        coverage badge WARNs.
    min_pointing_game : pointing-game hit rate (share of explained images whose CAM maximum
        falls in the lesion) below which an ITA group's localisation WARNs; 0.5 means the
        explanation misses the lesion more often than it finds it.
    """

    min_recall: float | None = None
    min_group_positives: int = 30
    max_skipped_share: float = 0.05
    min_pointing_game: float = 0.5

    def __post_init__(self):
        if self.min_recall is not None and not 0.0 <= float(self.min_recall) <= 1.0:
            raise ConfigError(f"the 'min_recall' parameter must be in [0, 1]; got {self.min_recall}")
        if int(self.min_group_positives) < 1:
            raise ConfigError(f"the 'min_group_positives' parameter must be at least 1; got {self.min_group_positives}")
        if not 0.0 <= float(self.max_skipped_share) <= 1.0:
            raise ConfigError(f"the 'max_skipped_share' parameter must be in [0, 1]; got {self.max_skipped_share}")
        if not 0.0 <= float(self.min_pointing_game) <= 1.0:
            raise ConfigError(f"the 'min_pointing_game' parameter must be in [0, 1]; got {self.min_pointing_game}")


def _badge(check, status, value, rule, detail=""):
    return {"check": check, "status": status, "value": value, "rule": rule, "detail": detail}


#: Group labels of images without a usable skin tone; they are not an ITA group to compare.
_NO_GROUP = ("unknown", "missing")


def group_counts(pred: pd.DataFrame):
    """Images (``size``) and malignant cases (``sum``) per ITA group, images without a
    group (``unknown``, missing) left out; None when there is no group column."""
    if "group" not in pred.columns:
        return None
    from ..grouping import is_unknown

    g = pred["group"].astype("string").fillna("missing")
    keep = ~g.isin(_NO_GROUP) & ~g.map(is_unknown).astype(bool)  # also "II & unknown" (--group-column A,B)
    return pred[keep].assign(_g=g[keep]).groupby("_g", sort=True)["label"].agg(["size", "sum"])


#: Recall target of the badge when neither the rules nor the configuration give one.
DEFAULT_RECALL_TARGET = 0.85


def _recall_target(result, rules: ReportRules) -> tuple[float, str]:
    if rules.min_recall is not None:
        return float(rules.min_recall), "report rule min_recall"
    gamma = getattr(result.config, "gamma", None)
    if isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and 0 < gamma <= 1:
        return float(gamma), "the audit's recall target gamma"
    return DEFAULT_RECALL_TARGET, "default target"


def summary_badges(result, *, rules: ReportRules | None = None) -> list[dict]:
    """The summary checks of an audit, each ``{check, status, value, rule, detail}`` with
    ``status`` one of "PASS", "WARN", "FAIL", "not run" (no input for the check).

    Checks: share of images scored (``rules.max_skipped_share``); overall recall at the
    audit threshold (``rules.min_recall``, else ``config.gamma``, else 0.85); malignant cases per ITA group
    (``rules.min_group_positives``); the fairness section's statistical verdicts (FAIL on
    any "significant", WARN on any "insufficient data"); the paper's fixed-gap heuristic
    from the fairness section's ``paper_rule`` (WARN when a gap exceeds it, since the
    heuristic ignores sample size).
    """
    from .present import presented

    rules = rules if rules is not None else ReportRules()
    result = presented(result)
    overall = result.section("overall").to_dict() if result.section("overall") else {}
    threshold = float(result.config.threshold)
    badges = []
    scored = len(result.predictions)
    skipped = len(result.skipped)
    share = skipped / (scored + skipped) if scored + skipped else float("nan")
    badges.append(_badge("Images scored", "PASS" if share <= rules.max_skipped_share else "WARN",
                         f"{scored} scored, {skipped} skipped ({fmt_pct(share)})",
                         f"skipped share <= {fmt_pct(rules.max_skipped_share)}"))
    recall = overall.get("recall")
    target, why = _recall_target(result, rules)
    recall_rule = f"recall >= {fmt_threshold(target)} ({why})"
    if is_missing(recall):
        badges.append(_badge("Recall", "not run", "n/a", recall_rule,
                             "recall is undefined (no malignant case was scored)"))
    else:
        badges.append(_badge("Recall", "PASS" if recall >= target else "FAIL",
                             f"{fmt_num(float(recall))} at threshold {threshold:g}",
                             recall_rule))
    counts = group_counts(result.predictions)
    noun = group_noun(result)
    if counts is None or counts.empty:
        badges.append(_badge(f"{noun[:1].upper()}{noun[1:]} sizes", "not run", "n/a",
                             f">= {rules.min_group_positives} malignant per {noun}",
                             "no skin-tone group per image in this audit" if counts is None else
                             "no image has a usable skin tone (all 'unknown')"))
    else:
        small = [f"{name}: {int(row['sum'])} malignant of {int(row['size']):,} images" for name, row in counts.iterrows()
                 if row["sum"] < rules.min_group_positives]
        badges.append(_badge(f"{noun[:1].upper()}{noun[1:]} sizes", "WARN" if small else "PASS",
                             "; ".join(f"{name}: {int(row['size']):,} images, {int(row['sum']):,} malignant"
                                       for name, row in counts.iterrows()),
                             f">= {rules.min_group_positives} malignant cases per {noun}",
                             ("too few malignant cases to compare: " + "; ".join(small)) if small else ""))
    fairness = result.section("fairness")
    alpha = fairness.alpha if fairness is not None else None
    rule = "significant: adjusted p < alpha and interval excludes 0" + (f" (alpha {alpha:g})" if alpha else "")
    if fairness is None:
        badges.append(_badge("Fairness, statistical tests", "not run", "n/a", rule, "no fairness section"))
    else:
        fair = fairness.to_dict()
        verdicts = fairness.verdicts()
        sig = [w for w, v in verdicts if v.startswith("significant")]
        insufficient = [w for w, v in verdicts if "insufficient" in v]
        if not verdicts:
            badges.append(_badge("Fairness, statistical tests", "not run", "n/a", rule,
                                 "the fairness section carries no verdicts"))
        else:
            status = "FAIL" if sig else ("WARN" if insufficient else "PASS")
            detail = "; ".join(filter(None, [
                ("significant gap: " + "; ".join(fairness_gap_sentences(fair, sig))) if sig else "",
                ("insufficient data: " + "; ".join(fairness_gap_sentences(fair, insufficient))) if insufficient
                else ""]))
            badges.append(_badge("Fairness, statistical tests", status,
                                 f"{len(sig)} significant, {len(insufficient)} insufficient data, "
                                 f"{len(verdicts)} verdicts", rule, detail))
    flags = fairness.paper_flags() if fairness is not None else []
    paper_rule = "gap > 0.02 (AUC) or > 0.05 (other metrics): the paper's fixed-gap heuristic"
    if not flags:
        badges.append(_badge("Fairness, paper heuristic", "not run", "n/a", paper_rule,
                             "no paper-rule result in the fairness section"))
    else:
        flagged = [w for w, f in flags if f]
        badges.append(_badge("Fairness, paper heuristic", "WARN" if flagged else "PASS",
                             f"{len(flagged)} of {len(flags)} gaps above the fixed threshold", paper_rule,
                             ("above the limit: " + "; ".join(fairness_gap_sentences(fairness.to_dict(), flagged)))
                             if flagged else ""))
    loc = result.section("localisation")
    badges.append(_localisation_badge(loc.to_dict() if loc is not None else None, rules, noun))
    return badges


def _localisation_badge(sec, rules: ReportRules, noun: str = ITA_GROUP) -> dict:
    rule = f"pointing-game hit rate >= {fmt_num(rules.min_pointing_game, 2)} in every {noun}"
    if not isinstance(sec, dict) or sec.get("available") is False:
        reason = sec.get("reason") if isinstance(sec, dict) else None
        return _badge("Explanations on the lesion", "not run", "n/a", rule, reason or "no localisation section")
    records = sec.get("groups") if is_records(sec.get("groups")) else []
    rates = [(str(r.get("group")), r.get("pointing_game")) for r in records if str(r.get("group")) != "all"]
    rates = [(g, v) for g, v in rates if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not rates:
        return _badge("Explanations on the lesion", "not run", "n/a", rule, "no pointing-game rate per group")
    low = [g for g, v in rates if v < rules.min_pointing_game]
    return _badge("Explanations on the lesion", "WARN" if low else "PASS",
                  ", ".join(f"{g}: {fmt_num(float(v), 2)}" for g, v in rates), rule,
                  ("the CAM maximum misses the lesion too often in: " + ", ".join(low)) if low else "")
