"""The offline demo: phantoms with known truth, a small classifier fitted on them, an audit.

Nothing is downloaded. The classifier is a scikit-learn logistic regression on colour
statistics of the image (see :func:`colour_features`), wrapped as a callable ScoreModel,
so the demo also shows how to audit a non-torch model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import color

from .audit import AuditConfig, run_audit
from .imageio import read_image
from .phantoms import generate_phantoms

__all__ = ["colour_features", "fit_colour_model", "run_demo"]


def colour_features(image: np.ndarray) -> np.ndarray:
    """Eight colour statistics of an (H, W, 3) uint8 image (CIELAB, central 60%):
    L* percentiles 5/25/50, spread of L*, a* and b* inside the darkest quarter, the
    share of pixels 15 L* below the median, and the blue-grey share (b* < 5)."""
    h, w = image.shape[:2]
    crop = image[int(0.2 * h):int(0.8 * h), int(0.2 * w):int(0.8 * w)]
    small = crop[::2, ::2].astype(np.float64) / 255.0
    lab = color.rgb2lab(small).reshape(-1, 3)
    L = lab[:, 0]
    p5, p25, p50 = np.percentile(L, [5, 25, 50])
    dark = lab[L <= p25]
    return np.array([p5, p25, p50, L.std(), dark[:, 1].std(), dark[:, 2].std(),
                     float(np.mean(L < p50 - 15)), float(np.mean(lab[:, 2] < 5))])


def fit_colour_model(images, labels, *, seed: int = 0):
    """Fit a standardised logistic regression on :func:`colour_features`; return a
    callable ``images -> P(malignant)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.stack([colour_features(im) for im in images])
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000, random_state=seed))
    clf.fit(X, np.asarray(labels))

    def colour_model(batch):
        return clf.predict_proba(np.stack([colour_features(im) for im in batch]))[:, 1]

    return colour_model


def run_demo(out_dir, *, n: int = 120, seed: int = 0, train_fraction: float = 0.5, progress=None):
    """Generate ``n`` phantoms under ``out_dir/phantoms``, fit the colour model on a
    stratified ``train_fraction``, audit it on the rest, write the audit into ``out_dir``."""
    from sklearn.model_selection import train_test_split

    out = Path(out_dir)
    ds = generate_phantoms(out / "phantoms", n=n, seed=seed, artifact_rate=0.3, progress=progress)
    train_ids, test_ids = train_test_split(list(ds.ids), train_size=train_fraction, random_state=seed,
                                           stratify=ds.labels)
    train = ds.subset(train_ids)
    model = fit_colour_model([read_image(p) for p in train.image_paths], train.labels, seed=seed)
    result = run_audit(model, ds.subset(test_ids), AuditConfig(threshold=0.5, seed=seed), progress=progress)
    result.write(out)
    return result
