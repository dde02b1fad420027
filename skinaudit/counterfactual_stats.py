"""The counterfactual skin-tone test: score recoloured versions of the same images, compare.

:func:`counterfactual_test` recolours a stratified sample of images to each target ITA with
:func:`skinaudit.counterfactual.recolour_skin` (the lesion bit-identical), scores
every version with the audited model, and tests the paired change between the lightest and the
darkest level. Limits of the recolouring: :mod:`skinaudit.counterfactual` and
docs/counterfactual.md.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from .counterfactual import COUNTERFACTUAL_ITA, DEFAULT_LEVELS, recolour_skin
from .errors import ConfigError, DataError, ImageError
from .validation import check_int, check_param

__all__ = ["counterfactual_test", "MIN_IMAGES", "stratified_sample"]

#: Images of the test in ``skinaudit run`` on a GPU when ``--counterfactual`` is not given.
GPU_DEFAULT_N = 200
#: Fewer recoloured images than this -> verdict ``insufficient``.
MIN_IMAGES = 10


def stratified_sample(labels, n: int, *, random_state=0) -> np.ndarray:
    """Indices of ``n`` items drawn without replacement, each label class in proportion
    (largest remainders), sorted. All indices when ``n >= len(labels)``."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(random_state)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / len(labels)
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: n - take.sum()]] += 1
    out = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, take)]
    return np.sort(np.concatenate(out))


def _shrink(image: np.ndarray, mask, long_side):
    if long_side is None or max(image.shape[:2]) <= long_side:
        return image, mask
    s = long_side / max(image.shape[:2])
    size = (max(8, round(image.shape[1] * s)), max(8, round(image.shape[0] * s)))
    image = np.asarray(Image.fromarray(image).resize(size, Image.BOX))
    if mask is not None:
        mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.BILINEAR)) > 127
    return image, mask


def _check_model(model):
    from .models import PrecomputedScores, ScoreModel

    if isinstance(model, PrecomputedScores):
        raise ConfigError("the counterfactual test re-scores recoloured images, which a scores CSV cannot do: give "
                          "the model itself (a state dict, TorchScript, ONNX or a callable)")
    if not isinstance(model, ScoreModel):
        raise ConfigError(f"the model must be a ScoreModel (with predict_proba); got {type(model).__name__}")


def _paired(light, dark, d_light, d_dark) -> dict:
    from scipy.stats import wilcoxon
    from statsmodels.stats.contingency_tables import mcnemar

    table = [[int(np.sum(d_light & d_dark)), int(np.sum(d_light & ~d_dark))],
             [int(np.sum(~d_light & d_dark)), int(np.sum(~d_light & ~d_dark))]]
    p_mc = float(mcnemar(table, exact=True).pvalue)
    diff = dark - light
    if np.all(diff == 0):
        p_w, why = float("nan"), "every paired score difference is 0 (the Wilcoxon test is undefined)"
    else:
        p_w, why = float(wilcoxon(dark, light, zero_method="wilcox").pvalue), None
    return {"mcnemar": p_mc, "wilcoxon": p_w, "mcnemar_table": table, "wilcoxon_undefined": why}


def _boot_mean(x: np.ndarray, n_boot: int, alpha: float, rng) -> tuple[float, float]:
    if len(x) < 2:
        return float("nan"), float("nan")
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def counterfactual_test(model, dataset, *, levels=DEFAULT_LEVELS, n: int = 200, seed: int = 0, margin: float = 0.02,
                        alpha: float = 0.05, batch_size: int = 16, threshold: float = 0.5, n_boot: int = 2000,
                        long_side: int | None = 256, params=COUNTERFACTUAL_ITA, progress=None) -> dict:
    """Does the model's score change when only the skin around the lesion changes colour?

    Parameters
    ----------
    model : ScoreModel
        Any adapter with ``predict_proba`` (TorchModel, OnnxModel, CallableModel).
        :class:`~skinaudit.models.PrecomputedScores` is refused (ConfigError): a scores CSV
        cannot score recoloured images.
    dataset : AuditDataset
        Images, labels and (when present) lesion masks; without a mask the lesion is segmented.
    levels : sequence of float
        Target ITA in degrees (at least two); the lightest (max) and darkest (min) are compared.
    n : int, >= 1
        Images in the stratified sample (by label; all when the dataset is smaller).
    seed : int
        Seed of the sample and of the bootstrap.
    margin : float, >= 0
        Practical margin: ``sensitive`` needs ``|mean(dark - light)| > margin``.
    alpha : float
        Level of the Holm-adjusted tests; the dose-response intervals are 1 - alpha.
    batch_size : int
        Images per batch; the original and every level of a batch are scored in one call.
    threshold : float
        Decision threshold (score >= threshold is malignant).
    n_boot : int
        Bootstrap resamples of the dose-response intervals.
    long_side : int or None
        Images are box-reduced to this long side before recolouring (the original is scored at
        the same size, so the comparison is paired); None = full size.

    Returns
    -------
    dict
        ``n`` (images recoloured and scored), ``n_sampled``, ``skipped`` (list of
        {image_id, reason}), ``levels`` (list of {target_ita, mean_score, recall, fn, flips,
        n, ita_achieved_median}), ``original`` ({mean_score, recall, fn}), ``effect`` (mean
        score at the darkest minus the lightest level), ``p_values`` ({mcnemar, wilcoxon}),
        ``p_adjusted`` (Holm), ``mcnemar_table``, ``dose_response`` (per class ``malignant`` /
        ``benign``: list of {target_ita, n, mean_score, low, high}), ``verdict`` and
        ``verdict_rule``, ``margin``, ``alpha``, ``threshold``; and ``table``, a DataFrame with
        one row per image x version (``image_id, label, target_ita`` (NaN = original),
        ``score, prediction, ita_achieved``).
    """
    from .imageio import read_image, read_mask
    from .stats import adjust_pvalues

    _check_model(model)
    levels = tuple(float(v) for v in levels)
    if len(levels) < 2 or len(set(levels)) != len(levels):
        raise ConfigError(f"the 'levels' parameter needs at least two distinct target ITA values; got {levels}")
    n = check_int(n, "n", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    n_boot = check_int(n_boot, "n_boot", low=1)
    alpha = check_param(alpha, "alpha")
    threshold = check_param(threshold, "threshold")
    if not margin >= 0:
        raise ConfigError(f"the 'margin' parameter must be >= 0; got {margin}")
    idx = stratified_sample(dataset.labels, n, random_state=seed)
    ids, labels = np.asarray(dataset.ids)[idx], np.asarray(dataset.labels)[idx]
    paths, masks = [dataset.image_paths[i] for i in idx], [dataset.mask_paths[i] for i in idx]
    rows, skipped = [], []
    starts = range(0, len(idx), batch_size)
    if progress is not None:
        starts = progress(starts, total=len(starts), desc=f"counterfactual ({model.name})")
    for start in starts:
        batch, meta = [], []
        for k in range(start, min(start + batch_size, len(idx))):
            try:
                image = read_image(paths[k])
                mask = read_mask(masks[k], shape=image.shape[:2]) if masks[k] else None
                image, mask = _shrink(image, mask, long_side)
                rec = recolour_skin(image, mask, levels=levels, params=params)
            except (ImageError, DataError) as exc:
                skipped.append({"image_id": str(ids[k]), "reason": str(getattr(exc, "reason", exc))})
                continue
            batch += [image, *rec.images]
            meta += [(ids[k], labels[k], float("nan"), rec.original[2])]
            meta += [(ids[k], labels[k], t, a[2]) for t, a in zip(levels, rec.achieved)]
        if batch:
            scores = np.asarray(model.predict_proba(batch), dtype=float)
            rows += [(*m, s) for m, s in zip(meta, scores)]
    table = pd.DataFrame(rows, columns=["image_id", "label", "target_ita", "ita_achieved", "score"])
    table["prediction"] = (table["score"] >= threshold).astype(int)
    table = table[["image_id", "label", "target_ita", "score", "prediction", "ita_achieved"]]
    return _summarise(table, levels, skipped, len(idx), margin=margin, alpha=alpha, threshold=threshold,
                      n_boot=n_boot, seed=seed, adjust=adjust_pvalues)


def _level_stats(t: pd.DataFrame, original: pd.DataFrame | None) -> dict:
    y, pred = t["label"].to_numpy(), t["prediction"].to_numpy()
    pos = y == 1
    out = {"n": int(len(t)), "mean_score": float(t["score"].mean()) if len(t) else float("nan"),
           "recall": float(pred[pos].mean()) if pos.any() else float("nan"), "fn": int(np.sum(pos & (pred == 0)))}
    if original is not None:
        out["flips"] = int(np.sum(pred != original["prediction"].to_numpy()))
        out["ita_achieved_median"] = float(t["ita_achieved"].median()) if len(t) else float("nan")
    return out


def _summarise(table, levels, skipped, n_sampled, *, margin, alpha, threshold, n_boot, seed, adjust) -> dict:
    orig = table[table["target_ita"].isna()].reset_index(drop=True)
    per = {t: table[table["target_ita"] == t].reset_index(drop=True) for t in levels}
    n_ok = len(orig)
    res = {"n": n_ok, "n_sampled": int(n_sampled), "skipped": skipped, "margin": float(margin),
           "alpha": float(alpha), "threshold": float(threshold),
           "original": _level_stats(orig, None),
           "levels": [{"target_ita": t, **_level_stats(per[t], orig)} for t in levels]}
    light, dark = max(levels), min(levels)
    rule = (f"insufficient: fewer than {MIN_IMAGES} images recoloured and scored; sensitive: a Holm-adjusted "
            f"p-value (McNemar on decisions or Wilcoxon on scores, ITA {light:g} vs {dark:g}) <= alpha and "
            f"|mean score difference| > margin; otherwise not_detected")
    rng = np.random.default_rng(seed)
    res["dose_response"] = {}
    for name, cls in (("malignant", 1), ("benign", 0)):
        curve = []
        for t in levels:
            x = per[t]["score"].to_numpy()[per[t]["label"].to_numpy() == cls]
            lo, hi = _boot_mean(x, n_boot, alpha, rng)
            curve.append({"target_ita": t, "n": int(len(x)), "mean_score": float(x.mean()) if len(x) else float("nan"),
                          "low": lo, "high": hi})
        res["dose_response"][name] = curve
    if n_ok < MIN_IMAGES:
        nan = float("nan")
        res.update(effect=nan, p_values={"mcnemar": nan, "wilcoxon": nan}, p_adjusted={"mcnemar": nan, "wilcoxon": nan},
                   mcnemar_table=None, wilcoxon_undefined=None, verdict="insufficient", verdict_rule=rule)
        return {**res, "table": table}
    sl, sd = per[light]["score"].to_numpy(), per[dark]["score"].to_numpy()
    paired = _paired(sl, sd, sl >= threshold, sd >= threshold)
    p = [paired["mcnemar"], paired["wilcoxon"]]
    adj = adjust(p, method="holm", alpha=alpha)
    effect = float(np.mean(sd - sl))
    significant = bool(np.nanmin(adj) <= alpha) if np.isfinite(adj).any() else False
    verdict = "sensitive" if significant and abs(effect) > margin else "not_detected"
    res.update(effect=effect, p_values={"mcnemar": p[0], "wilcoxon": p[1]},
               p_adjusted={"mcnemar": float(adj[0]), "wilcoxon": float(adj[1])},
               mcnemar_table=paired["mcnemar_table"], wilcoxon_undefined=paired["wilcoxon_undefined"],
               verdict=verdict, verdict_rule=rule)
    return {**res, "table": table}
