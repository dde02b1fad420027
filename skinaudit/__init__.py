"""skinaudit: fairness and failure-mode audits of skin-lesion classifiers.

An audit tool for researchers and reviewers, not a diagnostic device. The public API:

>>> import skinaudit as sa
>>> ds = sa.load_isic("images/", "labels.csv")                        # doctest: +SKIP
>>> result = sa.run_audit(sa.PrecomputedScores.from_csv("s.csv"), ds)  # doctest: +SKIP
>>> result.overall["recall"]                                          # doctest: +SKIP
"""
from ._version import __version__

from .audit import run_audit
from .config import AuditConfig
from .result import AuditResult
from .report import write_audit
from .data import AuditDataset, load_isic, load_isic_archive, load_manifest
from .errors import (ConfigError, DataError, ImageError, MissingDependencyError, ModelError, NotFittedError,
                     SkinauditError, UnsafeCheckpointError)
from .imageio import read_image, read_mask
from .metrics import binary_metrics, metrics_from_counts
from .models import (CallableModel, OnnxModel, PrecomputedScores, Preprocess, ScoreModel, TorchModel,
                     build_torchvision_model, load_model, score_dataset)
from .phantoms import PhantomSpec, generate_phantoms, make_phantom

__all__ = [
    "__version__",
    "AuditConfig", "AuditResult", "run_audit", "write_audit",
    "AuditDataset", "load_isic", "load_isic_archive", "load_manifest",
    "ConfigError", "DataError", "ImageError", "MissingDependencyError", "ModelError", "NotFittedError",
    "SkinauditError", "UnsafeCheckpointError",
    "read_image", "read_mask",
    "binary_metrics", "metrics_from_counts",
    "CallableModel", "OnnxModel", "PrecomputedScores", "Preprocess", "ScoreModel", "TorchModel",
    "build_torchvision_model", "load_model", "score_dataset",
    "PhantomSpec", "generate_phantoms", "make_phantom",
]
