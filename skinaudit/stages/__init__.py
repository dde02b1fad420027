"""The stages of an audit, each a function that takes plain inputs and returns what it found.

``run_audit`` (:mod:`skinaudit.audit`) calls them in order:

==================  ===============================  =========================================
stage               function                         returns
==================  ===============================  =========================================
scores              :func:`scoring.score_stage`      predictions (id, label, score, prediction),
                                                     skipped images
skin tone           :func:`skintone.skin_tone_stage`  predictions + ita/group/flags, ``groups``
                                                     and ``skintone`` sections, tables
fairness            :func:`fairness.fairness_stage`   ``fairness`` section, tables
recalibration       :func:`recalibration.recalibration_stage`  ``recalibration`` section, tables
explanations        :func:`explain.explain_stage`     ``explanations``, ``localisation``,
                                                     ``failure_modes`` sections, tables, figures
counterfactual      :func:`counterfactual.counterfactual_stage`  ``counterfactual`` section, table,
                                                     figure (only when ``config.counterfactual``)
==================  ===============================  =========================================
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["StageOutput"]


@dataclass
class StageOutput:
    """What a stage adds to the result: ``sections`` (name -> JSON payload), ``tables``
    (name -> DataFrame, written as ``<name>.csv``), ``figures`` (name -> PNG bytes)."""

    sections: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)
