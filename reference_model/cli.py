"""``python -m reference_model {train,predict,evaluate,results,configs}``.

The only module of the package that prints or exits. Expected errors
(:class:`skinaudit.errors.SkinauditError`) become one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path

from skinaudit.errors import ConfigError, SkinauditError

__all__ = ["main", "build_parser"]


def _progress(enabled: bool):
    """Progress bars on stderr when it is a terminal; None (no bars) otherwise or when disabled."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    def wrap(iterable, total=None, desc=None):
        return tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False)

    return wrap


def _add_data(p):
    p.add_argument("--images", required=True, type=Path, help="Folder of <image id>.jpg files.")
    p.add_argument("--labels", required=True, type=Path,
                   help="ISIC 2018 Task 3 one-hot ground truth CSV, or the HAM10000 metadata CSV "
                        "(image_id, lesion_id, dx; needed for lesion-grouped folds).")
    p.add_argument("--malignant", default="MEL,BCC,AKIEC", help="Comma-separated malignant classes.")
    p.add_argument("--limit", type=int, default=None, help="Use a stratified random subset of N images.")
    p.add_argument("--seed", type=int, default=None, help="Seed (default: the configuration's, 42).")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default).")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (torch.set_num_threads).")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes.")
    p.add_argument("-v", "--verbose", action="store_true", help="Log every INFO message with time and source.")
    p.add_argument("-q", "--quiet", action="store_true", help="No progress bars and no per-epoch lines.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference_model",
        description="Train, apply and evaluate the paper's recall-oriented ensemble (skinaudit's reference "
                    "model). Research use only, not a diagnostic device.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="Train a configuration; writes model.pt, model_state.pt and logs to --out.")
    t.add_argument("--config", required=True, help="Configuration name (see 'configs').")
    _add_data(t)
    t.add_argument("--out", required=True, type=Path, help="Output folder.")
    t.add_argument("--epochs", type=int, default=None, help="Maximum epochs per fold (overrides the config).")
    t.add_argument("--folds", type=int, default=None, help="How many of the folds to train (1..n_splits).")
    t.add_argument("--n-splits", type=int, default=None, help="Number of CV folds (paper: 3).")
    t.add_argument("--split", choices=("grouped", "stratified"), default=None,
                   help="grouped (by lesion_id, default) or the paper's stratified split (leaks lesions).")
    t.add_argument("--image-size", type=int, default=None, help="Override the configuration's image size.")
    t.add_argument("--batch-size", type=int, default=None, help="Override the batch size (global under DDP).")
    t.add_argument("--gamma", type=float, default=None, help="Recall target of the threshold search.")
    t.add_argument("--weights", type=Path, default=None,
                   help="Local ImageNet state dict of the backbone (never downloaded).")
    t.add_argument("--resume", action="store_true", help="Resume from checkpoints in --out.")
    t.add_argument("--no-amp", action="store_true", help="Disable bf16 autocast on CUDA.")

    pr = sub.add_parser("predict", help="Write a skinaudit scores CSV (image_id,score) for a dataset.")
    pr.add_argument("--model", required=True, type=Path, help="model.pt (TorchScript) or model_state.pt.")
    pr.add_argument("--arch", default=None, help="Architecture of a state dict (default: model_info.json).")
    pr.add_argument("--image-size", type=int, default=None, help="Input size (default: model_info.json).")
    _add_data(pr)
    pr.add_argument("--out", required=True, type=Path, help="Scores CSV to write.")

    ev = sub.add_parser("evaluate", help="Metrics (skinaudit.metrics.binary_metrics) of a model on a dataset.")
    ev.add_argument("--model", type=Path, default=None, help="model.pt or model_state.pt.")
    ev.add_argument("--scores", type=Path, default=None, help="Or a scores CSV from 'predict'.")
    ev.add_argument("--arch", default=None)
    ev.add_argument("--image-size", type=int, default=None)
    ev.add_argument("--threshold", type=float, default=None,
                    help="Decision threshold (default: the one chosen on validation, from model_info.json).")
    _add_data(ev)
    ev.add_argument("--out", type=Path, default=None, help="Folder for metrics.json and scores.csv.")
    ev.add_argument("--name", default=None, help="Row name in results tables (default: the configuration).")

    rs = sub.add_parser("results", help="Paper-style Tables 2/3/4 (CSV + Markdown) from evaluated runs.")
    rs.add_argument("metrics", nargs="+", type=Path, help="metrics.json files written by 'evaluate'.")
    rs.add_argument("--out", required=True, type=Path)

    sub.add_parser("configs", help="List the configurations.")
    return parser


def _dataset(args):
    from skinaudit.data import load_isic

    from .pipeline import limit_dataset

    ds = load_isic(args.images, args.labels, malignant=[m for m in args.malignant.split(",") if m.strip()])
    if args.limit is not None:
        ds = limit_dataset(ds, args.limit, random_state=42 if args.seed is None else args.seed)
    return ds


def _setup(args):
    import torch

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.num_workers < 0:
        raise ConfigError(f"--num-workers must be >= 0; got {args.num_workers}")
    from .pipeline import resolve_device

    return resolve_device(args.device)


class _Lines(logging.Handler):
    """Each record as one plain line on the current stderr."""

    def emit(self, record):
        print(self.format(record), file=sys.stderr, flush=True)


@contextlib.contextmanager
def _epoch_lines(enabled: bool):
    """One plain line per epoch (and per resumed or reused fold) on stderr while training;
    the loggers are restored afterwards."""
    loggers = [logging.getLogger(n) for n in ("reference_model.train", "reference_model.pipeline")]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    handler = _Lines()
    if enabled:
        for lg in loggers:
            lg.setLevel(logging.INFO)
            lg.propagate = False
            lg.addHandler(handler)
    try:
        yield
    finally:
        for lg, level, propagate in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


def _train(args):
    from .config import get_config
    from .export import audit_command
    from .pipeline import train_cv

    device = _setup(args)
    config = get_config(args.config, max_epochs=args.epochs, train_folds=args.folds, n_splits=args.n_splits,
                        split=args.split, image_size=args.image_size, batch_size=args.batch_size, seed=args.seed,
                        gamma=args.gamma)
    ds = _dataset(args)
    with _epoch_lines(not args.verbose and not args.quiet):
        log = train_cv(config, ds, out_dir=args.out, device=device, weights=args.weights, resume=args.resume,
                       num_workers=args.num_workers, amp=False if args.no_amp else None,
                       progress=_progress(not args.quiet))
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()
    if "rank" in log:
        return
    thr = log["thresholds"]
    print(f"trained {config.name} ({config.arch} @{config.image_size}px) on {len(ds)} images in "
          f"{log['seconds']:.0f} s; folds {log['folds']['trained']}")
    for name in ("model.pt", "model_state.pt"):
        t = thr[name]
        print(f"  {args.out / name}: threshold {t['threshold']:.2f} ({t['rule']}, feasible={t['feasible']}; "
              f"validation recall {t['val_recall']:.3f}, AUC {t['val_auc']:.3f})")
    print("audit it on held-out images (not the training images), e.g. the ISIC 2018 Task 3 test set; "
          "set TEST_IMAGES and TEST_LABELS first:")
    print("  " + audit_command(args.out, arch=config.arch, image_size=config.image_size,
                               threshold=thr["model_state.pt"]["threshold"]))


def _predict(args):
    from .pipeline import predict_scores

    device = _setup(args)
    ds = _dataset(args)
    scores = predict_scores(args.model, ds, arch=args.arch, image_size=args.image_size, device=device,
                            progress=_progress(not args.quiet))
    ok = scores["status"] == "ok"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    scores.loc[ok, ["image_id", "score"]].to_csv(args.out, index=False)
    print(f"wrote {int(ok.sum())} scores to {args.out}" + (f"; {int((~ok).sum())} image(s) unreadable"
                                                          if (~ok).any() else ""))


def _evaluate(args):
    import pandas as pd

    from .config import CONFIGS
    from .export import read_model_info, write_json
    from .pipeline import evaluate_scores, predict_scores

    device = _setup(args)
    if (args.model is None) == (args.scores is None):
        raise ConfigError("give exactly one of --model or --scores")
    ds = _dataset(args)
    info = read_model_info(args.model) if args.model is not None else None
    threshold = args.threshold
    if threshold is None:
        if info is None or args.model.name not in info.get("thresholds", {}):
            raise ConfigError("no --threshold given and no threshold for this model in model_info.json")
        threshold = float(info["thresholds"][args.model.name])
    if args.model is not None:
        scores = predict_scores(args.model, ds, arch=args.arch, image_size=args.image_size, device=device,
                                progress=_progress(not args.quiet))
    else:
        from skinaudit.models import PrecomputedScores

        ps = PrecomputedScores.from_csv(args.scores)
        scores = pd.DataFrame({"image_id": ds.ids, "score": ps.lookup(ds.ids)})
    m = evaluate_scores(ds, scores, threshold=threshold)
    name = args.name or (info or {}).get("config") or "model"
    description = ""
    if info is not None and info.get("config") in CONFIGS:
        c = CONFIGS[info["config"]]
        description = f"{c.description}; {args.model.name} ({c.arch} @{info.get('image_size')}px)"
    result = {"name": name, "description": description, "model": str(args.model or args.scores),
              "dataset": ds.summary(),
              "threshold_source": "--threshold" if args.threshold is not None else "model_info.json (validation)",
              "metrics": m}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / "metrics.json", result)
        scores[["image_id", "score"]].to_csv(args.out / "scores.csv", index=False)
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}))


def _results(args):
    from .results import load_metrics, write_results

    rows = [load_metrics(p) for p in args.metrics]
    paths = write_results(rows, args.out)
    for p in paths:
        print(p)


def _configs(args):
    from .config import CONFIGS

    for name, c in CONFIGS.items():
        print(f"{name:28s} {c.arch:16s} {c.image_size:4d}px folds {c.train_folds}/{c.n_splits} "
              f"tta {len(c.tta)}  {c.description}")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": _train, "predict": _predict, "evaluate": _evaluate, "results": _results,
                "configs": _configs}
    try:
        handlers[args.command](args)
    except SkinauditError as exc:
        print(f"reference_model: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reference_model: interrupted", file=sys.stderr)
        return 130
    return 0
