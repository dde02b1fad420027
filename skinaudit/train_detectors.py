"""Train the learned lesion segmenter or artifact detector (needs the [torch] extra).

Usage::

    python -m skinaudit.train_detectors --what segmenter --data ../shared/data/isic2018-task1-train-256 \
        --out runs/detectors --epochs 40
    python -m skinaudit.train_detectors --what artifacts --data ... --out runs/detectors --epochs 30

The best epoch on the validation split is written to ``OUT/<what>.pt``; copy it to
``skinaudit/weights/`` to ship it. Details: ``docs/learned_detectors.md``.
"""
from __future__ import annotations

import argparse
import logging


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m skinaudit.train_detectors", description=__doc__.split("\n")[0])
    ap.add_argument("--what", choices=["segmenter", "artifacts"], required=True)
    ap.add_argument("--data", required=True, help="the isic2018-task1-train-256 folder")
    ap.add_argument("--out", required=True, help="output folder (weights, checkpoint, history)")
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seg-size", type=int, default=128)
    ap.add_argument("--art-recipe", choices=["flips", "frame"], default="flips",
                    help="augmentation of the artifact detector (docs/learned_detectors.md)")
    ap.add_argument("--art-arch", choices=["ArtifactNet", "LocalArtifactNet"], default="ArtifactNet",
                    help="architecture of the artifact detector (docs/learned_detectors.md)")
    ap.add_argument("--max-batches", type=int, default=None, help="batches per epoch (timing runs)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from .learned.train import train

    train(a.what, a.data, a.out, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
          threads=a.threads, seg_size=a.seg_size, max_batches=a.max_batches, art_recipe=a.art_recipe,
          art_arch=a.art_arch)


if __name__ == "__main__":
    main()
