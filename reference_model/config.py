"""Training configurations as data: the paper's recipe, its ablation rows and backbones.

Every configuration is a frozen :class:`TrainConfig`; :data:`CONFIGS` maps a name to one.
Nothing about the recipe is hidden in code: the training loop reads every choice (learning
rates, scheduler, loss, folds, TTA, threshold rule) from the configuration, so each row of
the paper's Table 4 and each backbone of Table 2 is one entry here.

Where the paper is vague (it gives no learning rates, weight decay, smoothing factor,
rotation range, TTA set or recall target), the values below are our reading and are
marked as such in ``docs/reference_model.md``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from skinaudit.errors import ConfigError

__all__ = ["TrainConfig", "CONFIGS", "get_config", "TABLE2_CONFIGS", "TABLE4_CONFIGS", "PAPER_TABLES"]

#: Test-time augmentations understood by :class:`reference_model.ensemble.TTAEnsemble`.
TTA_NAMES = ("identity", "hflip", "vflip", "hvflip")


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe. All fields are plain data (JSON-serialisable).

    Parameters
    ----------
    name : str
        Registry name (``paper``, ``cpu-small``, ``table4-1-baseline`` ...).
    arch : str
        torchvision architecture (``resnet50``, ``efficientnet_b3``, ``densenet121``,
        ``resnet18``); built by :func:`skinaudit.models.build_torchvision_model` with the
        paper's head ``Sequential(Dropout(dropout), Linear(features, 2))``.
    image_size : int
        Side in pixels; images are squashed to ``image_size x image_size`` (bilinear), as
        :class:`skinaudit.models.Preprocess` does at audit time.
    pretrained : bool
        Whether the recipe expects ImageNet weights (given with ``--weights FILE``). When
        True and no file is given, training starts from random initialisation with a loud
        warning.
    dropout : float
        Dropout probability of the head (paper: 0.4).
    batch_size, max_epochs, patience : int
        Mini-batch size (paper: 32); epoch cap; early-stopping patience on validation loss
        (paper: 7; the best weights are kept).
    lr_early, lr_deep, lr_head : float
        Adam learning rates of the early backbone layers, the deep backbone layers and the
        head (differential learning rates). With ``differential_lr=False`` every parameter
        uses ``lr_head``.
    weight_decay : float
        Adam weight decay (L2).
    scheduler : {"cosine", "none"}
        Cosine annealing over ``max_epochs`` (per epoch) or a constant rate.
    label_smoothing : float
        Label smoothing of the cross-entropy, in [0, 1).
    class_weights : bool
        Weight the cross-entropy by ``w_c = n / (K n_c)`` from the training split.
    augment : bool
        Training augmentations (rotation, flips, colour jitter, random erasing).
    rotation_degrees, jitter, erasing_p : float
        Augmentation strengths: rotation range +-degrees; colour jitter of brightness,
        contrast and saturation (hue = jitter / 4); random-erasing probability.
    n_splits : int
        Folds of the cross-validation (paper: 3).
    train_folds : int
        How many of the folds are trained (1 = a single model, the ablation's baseline).
    split : {"grouped", "stratified"}
        ``grouped``: StratifiedGroupKFold on ``lesion_id`` (no lesion in two folds);
        ``stratified``: the paper's StratifiedKFold, which can leak a lesion across folds.
    tta : tuple of str
        Test-time augmentations averaged at inference (subset of ``identity, hflip,
        vflip, hvflip``); ``("identity",)`` means none.
    threshold_rule : {"recall", "fixed"}
        ``recall``: t* = argmax F1 subject to recall >= ``gamma`` on the validation scores,
        grid step ``step`` (skinaudit's RecallConstrainedThreshold); ``fixed``: ``threshold``.
    gamma, step, threshold : float
        Recall floor, grid step and the fixed threshold.
    seed : int
        Seed of splits, initialisation, shuffling and augmentation.
    description : str
        Human-readable row label (the paper's Table 2/4 wording).
    """

    name: str
    arch: str = "resnet50"
    image_size: int = 299
    pretrained: bool = True
    dropout: float = 0.4
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 7
    lr_early: float = 1e-5
    lr_deep: float = 1e-4
    lr_head: float = 1e-3
    differential_lr: bool = True
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    label_smoothing: float = 0.1
    class_weights: bool = True
    augment: bool = True
    rotation_degrees: float = 20.0
    jitter: float = 0.2
    erasing_p: float = 0.25
    n_splits: int = 3
    train_folds: int = 3
    split: str = "grouped"
    tta: tuple = TTA_NAMES
    threshold_rule: str = "recall"
    gamma: float = 0.85
    step: float = 0.02
    threshold: float = 0.5
    seed: int = 42
    description: str = ""
    tags: tuple = field(default_factory=tuple)

    def __post_init__(self):
        def bad(what):
            raise ConfigError(f"configuration '{self.name}': {what}")

        if self.image_size < 16:
            bad(f"image_size must be at least 16; got {self.image_size}")
        if not 0.0 <= self.dropout < 1.0:
            bad(f"dropout must be in [0, 1); got {self.dropout}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            bad("batch_size, max_epochs and patience must be at least 1")
        if min(self.lr_early, self.lr_deep, self.lr_head) <= 0 or self.weight_decay < 0:
            bad("learning rates must be > 0 and weight_decay >= 0")
        if self.scheduler not in ("cosine", "none"):
            bad(f"scheduler must be 'cosine' or 'none'; got {self.scheduler!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            bad(f"label_smoothing must be in [0, 1); got {self.label_smoothing}")
        if self.n_splits < 2:
            bad(f"n_splits must be at least 2; got {self.n_splits}")
        if not 1 <= self.train_folds <= self.n_splits:
            bad(f"train_folds must be in [1, n_splits={self.n_splits}]; got {self.train_folds}")
        if self.split not in ("grouped", "stratified"):
            bad(f"split must be 'grouped' or 'stratified'; got {self.split!r}")
        unknown = [t for t in self.tta if t not in TTA_NAMES]
        if not self.tta or unknown:
            bad(f"tta must be a non-empty subset of {', '.join(TTA_NAMES)}; got {self.tta}")
        if self.threshold_rule not in ("recall", "fixed"):
            bad(f"threshold_rule must be 'recall' or 'fixed'; got {self.threshold_rule!r}")
        if not 0.0 < self.gamma <= 1.0 or not 0.0 < self.step <= 0.5 or not 0.0 <= self.threshold <= 1.0:
            bad("gamma must be in (0, 1], step in (0, 0.5] and threshold in [0, 1]")
        if not 0.0 <= self.erasing_p <= 1.0 or self.rotation_degrees < 0 or self.jitter < 0:
            bad("erasing_p must be in [0, 1]; rotation_degrees and jitter must be >= 0")

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed (validated again); unknown fields raise ConfigError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"unknown configuration field(s) {unknown}; fields are {sorted(names)}")
        if "tta" in changes:
            changes["tta"] = tuple(changes["tta"])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["tta"] = list(self.tta)
        d["tags"] = list(self.tags)
        return d


_PAPER = TrainConfig(name="paper", description="ResNet50, full recipe (3-fold CV + TTA ensemble)",
                     tags=("table3", "table4", "table2"))

# Table 4: the ablation, cumulative. Each row adds one ingredient to the row above.
_T4_BASE = _PAPER.replace(
    name="table4-1-baseline", description="baseline (single fold, t=0.5)", differential_lr=False,
    scheduler="none", label_smoothing=0.0, class_weights=False, threshold_rule="fixed", threshold=0.5,
    train_folds=1, tta=("identity",), tags=("table4",))
_T4_LR = _T4_BASE.replace(name="table4-2-lr-scheduler", description="+ differential LR + scheduler",
                          differential_lr=True, scheduler="cosine")
_T4_LOSS = _T4_LR.replace(name="table4-3-smoothing-weights", description="+ label smoothing + class weights",
                          label_smoothing=0.1, class_weights=True)
_T4_THR = _T4_LOSS.replace(name="table4-4-recall-threshold", description="+ recall-optimised threshold",
                           threshold_rule="recall")
_T4_CV = _T4_THR.replace(name="table4-5-3fold-cv", description="+ 3-fold CV", train_folds=3)
_T4_FULL = _T4_CV.replace(name="table4-6-tta-ensemble", description="+ TTA ensemble (full)", tta=TTA_NAMES)

# Table 2: backbones under the same recipe as Table 4's row 2 (differential LR + scheduler,
# single fold): the paper's ResNet50 row of Table 2 equals that row of Table 4.
_T2 = {arch: _T4_LR.replace(name=f"table2-{arch}", arch=arch, description=label, tags=("table2",))
       for arch, label in (("efficientnet_b3", "EfficientNet-B3"), ("densenet121", "DenseNet"),
                           ("resnet50", "ResNet50"))}

_CPU_SMALL = TrainConfig(
    name="cpu-small", arch="resnet18", image_size=128, pretrained=False, batch_size=32, max_epochs=7,
    patience=7, lr_early=1e-3, lr_deep=1e-3, lr_head=1e-3, weight_decay=1e-4, n_splits=3, train_folds=1,
    description="ResNet18 @128 px from random initialisation, trainable on a laptop CPU", tags=("cpu",))

TABLE4_CONFIGS = (_T4_BASE, _T4_LR, _T4_LOSS, _T4_THR, _T4_CV, _T4_FULL)
TABLE2_CONFIGS = tuple(_T2.values())
CONFIGS: dict[str, TrainConfig] = {c.name: c for c in (_PAPER, *TABLE4_CONFIGS, *TABLE2_CONFIGS, _CPU_SMALL)}

#: The paper's reported test-set numbers (for side-by-side tables; not used in training).
PAPER_TABLES = {
    "table2": {
        "table2-efficientnet_b3": {"auc": 0.9144, "recall": 0.7847, "fn": 62, "fp": 164},
        "table2-densenet121": {"auc": 0.8980, "recall": 0.6909, "fn": 89, "fp": 147},
        "table2-resnet50": {"auc": 0.9159, "recall": 0.8194, "fn": 52, "fp": 227},
    },
    "table3": {"paper": {"auc": 0.9262, "recall": 0.8785, "precision": 0.5030, "f1": 0.6397,
                         "accuracy": 0.8091, "specificity": 0.7927, "tp": 253, "fn": 35, "tn": 955, "fp": 250}},
    "table4": {
        "table4-1-baseline": {"auc": 0.8915, "recall": 0.7639, "precision": 0.5450, "f1": 0.6360, "fn": 68, "fp": 184},
        "table4-2-lr-scheduler": {"auc": 0.9159, "recall": 0.8194, "precision": 0.5097, "f1": 0.6285, "fn": 52,
                                  "fp": 227},
        "table4-3-smoothing-weights": {"auc": 0.9176, "recall": 0.7670, "precision": 0.6280, "f1": 0.6910,
                                       "fn": 67, "fp": 131},
        "table4-4-recall-threshold": {"auc": 0.9176, "recall": 0.8500, "precision": 0.5400, "f1": 0.6610,
                                      "fn": 43, "fp": 201},
        "table4-5-3fold-cv": {"auc": 0.9220, "recall": 0.8610, "precision": 0.5100, "f1": 0.6390, "fn": 40,
                              "fp": 245},
        "table4-6-tta-ensemble": {"auc": 0.9262, "recall": 0.8785, "precision": 0.5030, "f1": 0.6397, "fn": 35,
                                  "fp": 250},
    },
}


def get_config(name: str, **overrides) -> TrainConfig:
    """The registered configuration ``name``, with ``overrides`` applied (validated).

    Raises :class:`~skinaudit.errors.ConfigError` for an unknown name or field.
    """
    if name not in CONFIGS:
        raise ConfigError(f"unknown configuration {name!r}; choose from {', '.join(CONFIGS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return CONFIGS[name].replace(**overrides) if overrides else CONFIGS[name]
