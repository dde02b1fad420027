"""The options of an audit: one immutable record, validated when it is made.

Recorded whole in ``audit.json`` and the report's appendix; read back by
:meth:`skinaudit.result.AuditResult.read`.
"""
from __future__ import annotations

import contextvars
import dataclasses
import math
from dataclasses import dataclass

from .errors import ConfigError
from .learned import DEFAULT_ARTIFACTS, DEFAULT_SEGMENTER, METHODS
from .skintone.params import DEFAULT_REFERENCE_B
from .validation import check_choice, check_int, check_param

__all__ = ["AuditConfig", "min_n_boot", "BOOT_TAIL", "MIN_N_BOOT", "ADVISED_N_BOOT", "EXECUTION_OPTIONS"]

#: Bootstrap replicates an audit needs beyond each end of a (1 - alpha) percentile interval.
BOOT_TAIL = 5
#: Fewest bootstrap replicates of an audit at any alpha (the localisation bootstrap's floor).
MIN_N_BOOT = 100
#: Below this many replicates an audit runs but warns that its intervals are noisy.
ADVISED_N_BOOT = 1000
#: Options that say where an audit ran, not what it computed: left out of :meth:`AuditConfig.to_dict`
#: at these defaults.
EXECUTION_OPTIONS = {"executor": "local", "ray_address": None}
#: Set while a saved configuration is read back: the replicates it ran with are a fact, not a choice.
_READING_SAVED = contextvars.ContextVar("reading_saved_config", default=False)


def min_n_boot(alpha: float) -> int:
    """Fewest bootstrap replicates an audit accepts at level ``alpha``:
    ``max(MIN_N_BOOT, ceil(2 * BOOT_TAIL / alpha))`` (200 at alpha = 0.05, 1000 at 0.01).

    A percentile interval's ends are the ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the
    replicates; with ``n_boot * alpha / 2 >= BOOT_TAIL`` at least that many replicates lie
    beyond each end, so an end is not one or two draws (with ``n_boot = 1`` the "interval" is
    a single replicate and need not contain the estimate).
    """
    return max(MIN_N_BOOT, math.ceil(2 * BOOT_TAIL / float(alpha) - 1e-9))


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
    lesion so enough skin remains; ``"full"``: keep it and report ``unknown`` instead),
    ``segmenter`` and ``artifacts`` (the lesion mask where the dataset gives none, and the
    image-level artifact flags: ``"learned"``, the small networks of :mod:`skinaudit.learned`;
    ``"classical"``, the rules of :mod:`skinaudit.lesion`; ``"auto"``, learned when torch is
    importable; a mask given by the dataset always wins).

    Statistics: ``alpha`` (in (0, 0.5]: every test's level; intervals are 1 - alpha),
    ``n_boot`` (bootstrap replicates, also the permutations; at least :func:`min_n_boot`
    ``(alpha)`` = max(100, 10 / alpha), i.e. 200 at alpha = 0.05, so at least 5 replicates lie
    beyond each end of a percentile interval; :func:`~skinaudit.audit.run_audit` warns below
    1000), ``min_positives``, ``reference`` (the comparison group; default the largest).

    Recalibration: ``calibration_fraction`` (stratified share of the audited images used to
    fit thresholds when no separate calibration file is given; the rest reports them),
    ``gamma`` (recall target), ``step`` (threshold grid step).

    Explanations (eager PyTorch models only): ``explain`` (``"auto"`` or ``"off"``),
    ``target_layer`` (dotted path; default per architecture), ``keep_top`` (share of the CAM
    kept when sharpening), ``cases_per_kind`` (TP/TN/FN/FP triptych rows), ``cam_sample``
    (random images whose CAMs measure localisation by group), ``explain_fp`` (classify false
    positives too).

    Groups and reliability: ``group_column`` (None: ITA groups; else one metadata column, or
    ``"A,B"`` for their intersection, groups the fairness analysis; ITA stays in ``ita`` /
    ``ita_group``), ``age_bins`` (edges such as ``"0,40,60,120"`` for an ``age`` column among
    ``group_column``), ``repeat_column`` (column tying repeated images of one lesion or patient
    for the test-retest reliability of ITA; None: ``lesion_id``, else ``patient_id``, when the
    dataset has one; ``"none"``: off).

    Counterfactual skin tone: ``counterfactual`` (images of a stratified sample whose skin is
    recoloured to five target ITA levels and re-scored, :mod:`skinaudit.counterfactual`;
    0 = off, the default).

    Execution: ``executor`` (``"local"``: the process pool of ``n_jobs``, the default;
    ``"ray"``: a Ray cluster, :mod:`skinaudit.executors`), ``ray_address`` (the cluster to
    join; None: a local cluster of ``n_jobs`` CPUs started and stopped by the audit). Results
    do not depend on them; ``audit.json`` records them only when they differ from the defaults
    (provenance), so a local audit's files stay as they were.
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
    segmenter: str = DEFAULT_SEGMENTER
    artifacts: str = DEFAULT_ARTIFACTS
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
    group_column: str | None = None
    age_bins: str | None = None
    repeat_column: str | None = None
    counterfactual: int = 0
    executor: str = "local"
    ray_address: str | None = None

    def __post_init__(self):
        check_param(self.threshold, "threshold")
        for name in ("batch_size", "n_jobs", "n_boot"):
            check_int(getattr(self, name), name, low=1)
        for name in ("seed", "sensitivity_sample", "min_positives", "cases_per_kind", "cam_sample",
                     "counterfactual"):
            check_int(getattr(self, name), name, low=0)
        for name in ("alpha", "calibration_fraction", "gamma", "step", "keep_top"):
            check_param(getattr(self, name), name)
        if not _READING_SAVED.get() and self.n_boot < min_n_boot(self.alpha):
            raise ConfigError(
                f"the 'n_boot' parameter must be at least {min_n_boot(self.alpha)} at alpha = {self.alpha:g} "
                f"(max({MIN_N_BOOT}, {2 * BOOT_TAIL} / alpha), so that at least {BOOT_TAIL} bootstrap replicates lie "
                f"beyond each end of the {1 - self.alpha:.0%} percentile interval); got {self.n_boot}")
        check_choice(self.explain, "explain", ("auto", "off"))
        self._check_executor()
        check_choice(self.segmenter, "segmenter", METHODS)
        check_choice(self.artifacts, "artifacts", METHODS)
        for name in ("strict", "skin_tone", "explain_fp"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"the '{name}' parameter must be True or False; got {getattr(self, name)!r}")
        self._check_groups()
        self.ita_params()  # validates ita_correction, skin_margin, cast_group, reference_b
        from .skintone import get_scheme

        get_scheme(self.scheme)  # validates names and cut points

    def _check_groups(self) -> None:
        from .grouping import parse_age_bins, parse_group_columns

        for name in ("group_column", "age_bins", "repeat_column"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"the '{name}' parameter must be a non-empty string or None; got {value!r}")
        columns = parse_group_columns(self.group_column) if self.group_column is not None else ()
        if self.age_bins is not None:
            parse_age_bins(self.age_bins)
            if "age" not in columns:
                raise ConfigError(f"the 'age_bins' parameter bins the column 'age', which must be among "
                                  f"'group_column'; got group_column={self.group_column!r}")

    def _check_executor(self) -> None:
        from .executors import EXECUTORS

        check_choice(self.executor, "executor", EXECUTORS)
        if self.ray_address is not None:
            if not isinstance(self.ray_address, str) or not self.ray_address.strip():
                raise ConfigError(f"the 'ray_address' parameter must be a non-empty string or None; "
                                  f"got {self.ray_address!r}")
            if self.executor != "ray":
                raise ConfigError(f"the 'ray_address' parameter needs executor='ray'; got executor={self.executor!r}")

    def to_dict(self) -> dict:
        """The options as a JSON-ready dict (the ``config`` of ``audit.json``); the execution
        options (:data:`EXECUTION_OPTIONS`) only where they differ from their defaults."""
        out = dataclasses.asdict(self)
        for name, default in EXECUTION_OPTIONS.items():
            if out[name] == default:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "AuditConfig":
        """The inverse of :meth:`to_dict`; options this version does not know are refused.

        A saved audit is read back even when it ran with fewer bootstrap replicates than
        :func:`min_n_boot` now asks for (it was run; its report can still be rendered).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"the saved configuration has options this version of skinaudit does not know: "
                              f"{', '.join(unknown)}")
        token = _READING_SAVED.set(True)
        try:
            return cls(**data)
        finally:
            _READING_SAVED.reset(token)

    def lesion_params(self):
        """The :class:`~skinaudit.lesion.LesionParams` of the run (its ``segmenter``)."""
        from .lesion import LesionParams

        return LesionParams(segmenter=self.segmenter)

    def artifact_params(self):
        """The :class:`~skinaudit.lesion.ArtifactParams` of the run (its ``artifacts`` detector)."""
        from .lesion import ArtifactParams

        return ArtifactParams(detector=self.artifacts)

    def ita_params(self):
        """The :class:`~skinaudit.skintone.ItaParams` of the skin-tone stage."""
        from .skintone import ItaParams

        check_choice(self.ita_correction, "ita_correction", ("dataset_reference", "none"))
        check_choice(self.skin_margin, "skin_margin", ("shrink", "full"))
        return ItaParams(ita_correction=self.ita_correction, cast_group=self.cast_group,
                         reference_b=float(self.reference_b), skin_margin=self.skin_margin)

