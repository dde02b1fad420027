"""reference_model: the paper's recall-oriented ResNet50 ensemble, reproducible on a GPU and
trainable (as ``cpu-small``) on a CPU. Uses skinaudit's public API, never the reverse.

Research use only; not a diagnostic device. See ``docs/reference_model.md``.
"""
from .config import CONFIGS, TrainConfig, get_config

__all__ = ["CONFIGS", "TrainConfig", "get_config"]
