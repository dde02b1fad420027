"""Ensemble of fold models with test-time augmentation (TTA), as one torch module.

For an input batch ``x`` (already normalised, ``(N, 3, S, S)``), models ``m = 1..M`` and
flips ``a = 1..A``::

    p(x) = 1 / (M A) * sum_m sum_a softmax(f_m(flip_a(x)))          # (N, 2), rows sum to 1
    forward(x) = log p(x)

Returning log-probabilities keeps the module a "two-logit" classifier for skinaudit:
``softmax(log p) = p``, so :func:`skinaudit.models.probabilities_from_outputs` recovers the
averaged probability exactly. The module is TorchScript-scriptable (``torch.jit.script``).
"""
from typing import List

import torch
from torch import nn

from skinaudit.errors import ConfigError

from .config import TTA_NAMES

__all__ = ["TTAEnsemble", "tta_views"]

_FLIP_DIMS = {"identity": [], "hflip": [3], "vflip": [2], "hvflip": [2, 3]}


def tta_views(x: torch.Tensor, names) -> torch.Tensor:
    """Stack the TTA views of a batch: ``(N, C, H, W)`` -> ``(A, N, C, H, W)``.

    ``hflip`` mirrors left-right (last axis), ``vflip`` top-bottom, ``hvflip`` both.
    """
    unknown = [n for n in names if n not in _FLIP_DIMS]
    if unknown:
        raise ConfigError(f"unknown TTA view(s) {unknown}; choose from {', '.join(TTA_NAMES)}")
    return torch.stack([torch.flip(x, _FLIP_DIMS[n]) if _FLIP_DIMS[n] else x for n in names])


class TTAEnsemble(nn.Module):
    """Average of ``softmax`` outputs over models and flips; returns ``log`` of the mean.

    Parameters
    ----------
    models : sequence of nn.Module
        Binary classifiers returning two logits ``(N, 2)``; put in eval mode.
    tta : sequence of str
        Views among ``identity, hflip, vflip, hvflip``.
    """

    flip_dims: List[List[int]]  # class-level annotation for TorchScript

    def __init__(self, models, tta=TTA_NAMES):
        super().__init__()
        models = list(models)
        if not models:
            raise ConfigError("an ensemble needs at least one model")
        unknown = [n for n in tta if n not in _FLIP_DIMS]
        if not tta or unknown:
            raise ConfigError(f"tta must be a non-empty subset of {', '.join(TTA_NAMES)}; got {list(tta)}")
        self.models = nn.ModuleList(models)
        self.tta_names = list(tta)
        self.flip_dims = [list(_FLIP_DIMS[n]) for n in tta]
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(x.shape[0], 2, dtype=torch.float32, device=x.device)
        count = 0
        for model in self.models:
            for dims in self.flip_dims:
                view = torch.flip(x, dims) if len(dims) > 0 else x
                total = total + torch.softmax(model(view).float(), dim=1)
                count += 1
        mean = total / float(count)
        return torch.log(mean.clamp_min(1e-12))
