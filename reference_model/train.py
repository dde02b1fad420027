"""The training recipe in small functions: model, optimiser, loss, one epoch, evaluation,
early stopping, checkpoints, and the loop of one fold.

Recipe (paper, Section "Model"): torchvision backbone + ``Sequential(Dropout(0.4),
Linear(features, 2))``; Adam with weight decay and differential learning rates (early
backbone layers < deep layers and head); class-weighted cross-entropy with label smoothing;
cosine annealing per epoch; early stopping on validation loss (patience 7, best weights
kept); batch 32; fixed seed.

GPU path: bf16 autocast (``amp=True``), channels-last memory format, pinned-memory loaders
with workers, DDP under ``torchrun`` (see :func:`init_distributed`), resumable checkpoints
loaded with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from skinaudit.errors import ConfigError, ModelError

__all__ = ["build_model", "load_pretrained_backbone", "param_groups", "build_optimizer", "build_scheduler",
           "class_weights", "build_loss", "make_loader", "train_one_epoch", "evaluate", "EarlyStopping",
           "save_checkpoint", "load_checkpoint", "fit_fold", "FoldResult", "DistInfo", "init_distributed",
           "seed_everything", "EARLY_LAYERS"]

log = logging.getLogger(__name__)

#: Module-name prefixes counted as "early" layers (lowest learning rate), per family.
#: Everything else in the backbone is "deep"; the classification head is "head".
EARLY_LAYERS = {
    "resnet": ("conv1.", "bn1.", "layer1.", "layer2."),
    "resnext": ("conv1.", "bn1.", "layer1.", "layer2."),
    "wide_resnet": ("conv1.", "bn1.", "layer1.", "layer2."),
    "densenet": ("features.conv0.", "features.norm0.", "features.denseblock1.", "features.transition1.",
                 "features.denseblock2."),
    "efficientnet": ("features.0.", "features.1.", "features.2.", "features.3."),
}


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (CPU and CUDA)."""
    import random

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def _head_name(model) -> str:
    from skinaudit.models import _last_linear

    name = _last_linear(model)
    return name.rsplit(".", 1)[0] if name.endswith(".1") else name


def load_pretrained_backbone(model, path) -> dict:
    """Load ImageNet weights from a local file into ``model``'s backbone (never downloads).

    ``path`` is a torchvision state dict (e.g. ``resnet50-11ad3fa6.pth``), read with
    ``torch.load(weights_only=True)``. Head keys (1000-class ``fc`` / ``classifier``) are
    skipped; every backbone key must match. Returns ``{"loaded": n, "skipped_head": [...]}``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: weights file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise ModelError(f"{path}: not a readable weights-only state dict ({str(exc).splitlines()[0][:160]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    head = _head_name(model)
    own = model.state_dict()
    backbone = {k.removeprefix("module."): v for k, v in state.items()
                if not k.removeprefix("module.").startswith(head + ".")}
    skipped = sorted(k for k in state if k.removeprefix("module.").startswith(head + "."))
    missing = [k for k in own if not k.startswith(head + ".") and k not in backbone]
    unexpected = [k for k in backbone if k not in own]
    if missing or unexpected:
        raise ModelError(f"{path}: the weights do not fit this backbone (missing {len(missing)} keys, e.g. "
                         f"{missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]})")
    bad_shape = [k for k, v in backbone.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad_shape:
        raise ModelError(f"{path}: tensor shapes differ from the backbone for {bad_shape[:3]}")
    model.load_state_dict(backbone, strict=False)
    return {"loaded": len(backbone), "skipped_head": skipped}


def build_model(config, *, weights=None):
    """The configured backbone with the paper's head ``Sequential(Dropout(p), Linear(., 2))``.

    Built by :func:`skinaudit.models.build_torchvision_model` (nothing downloaded). With
    ``weights`` (a local ImageNet state dict) the backbone is loaded from it; without, the
    network is randomly initialised and a WARNING is logged (loudly when the configuration
    expects pretrained weights).
    """
    from skinaudit.models import build_torchvision_model

    model = build_torchvision_model(config.arch, num_outputs=2, paper_head=True, dropout=config.dropout)
    if weights is not None:
        info = load_pretrained_backbone(model, weights)
        log.info("loaded %d backbone tensors from %s (head skipped: %d keys)", info["loaded"], weights,
                 len(info["skipped_head"]))
    elif config.pretrained:
        log.warning("!!! NO PRETRAINED WEIGHTS: configuration '%s' expects ImageNet weights but no --weights "
                    "file was given; %s starts from RANDOM INITIALISATION and will not reach the paper's "
                    "numbers !!!", config.name, config.arch)
    else:
        log.warning("configuration '%s' trains %s from random initialisation (by design, no --weights)",
                    config.name, config.arch)
    return model


def param_groups(model, config) -> list[dict]:
    """Adam parameter groups ``early``, ``deep`` and ``head`` with their learning rates.

    Early layers are the module prefixes of :data:`EARLY_LAYERS` for the architecture's
    family (e.g. ResNet ``conv1, bn1, layer1, layer2``); the head is the final
    ``Sequential(Dropout, Linear)``. With ``differential_lr=False`` there is one group
    at ``lr_head``. Empty groups are dropped.
    """
    if not config.differential_lr:
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": config.lr_head,
                 "name": "all"}]
    family = next((f for f in sorted(EARLY_LAYERS, key=len, reverse=True) if config.arch.startswith(f)), None)
    if family is None:
        raise ConfigError(f"no early-layer rule for architecture {config.arch!r}; known families: "
                          f"{', '.join(EARLY_LAYERS)} (or set differential_lr=False)")
    head = _head_name(model) + "."
    groups = {"early": [], "deep": [], "head": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith(head):
            groups["head"].append(p)
        elif name.startswith(EARLY_LAYERS[family]):
            groups["early"].append(p)
        else:
            groups["deep"].append(p)
    lrs = {"early": config.lr_early, "deep": config.lr_deep, "head": config.lr_head}
    return [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]


def build_optimizer(model, config):
    """Adam over :func:`param_groups` with ``weight_decay``."""
    return torch.optim.Adam(param_groups(model, config), weight_decay=config.weight_decay)


def build_scheduler(optimizer, config):
    """Cosine annealing over ``max_epochs`` epochs (stepped once per epoch), or None."""
    if config.scheduler == "none":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.max_epochs)


def class_weights(labels) -> np.ndarray:
    """Inverse-frequency class weights ``w_c = n / (K n_c)`` (K = 2), shape (2,).

    Balanced classes give ``[1, 1]``; 80% benign gives ``[0.625, 2.5]``.
    """
    y = np.asarray(labels).astype(int)
    counts = np.bincount(y, minlength=2).astype(float)
    if counts.min() == 0:
        raise ConfigError(f"class weights need both classes in the training split; got counts {counts.tolist()}")
    return len(y) / (2.0 * counts)


def build_loss(config, train_labels, *, device="cpu"):
    """Cross-entropy, class-weighted (``class_weights``) and label-smoothed (``label_smoothing``)."""
    weight = None
    if config.class_weights:
        weight = torch.tensor(class_weights(train_labels), dtype=torch.float32, device=device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def make_loader(dataset, *, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                pin_memory: bool = False, distributed=None, drop_last: bool = False):
    """A DataLoader; with ``distributed`` (a :class:`DistInfo` of world > 1) a
    DistributedSampler shards the data and the caller must call ``sampler.set_epoch``."""
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = None
    if distributed is not None and distributed.world_size > 1:
        sampler = DistributedSampler(dataset, num_replicas=distributed.world_size, rank=distributed.rank,
                                     shuffle=shuffle, seed=seed, drop_last=drop_last)
    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=drop_last, generator=g,
                      persistent_workers=num_workers > 0)


def _autocast(device, amp: bool):
    dev = torch.device(device)
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bool(amp))


def _to(x, device, channels_last: bool):
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.ndim == 4 else x


def train_one_epoch(model, loader, loss_fn, optimizer, *, device="cpu", amp: bool = False,
                    channels_last: bool = False, progress=None) -> dict:
    """One pass over ``loader`` in train mode.

    Returns ``{"loss": mean training loss (per image), "n": images seen, "seconds": wall
    time, "images_per_s": n / seconds}``.
    """
    model.train()
    total, n, t0 = 0.0, 0, time.perf_counter()
    it = loader if progress is None else progress(loader, total=len(loader), desc="train")
    for x, y in it:
        x, y = _to(x, device, channels_last), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        if not torch.isfinite(loss):
            raise ModelError(f"the training loss became {loss.item()} (diverged); lower the learning rates")
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(y)
        n += len(y)
    seconds = time.perf_counter() - t0
    return {"loss": total / max(n, 1), "n": n, "seconds": seconds, "images_per_s": n / seconds if seconds else math.nan}


@torch.no_grad()
def evaluate(model, loader, loss_fn=None, *, device="cpu", amp: bool = False, channels_last: bool = False,
             tta=("identity",), progress=None) -> dict:
    """Score ``loader`` in eval mode (no augmentation except the given TTA flips).

    Returns ``{"loss": mean loss on the un-flipped view (NaN without loss_fn), "scores":
    ndarray (n,) of P(malignant) averaged over the TTA views, "labels": ndarray (n,),
    "seconds", "images_per_s"}``.
    """
    from .ensemble import TTAEnsemble

    was_training = model.training
    model.eval()
    tta_model = TTAEnsemble([model], tta=tta) if tuple(tta) != ("identity",) else None
    total, n, scores, labels, t0 = 0.0, 0, [], [], time.perf_counter()
    it = loader if progress is None else progress(loader, total=len(loader), desc="evaluate")
    try:
        for x, y in it:
            x, y = _to(x, device, channels_last), y.to(device, non_blocking=True)
            with _autocast(device, amp):
                logits = model(x).float() if (loss_fn is not None or tta_model is None) else None
                if tta_model is not None:
                    prob = tta_model(x).float().exp()[:, 1]
                else:
                    prob = torch.softmax(logits, dim=1)[:, 1]
            if loss_fn is not None:
                total += float(loss_fn(logits, y)) * len(y)
            n += len(y)
            scores.append(prob.float().cpu().numpy())
            labels.append(y.cpu().numpy())
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - t0
    return {"loss": total / n if (loss_fn is not None and n) else math.nan,
            "scores": np.concatenate(scores) if scores else np.empty(0),
            "labels": np.concatenate(labels) if labels else np.empty(0, dtype=int),
            "seconds": seconds, "images_per_s": n / seconds if seconds else math.nan}


@dataclass
class EarlyStopping:
    """Stop when the validation loss has not improved by more than ``min_delta`` for
    ``patience`` consecutive epochs; keep a copy of the best weights.

    ``step(loss, model)`` returns True when training should stop.
    """

    patience: int = 7
    min_delta: float = 0.0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    epoch: int = -1
    best_state: dict | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.patience < 1:
            raise ConfigError(f"the 'patience' parameter must be at least 1; got {self.patience}")

    def step(self, loss: float, model=None) -> bool:
        self.epoch += 1
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad_epochs = float(loss), self.epoch, 0
            if model is not None:
                self.best_state = {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"patience": self.patience, "min_delta": self.min_delta, "best_loss": self.best_loss,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "epoch": self.epoch,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def _unwrap(model):
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


def save_checkpoint(path, *, model, optimizer, scheduler, stopper: EarlyStopping, history: list, epoch: int) -> None:
    """Write a resumable checkpoint (tensors and plain containers only, so that
    ``torch.load(weights_only=True)`` reads it). Written to ``path.tmp`` then renamed."""
    state = {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "stopper": stopper.state_dict(), "history": history, "epoch": int(epoch),
             "rng": torch.get_rng_state()}
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, *, model, optimizer, scheduler, stopper: EarlyStopping) -> tuple[int, list]:
    """Restore a checkpoint from :func:`save_checkpoint` (``weights_only=True``).

    Returns ``(next_epoch, history)``.
    """
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"{path}: not a resumable checkpoint ({str(exc).splitlines()[0][:160]})") from None
    _unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    stopper.load_state_dict(state["stopper"])
    torch.set_rng_state(state["rng"])
    return int(state["epoch"]) + 1, list(state["history"])


@dataclass
class DistInfo:
    """Rank, world size and local rank of this process (world 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (env:// init; NCCL on CUDA,
    Gloo otherwise) and pin this process to ``cuda:LOCAL_RANK``; else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def _sync_buffers(model, dist: DistInfo) -> None:
    """DDP broadcasts buffers before each forward, so after the last training step every rank
    holds its own BatchNorm statistics; copy rank 0's before evaluating."""
    if dist.world_size > 1:
        import torch.distributed as tdist

        for b in _unwrap(model).buffers():
            tdist.broadcast(b, src=0)


def _from_rank0(value: float, dist: DistInfo, device) -> float:
    """Rank 0's value on every rank, so all ranks take the same early-stopping decision."""
    if dist.world_size <= 1:
        return value
    import torch.distributed as tdist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    tdist.broadcast(t, src=0)
    return float(t.item())


@dataclass
class FoldResult:
    """The outcome of one fold: the best model (eval mode), its epoch log, and the
    validation scores of its best weights with TTA (``val_scores``) and without
    (``val_scores_plain``), in the order of ``val_index``."""

    fold: int
    model: object
    history: list
    best_epoch: int
    best_val_loss: float
    val_index: np.ndarray
    val_scores: np.ndarray
    val_scores_plain: np.ndarray
    stopped_early: bool


def fit_fold(config, train_ds, val_ds, *, fold: int = 0, device="cpu", weights=None, amp: bool = False,
             channels_last: bool = False, num_workers: int = 0, pin_memory: bool = False,
             checkpoint=None, resume: bool = False, dist: DistInfo | None = None, val_index=None,
             progress=None) -> FoldResult:
    """Train one model on ``train_ds`` with early stopping on ``val_ds``.

    Parameters
    ----------
    config : TrainConfig
    train_ds, val_ds : ImageTensorDataset
        Training (augmented) and validation (normalised only) datasets.
    fold : int
        Fold index (seeds ``config.seed + fold``).
    weights : path, optional
        Local ImageNet weights for the backbone.
    checkpoint : path, optional
        Where to write a resumable checkpoint after each epoch (main process only);
        with ``resume=True`` an existing one is loaded first.

    Returns
    -------
    FoldResult
        The best model, the epoch log, and validation scores of the best weights both
        with the configured TTA (``val_scores``) and without (``val_scores_plain``).
    """
    dist = dist or DistInfo()
    seed_everything(config.seed + fold)
    max_epochs = int(config.max_epochs)
    model = build_model(config, weights=weights).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_model = model
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        train_model = DistributedDataParallel(model, device_ids=[dist.local_rank] if torch.cuda.is_available()
                                              else None)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    loss_fn = build_loss(config, train_ds.labels, device=device)
    stopper = EarlyStopping(patience=config.patience)
    per_rank_batch = max(1, config.batch_size // dist.world_size)
    train_loader = make_loader(train_ds, batch_size=per_rank_batch, shuffle=True, seed=config.seed + fold,
                               num_workers=num_workers, pin_memory=pin_memory, distributed=dist, drop_last=False)
    val_loader = make_loader(val_ds, batch_size=max(per_rank_batch, 64), shuffle=False, num_workers=num_workers,
                             pin_memory=pin_memory)
    start, history = 0, []
    if resume and checkpoint is not None and os.path.isfile(checkpoint):
        start, history = load_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler,
                                         stopper=stopper)
        log.info("fold %d: resumed from %s at epoch %d", fold, checkpoint, start)
    stopped = stopper.bad_epochs >= stopper.patience
    for epoch in range(start, max_epochs):
        if stopped:
            break
        if getattr(train_loader, "sampler", None) is not None and hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        tr = train_one_epoch(train_model, train_loader, loss_fn, optimizer, device=device, amp=amp,
                             channels_last=channels_last, progress=progress)
        _sync_buffers(model, dist)
        ev = evaluate(model, val_loader, loss_fn, device=device, amp=amp, channels_last=channels_last,
                      progress=progress)
        ev["loss"] = _from_rank0(ev["loss"], dist, device)
        lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
        if scheduler is not None:
            scheduler.step()
        stopped = stopper.step(ev["loss"], model)
        row = {"fold": fold, "epoch": epoch, "train_loss": tr["loss"], "val_loss": ev["loss"],
               "train_images_per_s": tr["images_per_s"] * dist.world_size, "train_seconds": tr["seconds"],
               "val_images_per_s": ev["images_per_s"], "val_auc": _auc(ev["labels"], ev["scores"]),
               "lr": lrs, "best_epoch": stopper.best_epoch}
        history.append(row)
        log.info("fold %d epoch %d: train loss %.4f, val loss %.4f, val AUC %.4f, %.1f img/s", fold, epoch,
                 tr["loss"], ev["loss"], row["val_auc"], row["train_images_per_s"])
        if checkpoint is not None and dist.is_main:
            save_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler, stopper=stopper,
                            history=history, epoch=epoch)
    if stopper.best_state is not None:
        model.load_state_dict(stopper.best_state)
    model.eval()
    plain = evaluate(model, val_loader, None, device=device, amp=amp, channels_last=channels_last)
    tta = (evaluate(model, val_loader, None, device=device, amp=amp, channels_last=channels_last, tta=config.tta)
           if tuple(config.tta) != ("identity",) else plain)
    return FoldResult(fold=fold, model=model, history=history, best_epoch=stopper.best_epoch,
                      best_val_loss=stopper.best_loss,
                      val_index=np.asarray(val_index if val_index is not None else np.arange(len(val_ds))),
                      val_scores=tta["scores"], val_scores_plain=plain["scores"], stopped_early=bool(stopped))


def _auc(y, s) -> float:
    from skinaudit.metrics import auc_score

    return auc_score(np.asarray(y).astype(int), np.clip(np.asarray(s, dtype=float), 0.0, 1.0))

