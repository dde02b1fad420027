"""LesionParams and ArtifactParams: bad values fail with a sentence naming the parameter."""
from __future__ import annotations

import math

import numpy as np
import pytest

from skinaudit import lesion as le
from skinaudit.errors import ConfigError


@pytest.mark.parametrize("kw,match", [({"work_size": 8}, "work_size"), ({"hair_kernel": 4}, "hair_kernel"),
                                      ({"skin_bias": 1.5}, "skin_bias"), ({"refine_contrast": 0.5}, "refine_contrast"),
                                      ({"centre_power": -1}, "centre_power")])
def test_bad_lesion_params_raise(kw, match):
    with pytest.raises(ConfigError, match=match):
        le.LesionParams(**kw)


def test_bad_artifact_params_raise():
    with pytest.raises(ConfigError, match="hair_min_frac"):
        le.ArtifactParams(hair_min_frac=-1)
    with pytest.raises(ConfigError, match="hair_low_contrast"):
        le.ArtifactParams(hair_low_contrast=0.05)


@pytest.mark.parametrize("kw,match", [
    ({"work_size": 64.5}, r"'work_size' parameter must be an integer >= 32; got 64.5"),
    ({"hair_kernel": "5"}, r"'hair_kernel' parameter must be an integer >= 3"),
    ({"hair_contrast": 1.0}, r"'hair_contrast' parameter must be in \(0, 1\); got 1.0"),
    ({"dark_level": float("nan")}, r"'dark_level' parameter must be a finite number"),
    ({"patch_chroma": 0}, r"'patch_chroma' parameter must be in \(0, inf\); got 0"),
    ({"refine_contrast": float("-inf")}, r"'refine_contrast' parameter must be >= 1 \(inf disables the step\)"),
    ({"centre_power": True}, r"'centre_power' parameter must be a number; got True"),
])
def test_lesion_params_messages(kw, match):
    with pytest.raises(ConfigError, match=match):
        le.LesionParams(**kw)


@pytest.mark.parametrize("kw,match", [
    ({"hair_size": 16}, "'hair_size' parameter must be an integer >= 32"),
    ({"hair_kernel": 6}, "'hair_kernel' parameter must be an odd integer >= 3; got 6"),
    ({"ruler_size": 0}, "'ruler_size' parameter must be an integer >= 32"),
    ({"ruler_min_ticks": 1}, "'ruler_min_ticks' parameter must be an integer >= 2"),
    ({"tick_contrast": 1.5}, r"'tick_contrast' parameter must be in \[0, 1\]; got 1.5"),
    ({"hair_max_width": -2.0}, r"'hair_max_width' parameter must be in \[0, inf\)"),
    ({"ink_max_b": 200.0}, r"'ink_max_b' parameter must be in \[-128, 128\]"),
    ({"ink_max_L": -1.0}, r"'ink_max_L' parameter must be in \[0, 100\]"),
    ({"ruler_edge_pairs": "yes"}, "'ruler_edge_pairs' parameter must be True or False"),
    ({"ruler_gap_ratio": 0.9}, r"'ruler_gap_ratio' parameter must be >= 1 \(inf disables the test\)"),
])
def test_artifact_params_messages(kw, match):
    with pytest.raises(ConfigError, match=match):
        le.ArtifactParams(**kw)


def test_inf_disables_and_defaults_are_valid():
    assert math.isinf(le.LesionParams(refine_contrast=float("inf")).refine_contrast)
    assert math.isinf(le.ArtifactParams(ruler_gap_ratio=np.inf).ruler_gap_ratio)
    assert le.ArtifactParams(ruler_edge_pairs=np.bool_(True)).ruler_edge_pairs
    assert le.ArtifactParams(hair_low_contrast=0.04).hair_low_contrast == le.ArtifactParams().hair_contrast
    le.LesionParams(), le.ArtifactParams()
