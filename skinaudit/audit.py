"""The audit: the only place that sequences the stages.

``run_audit(model, dataset, config)`` scores every image once and computes every table
from those scores and one stated threshold, so the numbers in ``predictions.csv``,
``metrics.json``, ``audit.json`` and the report can never disagree. Each stage lives in
:mod:`skinaudit.stages` and returns what it found; this module only calls them in order.
"""
from __future__ import annotations

import dataclasses
import logging

import pandas as pd

from .cache import ResultCache
from .config import ADVISED_N_BOOT, AuditConfig
from .data import AuditDataset
from .errors import ConfigError
from .metrics import binary_metrics
from .models import CallableModel, PrecomputedScores, ScoreModel
from .per_image import duplicate_images, duplicate_summary
from .result import AuditResult, unavailable
from .stages import StageOutput
from .stages.explain import explain_stage
from .stages.fairness import fairness_stage
from .stages.recalibration import check_calibration_ids, load_calibration, recalibration_stage
from .stages.scoring import score_stage
from .stages.skintone import skin_tone_stage

__all__ = ["AuditConfig", "AuditResult", "STAGES", "run_audit", "load_calibration"]

log = logging.getLogger(__name__)


def _model_info(model) -> dict:
    from .imageio import file_sha256

    path = getattr(model, "path", None)
    info = {"name": getattr(model, "name", type(model).__name__), "adapter": type(model).__name__,
            "path": str(path) if path else None, "sha256": file_sha256(path) if path else None}
    if getattr(model, "arch", None):
        info["arch"] = model.arch
    pre = getattr(model, "preprocess", None)
    if pre is not None:
        info["preprocess"] = dataclasses.asdict(pre)
    return info


def _as_model(model):
    if isinstance(model, (ScoreModel, PrecomputedScores)):
        return model
    if callable(model):
        return CallableModel(model)
    raise ConfigError(f"the model must be a ScoreModel, a callable or PrecomputedScores; got {type(model).__name__}")


STAGES = ("skintone", "fairness", "recalibration", "explain")


def run_audit(model, dataset: AuditDataset, config: AuditConfig | None = None, *, progress=None,
              cache=None, calibration=None, stages=STAGES, executor=None) -> AuditResult:
    """Audit ``model`` on ``dataset``: scores, skin tone, fairness statistics, recalibration,
    and (for eager PyTorch models) Grad-CAM++ explanations and failure modes.

    Parameters
    ----------
    model : ScoreModel, callable or PrecomputedScores
        A callable is wrapped in :class:`~skinaudit.models.CallableModel`.
    dataset : AuditDataset
    config : AuditConfig, optional
    progress : callable, optional
        tqdm-like ``progress(iterable, total=, desc=)`` for long stages.
    cache : ResultCache or path, optional
        Per-image result cache (content-addressed; see :mod:`skinaudit.cache`).
    calibration : DataFrame or path, optional
        Separate calibration data for the threshold searches (see :func:`load_calibration`);
        default a stratified split of the audited images (``config.calibration_fraction``).
        Its image ids must be unique and must not be audited images (DataError otherwise).
    stages : sequence of str
        Stages after scoring, among ``skintone, fairness, recalibration, explain`` (all by
        default; ``skinaudit explain`` runs ``skintone`` and ``explain``). A stage left out
        is reported as not run.
    executor : Executor, optional
        Where the per-image work runs (:mod:`skinaudit.executors`), kept open for the caller;
        default the one ``config.executor`` names (``config.ray_address``, ``config.n_jobs``),
        opened for this audit and closed when it ends, whether it succeeds, fails or is
        interrupted. Results do not depend on it.
    """
    config = config or AuditConfig()
    if not isinstance(dataset, AuditDataset):
        raise ConfigError(f"the dataset must be an AuditDataset; got {type(dataset).__name__}")
    if cache is not None and not isinstance(cache, ResultCache):
        cache = ResultCache(cache)
    if calibration is not None:
        calibration = load_calibration(calibration)
        check_calibration_ids(calibration, dataset)
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ConfigError(f"unknown stage(s) {sorted(unknown)}; choose from {', '.join(STAGES)}")
    if config.n_boot < ADVISED_N_BOOT:
        log.warning("n_boot = %d: bootstrap intervals and permutation p-values from fewer than %d replicates are "
                    "noisy (their ends move with the seed); use at least %d for results you report",
                    config.n_boot, ADVISED_N_BOOT, ADVISED_N_BOOT)
    model = _as_model(model)
    if "skintone" in stages:
        from .stages.groups import check_grouping

        check_grouping(dataset, config)  # a missing --group-column / --repeat-column fails before any work
    if config.counterfactual:
        from .counterfactual_stats import _check_model

        _check_model(model)  # a scores CSV cannot be re-scored: fail before any work
    if executor is None:
        from .executors import open_executor

        with open_executor(config.executor, n_jobs=config.n_jobs, address=config.ray_address) as ex:
            return _stages(model, dataset, config, progress, cache, calibration, stages, ex)
    return _stages(model, dataset, config, progress, cache, calibration, stages, executor)


def _stages(model, dataset, config, progress, cache, calibration, stages, executor) -> AuditResult:
    pred, skipped = score_stage(model, dataset, config, progress=progress, cache=cache, executor=executor)
    skipped = pd.concat([skipped, dataset.excluded], ignore_index=True)
    overall = binary_metrics(pred["label"].to_numpy(), pred["score"].to_numpy(), threshold=config.threshold)
    found = StageOutput(sections={"overall": overall})
    scored = dataset.subset(pred["image_id"]) if len(pred) < len(dataset) else dataset
    not_run = "this stage was not requested"
    if "skintone" in stages:
        pred, out = skin_tone_stage(scored, pred, config, progress=progress, cache=cache,
                                    executor=executor)
        _add(found, out)
    if calibration is not None and "group" not in calibration and "ita" in calibration:
        from .skintone import assign_groups

        calibration = calibration.assign(group=assign_groups(calibration["ita"], config.scheme))
    if "fairness" in stages:
        _add(found, fairness_stage(pred, config, progress=progress, variants=found.tables.get("ita_variant_groups")))
    if "recalibration" in stages:
        _add(found, recalibration_stage(pred, calibration, config))
    if "explain" in stages:
        _add(found, explain_stage(model, scored, pred, config, progress=progress, cache=cache,
                                 executor=executor))
    if config.counterfactual:
        from .stages.counterfactual import counterfactual_stage

        _add(found, counterfactual_stage(model, scored, config, progress=progress))
    for name, stage in (("groups", "skintone"), ("fairness", "fairness"), ("recalibration", "recalibration"),
                        ("explanations", "explain"), ("localisation", "explain"), ("failure_modes", "explain")):
        if stage not in stages:
            found.sections.setdefault(name, unavailable(not_run))
    copies = duplicate_images(dataset)
    if len(copies):
        found.tables["duplicates"] = copies
    return AuditResult(config=config, dataset={**dataset.summary(), "duplicates": duplicate_summary(copies)},
                       model=_model_info(model), predictions=pred,
                       sections=found.sections, tables=found.tables, skipped=skipped.reset_index(drop=True),
                       figures=found.figures)


def _add(found: StageOutput, out: StageOutput) -> None:
    found.sections.update(out.sections)
    found.tables.update(out.tables)
    found.figures.update(out.figures)
