"""skinaudit: fairness and failure-mode audits of skin-lesion classifiers.

An audit tool for researchers and reviewers, not a diagnostic device. The public API:

>>> import skinaudit as sa
>>> ds = sa.load_isic("images/", "labels.csv")                        # doctest: +SKIP
>>> result = sa.run_audit(sa.PrecomputedScores.from_csv("s.csv"), ds)  # doctest: +SKIP
>>> result.overall["recall"]                                          # doctest: +SKIP
"""
from ._version import __version__

from ._environ import malformed_epoch_hidden

with malformed_epoch_hidden():  # see skinaudit._environ
    from .audit import run_audit
    from .config import AuditConfig
    from .result import AuditResult
    from .report import write_audit
    from .data import AuditDataset, load_isic, load_isic_archive, load_manifest
    from .executors import LocalExecutor, RayExecutor
    from .errors import (ConfigError, DataError, ImageError, MissingDependencyError, ModelError, NotFittedError,
                         SkinauditError, UnsafeCheckpointError)
    from .imageio import read_image, read_mask
    from .metrics import binary_metrics, metrics_from_counts
    from .models import (CallableModel, OnnxModel, PrecomputedScores, Preprocess, ScoreModel, TorchModel,
                         build_torchvision_model, load_model, score_dataset)
    from .phantoms import PhantomSpec, generate_phantoms, make_phantom
    # the stages, usable alone
    from .explain import compute_cams
    from .fairness import fairness_report, recalibrate
    from .failures import FAILURE_MODES, classify_failures, failure_features
    from .lesion import detect_artifacts, segment_lesion
    from .localisation import localisation_table, sharpen
    from .metrics import group_metrics
    from .skintone import ItaParams, analyse_image, assign_groups, estimate_ita, get_scheme, inspect_dataset
    from .thresholds import FairlearnThresholds, GroupRecallThresholds, RecallConstrainedThreshold

__all__ = [
    "__version__",
    "AuditConfig", "AuditResult", "run_audit", "write_audit", "LocalExecutor", "RayExecutor",
    "AuditDataset", "load_isic", "load_isic_archive", "load_manifest",
    "ConfigError", "DataError", "ImageError", "MissingDependencyError", "ModelError", "NotFittedError",
    "SkinauditError", "UnsafeCheckpointError",
    "read_image", "read_mask",
    "binary_metrics", "metrics_from_counts",
    "CallableModel", "OnnxModel", "PrecomputedScores", "Preprocess", "ScoreModel", "TorchModel",
    "build_torchvision_model", "load_model", "score_dataset",
    "PhantomSpec", "generate_phantoms", "make_phantom",
    "ItaParams", "estimate_ita", "analyse_image", "inspect_dataset", "get_scheme", "assign_groups",
    "segment_lesion", "detect_artifacts",
    "group_metrics", "fairness_report", "recalibrate",
    "RecallConstrainedThreshold", "GroupRecallThresholds", "FairlearnThresholds",
    "compute_cams", "sharpen", "localisation_table",
    "FAILURE_MODES", "classify_failures", "failure_features",
]
