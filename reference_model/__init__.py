"""reference_model: the paper's recall-oriented ResNet50 ensemble, reproducible on a GPU and
trainable (as ``cpu-small``) on a CPU. Uses skinaudit's public API, never the reverse.

Research use only; not a diagnostic device. See ``docs/reference_model.md``.

Public names (torch is imported only when a torch-using name is first accessed):

* configurations: :class:`TrainConfig`, :data:`CONFIGS`, :func:`get_config`
* data: :func:`make_folds`, :func:`lesion_leakage`, :func:`load_images`
* training: :func:`build_model`, :func:`build_optimizer`, :func:`train_one_epoch`,
  :func:`evaluate`, :class:`EarlyStopping`, :func:`fit_fold`
* ensemble and export: :class:`TTAEnsemble`, :func:`export_torchscript`, :func:`save_state_dict`
* whole runs: :func:`train_cv`, :func:`choose_threshold`, :func:`predict_scores`,
  :func:`evaluate_scores`
* tables: :func:`results_table`, :func:`write_results`
"""
from importlib import import_module

from .config import CONFIGS, TrainConfig, get_config

_LAZY = {
    "make_folds": "data", "lesion_leakage": "data", "load_images": "data",
    "build_model": "train", "build_optimizer": "train", "train_one_epoch": "train", "evaluate": "train",
    "EarlyStopping": "train", "fit_fold": "train",
    "TTAEnsemble": "ensemble", "export_torchscript": "export", "save_state_dict": "export",
    "train_cv": "pipeline", "choose_threshold": "pipeline", "predict_scores": "pipeline",
    "evaluate_scores": "pipeline", "results_table": "results", "write_results": "results",
}

__all__ = ["CONFIGS", "TrainConfig", "get_config", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'reference_model' has no attribute {name!r}")
