"""The offline demo: phantoms with known truth, a small classifier fitted on them, an audit.

Nothing is downloaded. The classifier is a scikit-learn logistic regression on colour
statistics of the image (see :func:`colour_features`), wrapped as a callable ScoreModel,
so the demo also shows how to audit a non-torch model.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from skimage import color

from .audit import AuditConfig, run_audit
from .report import write_audit_into
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


def _tiny_cnn(torch):
    nn = torch.nn

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    class TinyCNN(nn.Module):
        """Four conv blocks, global average pooling, one logit (CAM layer: ``features.10``)."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*block(3, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2),
                                          *block(32, 48), nn.MaxPool2d(2), *block(48, 64))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(64, 1)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.features(x)), 1))

    return TinyCNN()


def fit_tiny_cnn(images, labels, *, seed: int = 0, image_size: int = 64, epochs: int = 20):
    """Train a four-block CNN (one logit) on ``images`` for a few seconds on the CPU; return a
    :class:`~skinaudit.models.TorchModel` (eager, so Grad-CAM++ can explain it)."""
    import torch

    from .models import Preprocess, TorchModel

    torch.manual_seed(seed)
    pre = Preprocess(size=image_size)
    x = torch.from_numpy(pre(images))
    y = torch.tensor(np.array(labels, dtype=np.float32))
    net = _tiny_cnn(torch)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    pos_weight = torch.tensor([(len(y) - y.sum()) / max(float(y.sum()), 1.0)])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(16):
            xb = x[idx]
            if torch.rand(1, generator=gen).item() < 0.5:
                xb = xb.flip(3)
            opt.zero_grad()
            loss = loss_fn(net(xb).squeeze(1), y[idx])
            loss.backward()
            opt.step()
    net.eval()
    return TorchModel(net, preprocess=pre, name="demo CNN (4 conv blocks, trained on phantoms)")


def run_demo(out_dir, *, n: int = 120, seed: int = 0, train_fraction: float = 0.5, progress=None,
             report: bool = True, pdf: bool = True, force: bool = False):
    """Generate ``n`` phantoms under ``out_dir/phantoms``, fit a small model on a stratified
    ``train_fraction``, audit it on the rest, write the audit and report into ``out_dir``.

    The model is a small CNN trained in seconds (so the report shows Grad-CAM++
    explanations and failure modes) when torch is installed, else the colour-feature
    logistic regression. The folder is replaced as a whole (see
    :mod:`skinaudit.output_folder`; ``force`` replaces one holding files skinaudit did not write).
    """
    from .output_folder import atomic_output_dir

    with atomic_output_dir(out_dir, force=force) as tmp:
        ds = generate_phantoms(tmp / "phantoms", n=n, seed=seed, artifact_rate=0.3, progress=progress)
        # the manifest's path once the staging folder has become out_dir
        ds = dataclasses.replace(ds, source={**ds.source, "manifest": str(Path(out_dir) / "phantoms" / "manifest.csv")})
        result = _demo_audit(ds, seed=seed, train_fraction=train_fraction, progress=progress)
        write_audit_into(result, tmp, report=report, pdf=pdf)
    return result


def _demo_audit(ds, *, seed: int, train_fraction: float, progress):
    from sklearn.model_selection import train_test_split

    train_ids, test_ids = train_test_split(list(ds.ids), train_size=train_fraction, random_state=seed,
                                           stratify=ds.labels)
    train = ds.subset(train_ids)
    images = [read_image(p) for p in train.image_paths]
    config = AuditConfig(threshold=0.5, seed=seed, n_boot=1000, cam_sample=30, sensitivity_sample=30)
    try:
        import torch  # noqa: F401

        model = fit_tiny_cnn(images, train.labels, seed=seed)
        config = dataclasses.replace(config, target_layer="features.10")
    except ImportError:
        model = fit_colour_model(images, train.labels, seed=seed)
    return run_audit(model, ds.subset(test_ids), config, progress=progress)
