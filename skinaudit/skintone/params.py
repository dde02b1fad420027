"""The options of the skin-tone estimator, validated once, with the names the audit uses.

:class:`ItaParams` holds every option of the per-image ITA estimate and of the dataset-level
cast step; :data:`DATASET_ITA` is the dataset default and :data:`DEFAULT_REFERENCE_B` the one
definition of the cast step's reference b*. The option names are the audit's own
(``ita_correction``, ``skin_margin``, ``reference_b``, ``cast_group``), so one choice has one
name from the command line to the computation.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from ..errors import ConfigError
from ..validation import check_bounded, check_choice, check_int

__all__ = ["DEFAULT_REFERENCE_B", "ITA_CORRECTIONS", "SKIN_MARGINS", "BEYOND_RANGE", "ItaParams", "DATASET_ITA"]

#: The skin b* that the dataset-level cast step raises an acquisition group's median skin b* to
#: (CIELAB b*, unitless): the b* of light-to-intermediate skin in contact colorimetry. The effect
#: of 12-20 is measured in docs/skintone.md.
DEFAULT_REFERENCE_B = 15.0

#: Values of ``ItaParams.ita_correction`` (see the class docstring).
ITA_CORRECTIONS = ("none", "specular", "shades_of_gray", "dataset_reference")
#: Values of ``ItaParams.skin_margin``.
SKIN_MARGINS = ("shrink", "full")
#: Values of ``ItaParams.beyond_range``.
BEYOND_RANGE = ("open_bin", "unknown")
_STATISTICS = ("trimmed_median", "median", "trimmed_mean")
_METHODS = ("segmentation", "border")
_SCALES = ("cie", "opencv8")


@dataclass(frozen=True)
class ItaParams:
    """Parameters of :func:`~skinaudit.skintone.estimate_ita` and of the dataset-level cast step.

    Attributes
    ----------
    method : {'segmentation', 'border'}
        Skin sample: everything but the dilated lesion and artifacts, or only a frame of width
        ``border_width`` (the naive border-patch baseline, for sensitivity tables).
    statistic : {'trimmed_median', 'median', 'trimmed_mean'}
        ``trimmed_median``: Benčević et al. 2025 (medians after dropping pixels more than
        ``trim_sd`` SD from the medians); ``trimmed_mean``: Groh et al. 2021 (means within
        ``trim_sd`` SD of the means); ``median``: plain medians of L* and b*.
    trim_sd : float, > 0
        Trimming half-width in standard deviations (default 1).
    lesion_margin : float, in [0, 0.5)
        Smallest safety margin around the lesion, as a fraction of the image's long side
        (default 0.05).
    lesion_margin_radius : float, in [0, 5]
        The margin grows with the lesion: at least this fraction of the lesion's equivalent
        radius (default 0.5), because a large lesion's faint periphery, which human outlines
        include, reaches further. Measured leakage in docs/skintone.md.
    skin_margin : {'shrink', 'full'}
        ``shrink`` (default): when the lesion-relative margin leaves less than twice the
        ``min_skin_fraction`` of the image, shrink it (never below the ``lesion_margin`` floor)
        so that much skin remains. ``full`` keeps the whole margin and returns ``unknown`` with
        ``too_few_skin_pixels`` instead: fewer images get a value, and less of a large lesion's
        periphery enters the sample (measured in docs/skintone.md).
    artifact_margin : int, >= 0
        Dilation of every artifact mask, in working-size pixels (mixed pixels at edges).
    border_width : float, in (0, 0.5)
        Frame width of the ``border`` method, as a fraction of the long side (default 20 px of 600).
    ita_correction : {'none', 'specular', 'shades_of_gray', 'dataset_reference'}
        ``none`` keeps the measured b*. ``specular`` corrects the illuminant from specular
        highlights only, ``shades_of_gray`` from the whole image (see
        :mod:`skinaudit.skintone.illuminant`). ``dataset_reference`` is the dataset-level step
        (:func:`~skinaudit.skintone.correct_cast`, applied by
        :func:`~skinaudit.skintone.inspect_dataset`); for one image on its own it is the same
        as ``none``.
    min_skin_fraction : float, in [0, 1)
        Fewer skin pixels than this fraction of the image -> group ``unknown``.
    b_min : float
        Skin b* at or below this -> flag ``b_nonpositive`` and no ITA (default 0; ``-inf``
        keeps every value).
    plausible_range : (float, float)
        ITA in degrees (default -60, 75). Below ``lo`` -> flag ``implausible_ita``, no ITA, group
        ``unknown``; above ``hi``, see ``beyond_range``.
    beyond_range : {'open_bin', 'unknown'}
        ITA above ``plausible_range[1]``. ``open_bin`` (default): the value is kept, flagged
        ``beyond_range(<value>)``, and falls in the scheme's lightest (open) bin, so the lightest
        skin is not silently excluded (evidence in docs/skintone.md). ``unknown``: the earlier
        behaviour, flag ``implausible_ita(<value>)``, no ITA, group ``unknown``.
    n_boot : int, >= 0
        Bootstrap resamples of skin patches for the per-image uncertainty of L* and b*
        (:mod:`~skinaudit.skintone.uncertainty`; default 100); 0 = no uncertainty columns'
        values (NaN).
    patch_size : int, >= 1
        Side of the square skin patches resampled by the bootstrap, in working-size pixels
        (default 8).
    random_state : int, >= 0
        Seed of the patch bootstrap and of the draws behind ``ita_low``, ``ita_high`` and the
        group probabilities (the same image always gives the same numbers).
    lab_scale : {'cie', 'opencv8'}
        ``cie`` (default): the formula on CIELAB. ``opencv8``: a compatibility mode that
        applies the formula to OpenCV's 8-bit Lab encoding (L* x 2.55, b* + 128), which
        reproduces the published per-image ITA of Kinyanjui et al. 2020 on HAM10000
        (docs/skintone.md); there b* hardly matters, so it is essentially a lightness scale.
        Use it only to compare with those published values.
    reference_b : float, > 0
        ``dataset_reference``: the skin b* that an acquisition group's median skin b* is raised
        to when it is below it (default :data:`DEFAULT_REFERENCE_B`).
    cast_group : str or None
        ``dataset_reference``: the dataset column naming each image's acquisition group
        (device, site, e.g. HAM10000's ``dataset``); None = the whole dataset is one group.
    min_cast_images : int, >= 1
        ``dataset_reference``: fewer images with a skin sample in a group -> no correction
        for it (``cast_estimated`` False in the output; listed by
        :func:`~skinaudit.skintone.cast_summary`).

    Raises
    ------
    ConfigError
        Any value outside the stated choices or bounds, named in the message.
    """

    method: str = "segmentation"
    statistic: str = "trimmed_median"
    trim_sd: float = 1.0
    lesion_margin: float = 0.05
    lesion_margin_radius: float = 0.5
    skin_margin: str = "shrink"
    artifact_margin: int = 1
    border_width: float = 20 / 600
    ita_correction: str = "none"
    min_skin_fraction: float = 0.03
    b_min: float = 0.0
    plausible_range: tuple = (-60.0, 75.0)
    beyond_range: str = "open_bin"
    n_boot: int = 100
    patch_size: int = 8
    random_state: int = 0
    lab_scale: str = "cie"
    reference_b: float = DEFAULT_REFERENCE_B
    cast_group: str | None = None
    min_cast_images: int = 20

    def __post_init__(self):
        check_choice(self.lab_scale, "lab_scale", _SCALES)
        check_choice(self.method, "method", _METHODS)
        check_choice(self.statistic, "statistic", _STATISTICS)
        check_choice(self.ita_correction, "ita_correction", ITA_CORRECTIONS)
        check_choice(self.skin_margin, "skin_margin", SKIN_MARGINS)
        check_choice(self.beyond_range, "beyond_range", BEYOND_RANGE)
        check_int(self.n_boot, "n_boot", low=0)
        check_int(self.patch_size, "patch_size", low=1)
        check_int(self.random_state, "random_state", low=0)
        check_bounded(self.trim_sd, "trim_sd", 0.0, math.inf, low_open=True, high_open=True)
        check_bounded(self.lesion_margin, "lesion_margin", 0.0, 0.5, high_open=True)
        check_bounded(self.lesion_margin_radius, "lesion_margin_radius", 0.0, 5.0)
        check_bounded(self.border_width, "border_width", 0.0, 0.5, low_open=True, high_open=True)
        check_bounded(self.min_skin_fraction, "min_skin_fraction", 0.0, 1.0, high_open=True)
        check_int(self.artifact_margin, "artifact_margin", low=0)
        check_bounded(self.reference_b, "reference_b", 0.0, math.inf, low_open=True, high_open=True)
        check_int(self.min_cast_images, "min_cast_images", low=1)
        if not _is_number(self.b_min) or math.isnan(self.b_min):
            raise ConfigError(f"the 'b_min' parameter must be a number (-inf allowed); got {self.b_min!r}")
        rng = self.plausible_range
        if not (isinstance(rng, (tuple, list)) and len(rng) == 2 and all(_is_number(v) for v in rng)
                and rng[0] < rng[1]):
            raise ConfigError(f"the 'plausible_range' parameter must be (low, high) with low < high; "
                              f"got {self.plausible_range!r}")
        if self.cast_group is not None and not isinstance(self.cast_group, str):
            raise ConfigError(f"the 'cast_group' parameter must be a column name or None; got {self.cast_group!r}")

    def describe(self) -> str:
        """Short method text for the output's ``method`` column, e.g.
        ``'segmentation/trimmed_median/none'`` (per image: the dataset-level cast step is not
        applied yet, so ``dataset_reference`` reads ``none`` here and
        :func:`~skinaudit.skintone.correct_cast` appends ``+dataset_reference``; ``full``
        margins end in ``/full-margin``)."""
        scale = "" if self.lab_scale == "cie" else "/opencv8"
        per_image = "none" if self.ita_correction == "dataset_reference" else self.ita_correction
        margin = "" if self.skin_margin == "shrink" else "/full-margin"
        return f"{self.method}/{self.statistic}/{per_image}{scale}{margin}"


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_instance(value, name: str, cls):
    """Return ``value`` when it is a ``cls``; else a :class:`ConfigError` naming the parameter."""
    if not isinstance(value, cls):
        raise ConfigError(f"the '{name}' parameter must be an instance of {cls.__name__}; "
                          f"got {type(value).__name__}")
    return value


#: The dataset default: CIE ITA with the one-sided, per-acquisition-group blue-cast
#: correction of :func:`~skinaudit.skintone.correct_cast` (``inspect_dataset``,
#: ``skinaudit run`` / ``inspect``).
DATASET_ITA = ItaParams(ita_correction="dataset_reference")
