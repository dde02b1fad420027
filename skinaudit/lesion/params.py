"""Parameters of lesion segmentation and artifact detection, validated when built.

Where each default was chosen, and on which data, is in ``docs/skintone.md`` ("What was tuned
on what").
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..learned import DEFAULT_ARTIFACTS, DEFAULT_SEGMENTER, METHODS
from ..validation import check_bounded, check_choice, check_int

__all__ = ["LesionParams", "ArtifactParams"]


def _odd_kernel(value, name: str) -> None:
    if check_int(value, name, low=3) % 2 == 0:
        raise ConfigError(f"the '{name}' parameter must be an odd integer >= 3; got {value!r}")


def _at_least_or_inf(value, name: str, low: float, why: str) -> None:
    """``value`` >= ``low``, or +inf (which disables a step)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value == math.inf:
        return
    try:
        check_bounded(value, name, low, math.inf, high_open=True)
    except ConfigError:
        raise ConfigError(f"the '{name}' parameter must be >= {low:g} ({why}); got {value!r}") from None


def _non_negative(value, name: str) -> None:
    check_bounded(value, name, 0.0, math.inf, high_open=True)


def _fraction(value, name: str) -> None:
    check_bounded(value, name, 0.0, 1.0)


@dataclass(frozen=True)
class LesionParams:
    """Parameters of :func:`~skinaudit.lesion.segment_lesion` (intensities on a 0-1 scale).

    Attributes
    ----------
    work_size : int
        Long side, in pixels, of the working copy (default 128, >= 32). Smaller is faster.
    hair_kernel : int
        Side of the square grey closing used to remove hair at working size (pixels, odd, >= 3).
    hair_contrast : float
        Closing minus luminance above which a pixel is hair, in (0, 1).
    dark_level : float
        Mean RGB below which a border-connected pixel is vignette / black frame, in [0, 1).
    patch_chroma : float
        CIELAB chroma above which a border-connected region is a coloured patch (> 0).
    skin_bias : float
        Fraction of the way from the Otsu threshold to the skin median where the lesion
        threshold is placed, in (-1, 1) (0 = plain Otsu).
    refine_contrast : float
        The darker core of the chosen region (its own Otsu split) replaces the region when
        its contrast to a 3-px ring around it is more than this many times the region's
        (>= 1; ``inf`` = never).
    centre_power : float
        The component kept is the one with the largest area weighted by the centre weight
        raised to this power, in [0, 10] (1 = plain centre-weighted area, 0 = largest area). 2
        keeps a central lesion over a larger off-centre dark region (ink marks, shaded skin).
    segmenter : str
        ``"learned"`` (the small U-Net of :mod:`skinaudit.learned`, trained on
        isic2018-task1-train-256), ``"classical"`` (the steps of
        :mod:`skinaudit.lesion.segmentation`; the other fields above) or ``"auto"`` (default:
        learned when torch is importable, else classical). A mask given by the dataset wins.
    """

    work_size: int = 128
    hair_kernel: int = 5
    hair_contrast: float = 0.06
    dark_level: float = 0.12
    patch_chroma: float = 50.0
    skin_bias: float = 0.25
    refine_contrast: float = 2.0
    centre_power: float = 2.0
    segmenter: str = DEFAULT_SEGMENTER

    def __post_init__(self):
        check_choice(self.segmenter, "segmenter", METHODS)
        check_int(self.work_size, "work_size", low=32)
        _odd_kernel(self.hair_kernel, "hair_kernel")
        check_bounded(self.hair_contrast, "hair_contrast", 0.0, 1.0, low_open=True, high_open=True)
        check_bounded(self.dark_level, "dark_level", 0.0, 1.0, high_open=True)
        check_bounded(self.patch_chroma, "patch_chroma", 0.0, math.inf, low_open=True, high_open=True)
        check_bounded(self.skin_bias, "skin_bias", -1.0, 1.0, low_open=True, high_open=True)
        _at_least_or_inf(self.refine_contrast, "refine_contrast", 1, "inf disables the step")
        check_bounded(self.centre_power, "centre_power", 0.0, 10.0)


#: ArtifactParams fields on a 0-1 scale (intensities, saturations, image fractions).
_ARTIFACT_FRACTIONS = ("hair_contrast", "hair_min_frac", "hair_low_contrast", "ruler_min_len", "tick_contrast",
                       "ruler_pair_contrast", "ink_min_frac", "specular_value", "specular_saturation",
                       "bubble_contrast", "bubble_min_frac", "gel_border_contrast", "gel_border_min_frac",
                       "patch_min_frac")
#: ArtifactParams fields that are lengths (px), ratios or scores: any finite value >= 0.
_ARTIFACT_NON_NEGATIVE = ("hair_min_len", "hair_max_width", "hair_min_elong", "hair_network_len",
                          "hair_low_min_len", "ruler_min_comb", "dark_corner_ratio")


@dataclass(frozen=True)
class ArtifactParams:
    """Pixel rules and image-level flag thresholds of :func:`~skinaudit.lesion.detect_artifacts`.

    Areas (``*_min_frac``) are fractions of the image; intensities (``*_contrast``) are on a
    0-1 scale; lengths and widths in pixels at ``hair_size`` unless said otherwise. The rules
    are in the table of :mod:`skinaudit.lesion.artifacts`.

    Hair (at ``hair_size`` px, long side, >= 32; closing side ``hair_kernel``, odd): components
    are kept when elongated, major axis >= ``hair_min_elong`` x minor axis (pigment specks and
    pieces of pigment network are not), or at least ``hair_network_len`` px long (crossing hairs
    joined into a network, strongly curved strands). Faint strands (hysteresis): components of
    the weaker black-hat ``hair_low_contrast`` (<= ``hair_contrast``) that hold a pixel of the
    ``hair_contrast`` mask and are thin, elongated and >= ``hair_low_min_len`` px long are hair
    too (``hair_low_contrast`` = ``hair_contrast`` disables the step).

    Rulers are searched at up to ``ruler_size`` px (long side, >= 32); ``ruler_min_len`` is a
    fraction of that long side. A group of >= ``ruler_min_ticks`` (>= 2) graduation ticks counts
    only when evenly spaced somewhere: two consecutive gaps between its ticks (across them, each
    >= 2 px at 600 px) within a factor ``ruler_gap_ratio`` (>= 1) of each other (parallel
    pigment-network streaks and hair pieces are irregular; ``inf`` disables the test). With
    ``ruler_edge_pairs`` (off by default), two parallel ticks, one of them within 5 px (at 600
    px) of the image border, count too when their mean black-hat is >= ``ruler_pair_contrast``
    (printed scale ticks cut off at an edge are darker than hair). It is off because the ruler
    mask is taken out of the hair mask, which then loses hair flags that rest on ruler ticks
    (measured in ``docs/skintone.md``).

    ``dark_corner_ratio`` is a luminance ratio to the central skin; ``ink_max_b`` (in [-128,
    128]) and ``ink_max_L`` (in [0, 100]) are CIELAB bounds.

    ``detector`` chooses the image-level flags: ``"learned"`` (the multi-label classifier of
    :mod:`skinaudit.learned`), ``"classical"`` (the rules above) or ``"auto"`` (default: learned
    when torch is importable, else classical). The pixel masks (skin sample, failure modes) are
    always the rules above; with learned flags a mask counts in the failure modes only for an
    artifact the image is flagged with.
    """

    hair_size: int = 256
    hair_kernel: int = 7
    hair_contrast: float = 0.04
    hair_min_len: float = 15.0
    hair_max_width: float = 5.0
    hair_min_frac: float = 0.0005
    hair_min_elong: float = 5.0
    hair_network_len: float = 80.0
    hair_low_contrast: float = 0.03
    hair_low_min_len: float = 25.0
    ruler_size: int = 640
    tick_contrast: float = 0.07
    ruler_min_ticks: int = 3
    ruler_min_len: float = 0.12
    ruler_min_comb: float = 8.0
    ruler_gap_ratio: float = 1.25
    ruler_edge_pairs: bool = False
    ruler_pair_contrast: float = 0.14
    dark_corner_ratio: float = 0.5
    ink_min_frac: float = 0.001
    ink_max_b: float = -15.0
    ink_max_L: float = 65.0
    specular_value: float = 0.92
    specular_saturation: float = 0.12
    bubble_contrast: float = 0.12
    bubble_min_frac: float = 0.002
    gel_border_contrast: float = 0.1
    gel_border_min_frac: float = 0.05
    patch_min_frac: float = 0.005
    detector: str = DEFAULT_ARTIFACTS

    def __post_init__(self):
        check_choice(self.detector, "detector", METHODS)
        for name in _ARTIFACT_FRACTIONS:
            _fraction(getattr(self, name), name)
        for name in _ARTIFACT_NON_NEGATIVE:
            _non_negative(getattr(self, name), name)
        check_int(self.hair_size, "hair_size", low=32)
        _odd_kernel(self.hair_kernel, "hair_kernel")
        check_int(self.ruler_size, "ruler_size", low=32)
        check_int(self.ruler_min_ticks, "ruler_min_ticks", low=2)
        check_bounded(self.ink_max_b, "ink_max_b", -128.0, 128.0)
        check_bounded(self.ink_max_L, "ink_max_L", 0.0, 100.0)
        if not isinstance(self.ruler_edge_pairs, (bool, np.bool_)):
            raise ConfigError(f"the 'ruler_edge_pairs' parameter must be True or False; got {self.ruler_edge_pairs!r}")
        if self.hair_low_contrast > self.hair_contrast:
            raise ConfigError(f"the 'hair_low_contrast' parameter must be <= hair_contrast ({self.hair_contrast}; "
                              f"equal disables the faint-strand step); got {self.hair_low_contrast!r}")
        _at_least_or_inf(self.ruler_gap_ratio, "ruler_gap_ratio", 1, "inf disables the test")
