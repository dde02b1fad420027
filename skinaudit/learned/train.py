"""Training of the lesion segmenter and the artifact detector from random initialisation.

Run ``python -m skinaudit.train_detectors --what segmenter|artifacts --data DIR --out DIR``
(``docs/learned_detectors.md`` has the exact commands, the time they took and the results).

Reproducibility: every random draw of epoch ``e`` comes from generators seeded with
``(seed, e)``, so a run resumed from its per-epoch checkpoint (``OUT/<what>_ckpt.pt``) continues
exactly as an uninterrupted one would (with the same number of threads). The validation split is
fixed by a hash of the image id (:func:`skinaudit.learned.data.is_validation`); it selects the
epoch that is kept and tunes the per-flag thresholds. Nothing else is looked at.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .data import FLAGS, load_folder
from .models import ArtifactNet, LocalArtifactNet, TinyUNet
from .preprocess import postprocess, refine_prob

__all__ = ["train"]

log = logging.getLogger(__name__)


def _colour_jitter(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Per image: brightness x U(0.5, 1.15), per-channel gain x U(0.85, 1.15), contrast U(0.7, 1.3),
    saturation U(0.5, 1.3), gamma exp(U(-0.3, 0.3)). Wide on purpose: lesion and artifact cues must
    not be skin lightness or a dermatoscope's colour cast."""
    n = x.shape[0]

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

    x = x * u(0.5, 1.15, 1, 1, 1) * u(0.85, 1.15, 3, 1, 1)
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * u(0.5, 1.3, 1, 1, 1)
    m = x.mean((1, 2, 3), keepdim=True)
    x = m + (x - m) * u(0.7, 1.3, 1, 1, 1)
    x = x.clamp(0, 1) ** torch.exp(u(-0.3, 0.3, 1, 1, 1))
    return x


def _seg_batch(images, masks, idx, size, g, augment):
    x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(masks[idx]).unsqueeze(1).float() / 255
    if not augment:
        return (F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False),
                F.interpolate(y, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
    s = x.shape[-1]
    xs, ys = [], []
    for k in range(len(idx)):
        fh, fw = (0.7 + 0.3 * torch.rand(2, generator=g)).tolist()
        h, w = max(int(s * fh), 8), max(int(s * fw), 8)
        top = int(torch.randint(0, s - h + 1, (1,), generator=g))
        left = int(torch.randint(0, s - w + 1, (1,), generator=g))
        xs.append(F.interpolate(x[k:k + 1, :, top:top + h, left:left + w], size=(size, size), mode="bilinear",
                                antialias=True, align_corners=False))
        ys.append(F.interpolate(y[k:k + 1, :, top:top + h, left:left + w], size=(size, size), mode="bilinear",
                                antialias=True, align_corners=False))
    x, y = torch.cat(xs), torch.cat(ys)
    r = torch.randint(0, 8, (1,), generator=g).item()  # one of the 8 symmetries of the square
    if r & 1:
        x, y = x.flip(-1), y.flip(-1)
    if r & 2:
        x, y = x.flip(-2), y.flip(-2)
    if r & 4:
        x, y = x.transpose(-1, -2), y.transpose(-1, -2)
    return _colour_jitter(x, g), y


#: colour refinement of the segmenter's output (:func:`~skinaudit.learned.preprocess.refine_prob`),
#: stored in the weights' meta; chosen on the validation split (docs/learned_detectors.md)
SEG_REFINE = {"alpha": 0.25, "confident": 0.9}

#: augmentation recipes of the artifact detector: "flips" (the first shipped weights: flips and
#: colour jitter) and "frame" (also a random crop of each side and a synthetic dark circular field,
#: so that the frame's shape and a dermatoscope's circular field stop being cues for other flags)
ART_RECIPES = ("flips", "frame")


def _circular_field(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Darken everything outside a random circle whose radius is 55-90% of the half-diagonal (so
    every corner is outside it), with a soft edge: a synthetic dermatoscope field (dark corners)."""
    n, _, h, w = x.shape
    yy = torch.linspace(-h / 2, h / 2, h).view(1, h, 1)
    xx = torch.linspace(-w / 2, w / 2, w).view(1, 1, w)
    half_diag = 0.5 * math.hypot(h, w)
    r = half_diag * (0.55 + 0.35 * torch.rand(n, 1, 1, generator=g))
    cy = h * 0.08 * (torch.rand(n, 1, 1, generator=g) - 0.5)
    cx = w * 0.08 * (torch.rand(n, 1, 1, generator=g) - 0.5)
    d = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    soft = 2 + 10 * torch.rand(n, 1, 1, generator=g)
    inside = torch.sigmoid((r - d) / soft)
    floor = 0.02 + 0.2 * torch.rand(n, 1, 1, generator=g)
    return x * (floor + (1 - floor) * inside).unsqueeze(1)


def _art_batch(images, flags, idx, g, augment, recipe="flips"):
    x = torch.from_numpy(images[idx]).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(flags[idx]).clone()
    if augment:
        if recipe == "frame":
            h, w = x.shape[-2:]
            xs = []
            for k in range(len(idx)):  # random crop of 80-100% of each side (aspect changes too)
                fh, fw = (0.8 + 0.2 * torch.rand(2, generator=g)).tolist()
                ch, cw = max(int(h * fh), 8), max(int(w * fw), 8)
                top = int(torch.randint(0, h - ch + 1, (1,), generator=g))
                left = int(torch.randint(0, w - cw + 1, (1,), generator=g))
                xs.append(F.interpolate(x[k:k + 1, :, top:top + ch, left:left + cw], size=(h, w), mode="bilinear",
                                        align_corners=False))
            x = torch.cat(xs)
            field = torch.rand(len(idx), generator=g) < 0.3
            if field.any():
                x[field] = _circular_field(x[field], g)
                y[field, FLAGS.index("dark_corner")] = 1.0
        r = torch.randint(0, 4, (1,), generator=g).item()
        if r & 1:
            x = x.flip(-1)
        if r & 2:
            x = x.flip(-2)
        x = _colour_jitter(x, g)
    return x, y


def _dice_loss(logits, y):
    p = torch.sigmoid(logits)
    inter = (p * y).sum((1, 2, 3))
    return (1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + y.sum((1, 2, 3)) + 1)).mean()


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``p >= threshold`` against ``y`` over a 0.02-step grid."""
    best = (0.5, -1.0)
    for t in np.arange(0.02, 0.99, 0.02):
        pred = p >= t
        denom = pred.sum() + y.sum()
        f1 = 2 * (pred & y).sum() / denom if denom else 0.0
        if f1 > best[1] + 1e-12:
            best = (round(float(t), 2), float(f1))
    return best


def _predict(model, batches):
    model.eval()
    out = []
    with torch.no_grad():
        for x in batches:
            out.append(model(x))
    return torch.cat(out)


def train(what: str, data_dir, out_dir, *, epochs: int, batch_size: int = 16, lr: float = 2e-3,
          seed: int = 0, threads: int = 1, seg_size: int = 128, max_batches: int | None = None,
          art_recipe: str = "flips", art_arch: str = "ArtifactNet") -> dict:
    """Train ``what`` ("segmenter" or "artifacts"); write ``OUT/<what>.pt`` (best epoch on the
    validation split: ``{"state_dict", "meta"}``, loadable with ``weights_only=True``), a
    per-epoch checkpoint and ``OUT/<what>_history.json``. Returns the history."""
    if what not in ("segmenter", "artifacts"):
        raise ValueError(f"'what' must be 'segmenter' or 'artifacts'; got {what!r}.")
    if art_recipe not in ART_RECIPES:
        raise ValueError(f"'art_recipe' must be one of {ART_RECIPES}; got {art_recipe!r}.")
    torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    d = load_folder(data_dir)
    log.info("loaded %d images in %.1f s (%d validation)", len(d["ids"]), time.perf_counter() - t0, d["val"].sum())
    tr, va = np.flatnonzero(~d["val"]), np.flatnonzero(d["val"])
    torch.manual_seed(seed)
    if what == "segmenter":
        arch, kwargs = "TinyUNet", {"widths": [16, 32, 48, 96, 128]}
        model = TinyUNet(**kwargs)
    elif art_arch == "LocalArtifactNet":
        arch, kwargs = art_arch, {"n_out": len(FLAGS), "widths": [24, 48, 96, 128], "sharpness": 4.0}
        model = LocalArtifactNet(**kwargs)
    else:
        arch, kwargs = "ArtifactNet", {"n_out": len(FLAGS), "widths": [24, 40, 64, 128, 192]}
        model = ArtifactNet(**kwargs)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(tr) / batch_size) if max_batches is None else max_batches
    total = epochs * steps_per_epoch

    def lr_at(step):  # one epoch of linear warm-up, then cosine to 2% of lr
        if step < steps_per_epoch:
            return (step + 1) / steps_per_epoch
        q = (step - steps_per_epoch) / max(total - steps_per_epoch, 1)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * q))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ckpt_path = out_dir / f"{what}_ckpt.pt"
    history, start, best = [], 0, -1.0
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        history, start, best = json.loads(ck["history"]), int(ck["epoch"]) + 1, float(ck["best"])
        log.info("resumed after epoch %d", start - 1)
    for epoch in range(start, epochs):
        te = time.perf_counter()
        g = torch.Generator().manual_seed(seed * 100_003 + epoch)
        torch.manual_seed(seed * 100_003 + epoch)
        order = tr[torch.randperm(len(tr), generator=g).numpy()]
        model.train()
        losses = []
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            if what == "segmenter":
                x, y = _seg_batch(d["seg_images"], d["seg_masks"], idx, seg_size, g, True)
                logits = model(x)
                loss = F.binary_cross_entropy_with_logits(logits, y) + _dice_loss(logits, y)
            else:
                x, y = _art_batch(d["art_images"], d["flags"], idx, g, True, art_recipe)
                loss = F.binary_cross_entropy_with_logits(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        # validation
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "lr": sched.get_last_lr()[0]}
        if what == "segmenter":
            batches = (_seg_batch(d["seg_images"], d["seg_masks"], va[i:i + 32], seg_size, None, False)[0]
                       for i in range(0, len(va), 32))
            prob = torch.sigmoid(_predict(model, batches))[:, 0].numpy()
            truth = d["seg_masks"][va] > 127
            jac, jac_refined = [], []
            for k in range(len(va)):
                p = np.asarray(F.interpolate(torch.from_numpy(prob[k])[None, None], size=truth.shape[1:],
                                             mode="bilinear", align_corners=False)[0, 0])
                for out, m in ((jac, postprocess(p)),
                               (jac_refined, postprocess(refine_prob(d["seg_images"][va[k]], p, **SEG_REFINE)))):
                    u = (m | truth[k]).sum()
                    out.append((m & truth[k]).sum() / u if u else 1.0)
            entry["val_jaccard"] = float(np.mean(jac))
            entry["val_jaccard_refined"] = float(np.mean(jac_refined))  # reported, not used to choose
            score = entry["val_jaccard"]
            meta = {"arch": arch, "kwargs": kwargs, "input_size": seg_size, "threshold": 0.5, "refine": SEG_REFINE}
        else:
            batches = (_art_batch(d["art_images"], d["flags"], va[i:i + 32], None, False)[0]
                       for i in range(0, len(va), 32))
            prob = torch.sigmoid(_predict(model, batches)).numpy()
            yv = d["flags"][va] > 0.5
            th, f1 = {}, {}
            for j, name in enumerate(FLAGS):
                th[name], f1[name] = best_f1_threshold(yv[:, j], prob[:, j])
            entry["val_f1"], entry["thresholds"] = f1, th
            score = float(np.mean(list(f1.values())))
            entry["val_mean_f1"] = score
            meta = {"arch": arch, "kwargs": kwargs, "input_shape": [192, 256], "flags": list(FLAGS),
                    "thresholds": th, "recipe": art_recipe}
        entry["seconds"] = time.perf_counter() - te
        history.append(entry)
        log.info("%s epoch %d: %s", what, epoch, json.dumps(entry))
        if score > best:
            best = score
            meta.update({"epoch": epoch, "val_score": score, "seed": seed, "epochs": epochs,
                         "batch_size": batch_size, "lr": lr, "n_train": int(len(tr)), "n_val": int(len(va)),
                         "data": "isic2018-task1-train-256"})
            torch.save({"state_dict": model.state_dict(), "meta": meta}, out_dir / f"{what}.pt")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch, "best": best, "history": json.dumps(history)}, ckpt_path)
        (out_dir / f"{what}_history.json").write_text(json.dumps(history, indent=1))
    return {"history": history, "best": best, "seconds_total": time.perf_counter() - t0}
