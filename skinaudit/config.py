"""The options of an audit: one immutable record, validated when it is made.

Recorded whole in ``audit.json`` and the report's appendix; read back by
:meth:`skinaudit.result.AuditResult.read`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import ConfigError
from .skintone.params import DEFAULT_REFERENCE_B
from .validation import check_choice, check_int, check_param

__all__ = ["AuditConfig"]


@dataclass(frozen=True)
class AuditConfig:
    """Every choice of an audit (immutable; recorded in audit.json and the report's appendix).

    Scoring: ``threshold`` (a case is predicted malignant when score >= threshold),
    ``batch_size``, ``strict`` (per-image problems become errors instead of flagged rows),
    ``seed`` (every random step: bootstrap, permutations, splits, CAM sample).

    Skin tone: ``skin_tone`` (estimate ITA from the images; a manifest's ``ita`` / ``group``
    columns override it), ``scheme`` (``binary``, ``del_bino``, ``kinyanjui`` or cut points
    such as ``"10,28,41"``), ``n_jobs`` (processes for image analysis), ``sensitivity_sample``
    (images re-analysed under every ITA estimator variant; 0 = off), ``ita_correction``
    (``"dataset_reference"``: the one-sided per-acquisition-group blue-cast correction of
    :func:`skinaudit.skintone.correct_cast`, or ``"none"``), ``cast_group`` (the dataset column
    naming acquisition groups; None = one group), ``reference_b`` (the skin b* a cast group's
    median is raised to), ``skin_margin`` (``"shrink"``: narrow the lesion margin of a large
    lesion so enough skin remains; ``"full"``: keep it and report ``unknown`` instead).

    Statistics: ``alpha``, ``n_boot``, ``min_positives``, ``reference`` (the comparison
    group; default the largest).

    Recalibration: ``calibration_fraction`` (stratified share of the audited images used to
    fit thresholds when no separate calibration file is given; the rest reports them),
    ``gamma`` (recall target), ``step`` (threshold grid step).

    Explanations (eager PyTorch models only): ``explain`` (``"auto"`` or ``"off"``),
    ``target_layer`` (dotted path; default per architecture), ``keep_top`` (share of the CAM
    kept when sharpening), ``cases_per_kind`` (TP/TN/FN/FP triptych rows), ``cam_sample``
    (random images whose CAMs measure localisation by group), ``explain_fp`` (classify false
    positives too).
    """

    threshold: float = 0.5
    batch_size: int = 16
    strict: bool = False
    seed: int = 0
    skin_tone: bool = True
    scheme: str = "binary"
    n_jobs: int = 2
    sensitivity_sample: int = 200
    ita_correction: str = "dataset_reference"
    cast_group: str | None = None
    reference_b: float = DEFAULT_REFERENCE_B
    skin_margin: str = "shrink"
    alpha: float = 0.05
    n_boot: int = 2000
    min_positives: int = 10
    reference: str | None = None
    calibration_fraction: float = 0.3
    gamma: float = 0.85
    step: float = 0.02
    explain: str = "auto"
    target_layer: str | None = None
    keep_top: float = 0.25
    cases_per_kind: int = 2
    cam_sample: int = 100
    explain_fp: bool = False

    def __post_init__(self):
        check_param(self.threshold, "threshold")
        for name in ("batch_size", "n_jobs", "n_boot"):
            check_int(getattr(self, name), name, low=1)
        for name in ("seed", "sensitivity_sample", "min_positives", "cases_per_kind", "cam_sample"):
            check_int(getattr(self, name), name, low=0)
        for name in ("alpha", "calibration_fraction", "gamma", "step", "keep_top"):
            check_param(getattr(self, name), name)
        check_choice(self.explain, "explain", ("auto", "off"))
        for name in ("strict", "skin_tone", "explain_fp"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"the '{name}' parameter must be True or False; got {getattr(self, name)!r}")
        self.ita_params()  # validates ita_correction, skin_margin, cast_group, reference_b
        from .skintone import get_scheme

        get_scheme(self.scheme)  # validates names and cut points

    def to_dict(self) -> dict:
        """The options as a JSON-ready dict (the ``config`` of ``audit.json``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AuditConfig":
        """The inverse of :meth:`to_dict`; options this version does not know are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"the saved configuration has options this version of skinaudit does not know: "
                              f"{', '.join(unknown)}")
        return cls(**data)

    def ita_params(self):
        """The :class:`~skinaudit.skintone.ItaParams` of the skin-tone stage."""
        from .skintone import ItaParams

        check_choice(self.ita_correction, "ita_correction", ("dataset_reference", "none"))
        check_choice(self.skin_margin, "skin_margin", ("shrink", "full"))
        return ItaParams(ita_correction=self.ita_correction, cast_group=self.cast_group,
                         reference_b=float(self.reference_b), skin_margin=self.skin_margin)

