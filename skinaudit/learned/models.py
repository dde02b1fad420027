"""The two small networks: a compact U-Net (lesion mask) and a MobileNet-sized multi-label
artifact classifier. Both are built from depthwise-separable blocks so that training from random
initialisation fits on two CPU cores and inference costs a few ms per image on one core.

Architectures are plain ``torch.nn.Module`` classes; the shipped weights are state dicts, loaded
with ``torch.load(..., weights_only=True)`` into these classes (:mod:`.inference`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TinyUNet", "ArtifactNet", "LocalArtifactNet", "build_model"]


def _cba(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DSBlock(nn.Module):
    """Depthwise 3x3 (stride ``stride``) then pointwise 1x1, each with BatchNorm and ReLU; a residual
    connection when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.dw = _cba(cin, cin, 3, stride, groups=cin, dilation=dilation)
        self.pw = _cba(cin, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        return x + y if self.residual else y


class TinyUNet(nn.Module):
    """U-Net of depthwise-separable blocks: input (N, 3, S, S) float in [0, 1] (normalised inside),
    output (N, 1, S, S) logits of "lesion". ``S`` must be divisible by 16."""

    def __init__(self, widths=(16, 32, 48, 96, 128)):
        super().__init__()
        w = list(widths)
        self.stem = nn.Sequential(_cba(3, w[0]), DSBlock(w[0], w[0]))
        self.down = nn.ModuleList()
        for i in range(1, len(w)):
            blocks = [DSBlock(w[i - 1], w[i], stride=2), DSBlock(w[i], w[i])]
            if i == len(w) - 1:  # bottleneck: wider context for large lesions
                blocks += [DSBlock(w[i], w[i], dilation=2), DSBlock(w[i], w[i], dilation=4)]
            self.down.append(nn.Sequential(*blocks))
        self.up = nn.ModuleList()
        for i in range(len(w) - 1, 0, -1):
            self.up.append(nn.Sequential(_cba(w[i] + w[i - 1], w[i - 1], 1), DSBlock(w[i - 1], w[i - 1])))
        self.head = nn.Conv2d(w[0], 1, 1)
        self.register_buffer("mean", torch.tensor([0.6, 0.5, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.2, 0.2]).view(1, 3, 1, 1))

    def forward(self, x):
        x = (x - self.mean) / self.std
        skips = [self.stem(x)]
        for d in self.down:
            skips.append(d(skips[-1]))
        y = skips.pop()
        for u in self.up:
            s = skips.pop()
            y = F.interpolate(y, size=s.shape[-2:], mode="bilinear", align_corners=False)
            y = u(torch.cat([y, s], 1))
        return self.head(y)


class ArtifactNet(nn.Module):
    """MobileNet-sized multi-label classifier: input (N, 3, H, W) float in [0, 1], output (N, K)
    logits, one per artifact flag. Global average and max pooling are concatenated so that a few
    small structures (gel bubbles, ink dots) can drive a flag."""

    def __init__(self, n_out: int = 7, widths=(16, 24, 48, 96, 160), dropout: float = 0.2):
        super().__init__()
        w = list(widths)
        layers = [_cba(3, w[0], stride=2), DSBlock(w[0], w[0])]
        for i in range(1, len(w)):
            layers += [DSBlock(w[i - 1], w[i], stride=2), DSBlock(w[i], w[i])]
            if i >= 3:
                layers.append(DSBlock(w[i], w[i]))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * w[-1], n_out)
        self.register_buffer("mean", torch.tensor([0.6, 0.5, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.2, 0.2]).view(1, 3, 1, 1))

    def forward(self, x):
        f = self.features((x - self.mean) / self.std)
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        return self.fc(self.drop(pooled))


class LocalArtifactNet(nn.Module):
    """Multi-label artifact classifier that sees only local evidence: a shallow network (three
    stride-2 stages, receptive field about 60 px of the 192 x 256 input) gives one logit per flag
    and location of a 1/8-resolution map; the image's logit is the log-sum-exp pooling of that map
    (a smooth maximum, ``sharpness`` r: ``log(mean(exp(r s))) / r``). Whole-image composition (the
    lesion's size, the frame's shape), which can stand in for an artifact in the training folder,
    is out of its view: a flag must be visible somewhere."""

    def __init__(self, n_out: int = 7, widths=(24, 48, 96, 128), sharpness: float = 4.0, dropout: float = 0.1):
        super().__init__()
        w = list(widths)
        layers = [_cba(3, w[0], stride=2), DSBlock(w[0], w[0])]
        for i in range(1, len(w) - 1):
            layers += [DSBlock(w[i - 1], w[i], stride=2), DSBlock(w[i], w[i])]
        layers += [DSBlock(w[-2], w[-1]), DSBlock(w[-1], w[-1])]
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(w[-1], n_out, 1)
        self.sharpness = float(sharpness)
        self.register_buffer("mean", torch.tensor([0.6, 0.5, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.2, 0.2]).view(1, 3, 1, 1))

    def local_logits(self, x):
        """(N, K, h, w) logits per location (h, w = input / 8)."""
        return self.head(self.drop(self.features((x - self.mean) / self.std)))

    def forward(self, x):
        s = self.local_logits(x).flatten(2)
        r = self.sharpness
        return (torch.logsumexp(r * s, dim=2) - torch.log(torch.tensor(float(s.shape[2])))) / r


def build_model(arch: str, **kwargs) -> nn.Module:
    """The architecture named ``arch`` ("TinyUNet", "ArtifactNet" or "LocalArtifactNet"), built
    with ``kwargs``."""
    table = {"TinyUNet": TinyUNet, "ArtifactNet": ArtifactNet, "LocalArtifactNet": LocalArtifactNet}
    if arch not in table:
        raise ValueError(f"Unknown architecture {arch!r}; expected one of {sorted(table)}.")
    return table[arch](**kwargs)
