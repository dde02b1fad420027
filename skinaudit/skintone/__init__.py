"""Skin tone of dermoscopy images: ITA from non-lesion skin pixels, grouping schemes, casts.

The package follows the data: :mod:`~skinaudit.skintone.schemes` (grouping schemes as data),
:mod:`~skinaudit.skintone.params` (the estimator's options), :mod:`~skinaudit.skintone.sample`
(which pixels are skin), :mod:`~skinaudit.skintone.illuminant` (per-image colour correction),
:mod:`~skinaudit.skintone.ita` (ITA of one image), :mod:`~skinaudit.skintone.cast` (the
dataset-level colour-cast step), :mod:`~skinaudit.skintone.uncertainty` (per-image intervals) and :mod:`~skinaudit.skintone.dataset` (whole datasets and the
estimator-sensitivity table). Choices and their measured effects: docs/skintone.md.
"""
from __future__ import annotations

from .cast import cast_summary, correct_cast, dataset_cast_groups
from .dataset import inspect_dataset, inspect_rows_and_variants, inspect_with_sensitivity, sensitivity_table
from .ita import ItaResult, analyse_image, estimate_ita, ita_degrees, unknown_reasons
from .params import BEYOND_RANGE, DATASET_ITA, DEFAULT_REFERENCE_B, ITA_CORRECTIONS, SKIN_MARGINS, ItaParams
from .sample import skin_mask
from .schemes import SCHEMES, UNKNOWN, Scheme, assign_groups, get_scheme
from .uncertainty import add_uncertainty, patch_bootstrap, probability_columns, straddle_counts

__all__ = [
    "Scheme",
    "SCHEMES",
    "get_scheme",
    "assign_groups",
    "ita_degrees",
    "ItaParams",
    "ItaResult",
    "estimate_ita",
    "analyse_image",
    "skin_mask",
    "inspect_dataset",
    "inspect_with_sensitivity",
    "inspect_rows_and_variants",
    "correct_cast",
    "cast_summary",
    "dataset_cast_groups",
    "DATASET_ITA",
    "DEFAULT_REFERENCE_B",
    "ITA_CORRECTIONS",
    "SKIN_MARGINS",
    "sensitivity_table",
    "UNKNOWN",
    "BEYOND_RANGE",
    "unknown_reasons",
    "patch_bootstrap",
    "add_uncertainty",
    "probability_columns",
    "straddle_counts",
]

