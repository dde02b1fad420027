"""The whole training run: folds -> one model per fold -> ensemble + TTA -> threshold ->
export, with a JSON log. Prediction and evaluation go through skinaudit's own loaders.

Output folder of :func:`train_cv`::

    model.pt             TorchScript ensemble of the fold models x TTA flips
    model_state.pt       state dict of the single best fold model (lowest validation loss)
    model_info.json      arch, image size, threshold for each of the two files, how chosen
    training_log.json    configuration, data, folds, leakage, per-epoch history, throughput
    val_scores.csv       out-of-fold validation scores (image_id, label, fold, score, score_plain)
    fold<k>/             checkpoint.pt (resumable), best_state.pt
"""
from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from skinaudit.errors import ConfigError, DataError, ModelError

from .data import ImageTensorDataset, lesion_leakage, load_images, make_folds, normalize, training_transform
from .ensemble import TTAEnsemble
from .export import (MODEL_INFO, audit_command, export_program, export_torchscript, save_state_dict, write_json,
                     write_model_info)
from .train import FoldResult, build_model, fit_fold, init_distributed

__all__ = ["train_cv", "choose_threshold", "limit_dataset", "predict_scores", "evaluate_scores",
           "resolve_device"]

log = logging.getLogger(__name__)


def resolve_device(device: str | None = None) -> str:
    """``"auto"``/None -> ``cuda`` when available, else ``cpu``; otherwise checked as given."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"the 'device' parameter must be cpu, cuda, cuda:N or auto; got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was requested but torch sees no CUDA GPU")
    return str(dev)


def limit_dataset(dataset, n: int, *, random_state: int = 42):
    """A stratified random subset of ``n`` images (a quick run); the dataset itself if n >= len."""
    from sklearn.model_selection import train_test_split

    if n is None or n >= len(dataset):
        return dataset
    if n < 4:
        raise ConfigError(f"the 'limit' parameter must be at least 4; got {n}")
    y = dataset.labels
    ids, _ = train_test_split(dataset.ids, train_size=int(n), stratify=y if min(np.bincount(y, minlength=2)) >= 2
                              else None, random_state=random_state)
    return dataset.subset(sorted(ids))


def choose_threshold(y_true, y_score, config) -> dict:
    """The operating threshold from validation scores, by the configuration's rule.

    ``recall``: :class:`skinaudit.thresholds.RecallConstrainedThreshold` (t* = argmax F1
    subject to recall >= gamma, grid step ``step``); ``fixed``: ``config.threshold``.
    Returns ``{"threshold", "rule", "gamma", "step", "feasible", "fallback", "n_val",
    "val_recall", "val_precision", "val_f1"}``.
    """
    from skinaudit.metrics import binary_metrics

    y = np.asarray(y_true).astype(int)
    s = np.asarray(y_score, dtype=float)
    out = {"rule": config.threshold_rule, "gamma": config.gamma, "step": config.step, "n_val": int(len(y)),
           "feasible": None, "fallback": None}
    if config.threshold_rule == "recall":
        from skinaudit.thresholds import RecallConstrainedThreshold

        est = RecallConstrainedThreshold(gamma=config.gamma, step=config.step).fit(y, s)
        out.update(threshold=float(est.threshold_), feasible=bool(est.feasible_), fallback=est.fallback_)
    else:
        out["threshold"] = float(config.threshold)
    m = binary_metrics(y, s, threshold=out["threshold"])
    out.update(val_recall=m["recall"], val_precision=m["precision"], val_f1=m["f1"], val_auc=m["auc"])
    return out


def _versions() -> dict:
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "threads": torch.get_num_threads()}


def _fold_result_from_disk(fold_dir: Path, fold: int, config, val_index) -> FoldResult | None:
    best, scores = fold_dir / "best_state.pt", fold_dir / "val_scores.csv"
    if not (best.is_file() and scores.is_file()):
        return None
    model = build_model(config.replace(pretrained=False))
    model.load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
    df = pd.read_csv(scores)
    if len(df) != len(val_index):
        raise DataError(f"{scores}: holds {len(df)} validation scores but fold {fold} has {len(val_index)} images; "
                        "the data or the split changed since that run (use a fresh --out)")
    return FoldResult(fold=fold, model=model.eval(), history=[], best_epoch=-1, best_val_loss=float("nan"),
                      val_index=np.asarray(val_index), val_scores=df["score"].to_numpy(float),
                      val_scores_plain=df["score_plain"].to_numpy(float), stopped_early=False)


def train_cv(config, dataset, *, out_dir, device: str = "cpu", weights=None, resume: bool = False,
             num_workers: int = 0, amp: bool | None = None, channels_last: bool | None = None,
             images=None, progress=None) -> dict:
    """Train ``config.train_folds`` fold models, ensemble them, pick the threshold, export.

    Parameters
    ----------
    config : TrainConfig
    dataset : skinaudit.data.AuditDataset
        Training images and labels (``load_isic``); ``lesion_id`` is needed for grouped folds.
    out_dir : path
        Output folder (created); see the module docstring for its content.
    device : str
        ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun each process uses ``cuda:LOCAL_RANK``).
    weights : path, optional
        Local ImageNet weights of the backbone (never downloaded).
    resume : bool
        Reuse finished folds and resume an interrupted fold from its checkpoint.
    num_workers : int
        DataLoader worker processes (pinned memory is used on CUDA).
    amp, channels_last : bool, optional
        bf16 autocast and channels-last memory format; default True on CUDA, False on CPU.
    images : uint8 tensor (N, 3, S, S), optional
        Pre-decoded images in the dataset's order (else decoded here once).
    progress : callable, optional
        ``progress(iterable, total=, desc=)`` wrapper for long loops.

    Returns
    -------
    dict
        The training log also written to ``training_log.json`` (``config``, ``data``,
        ``folds``, ``leakage``, ``history``, ``thresholds``, ``throughput``, ``exports``,
        ``seconds``); on a non-main DDP rank, ``{"rank": r}`` only.
    """
    t_start = time.perf_counter()
    dist = init_distributed()
    if dist.world_size > 1 and str(device).startswith("cuda"):
        device = f"cuda:{dist.local_rank}"
    is_cuda = torch.device(device).type == "cuda"
    amp = is_cuda if amp is None else bool(amp)
    channels_last = is_cuda if channels_last is None else bool(channels_last)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = dataset.table
    y = dataset.labels
    groups = table["lesion_id"].astype(str).to_numpy() if "lesion_id" in table.columns else None
    folds = make_folds(y, groups, n_splits=config.n_splits, split=config.split, random_state=config.seed)
    leakage = lesion_leakage(groups, folds) if groups is not None else None
    if images is None:
        t0 = time.perf_counter()
        images = load_images(dataset.image_paths, size=config.image_size, progress=progress)
        decode_s = time.perf_counter() - t0
    else:
        decode_s = 0.0
    if tuple(images.shape[1:]) != (3, config.image_size, config.image_size) or len(images) != len(dataset):
        raise DataError(f"the image cache has shape {tuple(images.shape)}; expected "
                        f"({len(dataset)}, 3, {config.image_size}, {config.image_size})")
    transform = training_transform(config) if config.augment else None
    results: list[FoldResult] = []
    for k in range(config.train_folds):
        tr_idx, va_idx = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        fold_dir = out / f"fold{k}"
        fold_dir.mkdir(exist_ok=True)
        done = _fold_result_from_disk(fold_dir, k, config, va_idx) if resume else None
        if done is not None:
            log.info("fold %d: reusing the finished model in %s", k, fold_dir)
            results.append(done)
            continue
        train_ds = ImageTensorDataset(images[tr_idx], y[tr_idx], transform)
        val_ds = ImageTensorDataset(images[va_idx], y[va_idx], None)
        res = fit_fold(config, train_ds, val_ds, fold=k, device=device, weights=weights, amp=amp,
                       channels_last=channels_last, num_workers=num_workers, pin_memory=is_cuda,
                       checkpoint=fold_dir / "checkpoint.pt", resume=resume, dist=dist, val_index=va_idx,
                       progress=progress)
        if dist.is_main:
            save_state_dict(res.model, fold_dir / "best_state.pt")
            pd.DataFrame({"image_id": dataset.ids[va_idx], "score": res.val_scores,
                          "score_plain": res.val_scores_plain}).to_csv(fold_dir / "val_scores.csv", index=False)
        results.append(res)
    if not dist.is_main:
        return {"rank": dist.rank}

    # Out-of-fold validation scores: each image scored by the one model that never saw it.
    val_idx = np.concatenate([r.val_index for r in results])
    val = pd.DataFrame({"image_id": dataset.ids[val_idx], "label": y[val_idx],
                        "fold": np.concatenate([np.full(len(r.val_index), r.fold) for r in results]),
                        "score": np.concatenate([r.val_scores for r in results]),
                        "score_plain": np.concatenate([r.val_scores_plain for r in results])})
    val.to_csv(out / "val_scores.csv", index=False)
    best = min(results, key=lambda r: (np.nan_to_num(r.best_val_loss, nan=np.inf), r.fold))
    best_mask = val["fold"].to_numpy() == best.fold
    thresholds = {
        "model.pt": choose_threshold(val["label"], val["score"], config),
        "model_state.pt": choose_threshold(val["label"][best_mask], val["score_plain"][best_mask], config),
    }
    thresholds["model.pt"]["validation"] = (f"out-of-fold scores of {len(results)} fold model(s) with TTA "
                                            f"{list(config.tta)}")
    thresholds["model_state.pt"]["validation"] = f"fold {best.fold} validation scores of that model, no TTA"

    # Export: the ensemble (TorchScript) and the best single model (state dict).
    models = [r.model.cpu().eval() for r in results]
    ensemble = TTAEnsemble(models, tta=config.tta)
    timed = normalize(images[val_idx[: min(32, len(val_idx))]]).float()
    t0 = time.perf_counter()
    with torch.no_grad():
        ensemble(timed)
    ens_ips = len(timed) / max(time.perf_counter() - t0, 1e-9)  # CPU, batch of up to 32, after training
    example = timed[:4]
    exports = {"model.pt": export_torchscript(ensemble, out / "model.pt", example=example),
               "model_state.pt": save_state_dict(best.model, out / "model_state.pt")}
    try:  # torch.export, TorchScript's successor: same ensemble, loaded without unpickling
        exports["model.pt2"] = export_program(ensemble, out / "model.pt2", example=example)
        exports["model.pt2"]["content"] = "torch.export archive of the same TTAEnsemble as model.pt"
        thresholds["model.pt2"] = thresholds["model.pt"]
    except ModelError as exc:
        log.warning("model.pt2 not written: %s", exc)
        exports["model.pt2"] = {"path": None, "error": str(exc)}
    exports["model.pt"]["content"] = (f"TorchScript TTAEnsemble: {len(models)} fold model(s) x {len(config.tta)} "
                                      f"TTA view(s) {list(config.tta)}; outputs log mean probabilities (N, 2)")
    exports["model_state.pt"]["content"] = (f"state dict of fold {best.fold} (lowest validation loss "
                                            f"{best.best_val_loss:.4f}); {config.arch} with head "
                                            "Sequential(Dropout, Linear(., 2)); no TTA")
    info = {"arch": config.arch, "image_size": config.image_size, "config": config.name,
            "preprocess": "squash resize to image_size (bilinear), ImageNet mean/std (skinaudit.models.Preprocess)",
            "thresholds": {k: v["threshold"] for k, v in thresholds.items()}, "threshold_details": thresholds,
            "exports": exports,
            "audit_command": audit_command(out, arch=config.arch, image_size=config.image_size,
                                           threshold=thresholds["model_state.pt"]["threshold"])}
    write_model_info(out, info)
    history = [row for r in results for row in r.history]
    train_ips = [h["train_images_per_s"] for h in history]
    logd = {
        "config": config.to_dict(),
        "data": {**dataset.summary(), "n_images": len(dataset), "decode_seconds": decode_s},
        "device": device, "amp_bf16": amp, "channels_last": channels_last, "world_size": dist.world_size,
        "num_workers": num_workers, "weights": os.fspath(weights) if weights else None, "versions": _versions(),
        "folds": {"split": config.split, "n_splits": config.n_splits, "trained": [r.fold for r in results],
                  "sizes": np.bincount(folds, minlength=config.n_splits).tolist(),
                  "malignant": [int(y[folds == k].sum()) for k in range(config.n_splits)],
                  "best_epochs": {r.fold: r.best_epoch for r in results},
                  "best_val_loss": {r.fold: r.best_val_loss for r in results},
                  "stopped_early": {r.fold: r.stopped_early for r in results}},
        "leakage": leakage, "history": history, "thresholds": thresholds,
        "throughput": {"train_images_per_s_median": float(np.median(train_ips)) if train_ips else None,
                       "ensemble_tta_images_per_s": ens_ips},
        "exports": exports, "model_info": MODEL_INFO, "seconds": time.perf_counter() - t_start,
    }
    write_json(out / "training_log.json", logd)
    return logd


def predict_scores(model_path, dataset, *, arch: str | None = None, image_size: int | None = None,
                   batch_size: int = 32, device: str = "cpu", progress=None) -> pd.DataFrame:
    """Score ``dataset`` with an exported model through skinaudit's own adapter.

    Uses :func:`skinaudit.models.load_model` and :func:`skinaudit.models.score_dataset`,
    i.e. exactly what ``skinaudit run`` computes. ``arch`` and ``image_size`` default to the
    ``model_info.json`` next to the model. Returns ``image_id, score, status``.
    """
    from skinaudit.models import load_model, score_dataset

    from .export import read_model_info

    info = read_model_info(model_path) or {}
    arch = arch or info.get("arch")
    image_size = image_size or info.get("image_size")
    if image_size is None:
        raise ConfigError(f"{model_path}: no {MODEL_INFO} next to the model; give --image-size")
    model = load_model(model_path, arch=arch, image_size=int(image_size), device=device)
    return score_dataset(model, dataset, batch_size=batch_size, progress=progress)


def evaluate_scores(dataset, scores: pd.DataFrame, *, threshold: float) -> dict:
    """Metrics of ``scores`` (``image_id, score``) against ``dataset``'s labels at ``threshold``.

    :func:`skinaudit.metrics.binary_metrics` (AUC, recall, precision, F1, accuracy,
    specificity, FNR, TP/FN/TN/FP) plus ``n_unscored`` (images without a finite score,
    which are excluded and listed in the log).
    """
    from skinaudit.metrics import binary_metrics

    s = scores.set_index("image_id")["score"].reindex(dataset.ids)
    ok = np.isfinite(s.to_numpy(float))
    if not ok.any():
        raise DataError("no image of the dataset has a score")
    if not ok.all():
        log.warning("%d image(s) have no score and are left out of the metrics: %s", int((~ok).sum()),
                    list(s.index[~ok][:5]))
    m = binary_metrics(dataset.labels[ok], s.to_numpy(float)[ok], threshold=threshold)
    m["n_unscored"] = int((~ok).sum())
    return m
