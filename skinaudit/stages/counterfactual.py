"""Stage: the counterfactual skin-tone test (``AuditConfig.counterfactual`` > 0 images).

Recolours the skin around each lesion of a stratified sample to the default target ITA levels
and re-scores every version (:func:`skinaudit.counterfactual_stats.counterfactual_test`).
Returns the ``counterfactual`` section, the per image x level table ``counterfactual`` and the
dose-response figure ``counterfactual_dose_response``.
"""
from __future__ import annotations

import numpy as np

from ..counterfactual_stats import counterfactual_test
from . import StageOutput

__all__ = ["counterfactual_stage"]


def _figure(result: dict) -> bytes | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a core dependency
        return None
    from io import BytesIO

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    for name, colour in (("malignant", "#b2182b"), ("benign", "#2166ac")):
        curve = [p for p in result["dose_response"][name] if p["n"]]
        if not curve:
            continue
        x = [p["target_ita"] for p in curve]
        ax.plot(x, [p["mean_score"] for p in curve], "o-", color=colour, label=f"{name} (n={curve[0]['n']})")
        ax.fill_between(x, [p["low"] for p in curve], [p["high"] for p in curve], color=colour, alpha=0.2)
    ax.set_xlabel("target ITA of the surrounding skin (degrees)")
    ax.set_ylabel("mean score")
    ax.invert_xaxis()
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"verdict: {result['verdict']}", fontsize=9)
    fig.tight_layout()
    buf = BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def counterfactual_stage(model, dataset, config, *, progress=None) -> StageOutput:
    """Run the counterfactual test on ``config.counterfactual`` images with the audit's
    seed, alpha, bootstrap replicates, batch size and threshold."""
    result = counterfactual_test(model, dataset, n=config.counterfactual, seed=config.seed, alpha=config.alpha,
                                 batch_size=config.batch_size, threshold=config.threshold, n_boot=config.n_boot,
                                 progress=progress)
    table = result.pop("table")
    figures = {}
    png = _figure(result)
    if png is not None:
        figures["counterfactual_dose_response"] = png
    section = {"available": True, **result, "summary": in_words(result),
               "notes": ["Only the skin around the lesion is recoloured (CIELAB, texture kept, the lesion "
                         "bit-identical; with an estimated lesion a thin ring round it too); a darker skin under a dermatoscope is more than a colour shift, so "
                         "a 'not detected' verdict is not proof that skin colour plays no part (docs/counterfactual.md)."]}
    if png is not None:
        section["figures"] = {"dose_response": "figures/counterfactual_dose_response.png"}
    strip = _three_levels(dataset, table)
    if strip is not None:
        figures["counterfactual_three_levels"] = strip
        section.setdefault("figures", {})["three_levels"] = "figures/counterfactual_three_levels.png"
        section["notes"].append("The strip shows one sampled image as it is and recoloured to ITA 60, 28 and -20 "
                                "(left to right); only the skin outside the lesion changes. Human masks include "
                                "a rim of skin, kept as it was, so a thin light rim circles the lesion at the "
                                "darkest level.")
    return StageOutput(sections={"counterfactual": section}, tables={"counterfactual": table}, figures=figures)


def _three_levels(dataset, table) -> bytes | None:
    """One recoloured image of the test, as it is and at ITA 60, 28 and -20, side by side."""
    from ..counterfactual import recolour_skin
    from ..counterfactual_stats import _shrink
    from ..imageio import read_image, read_mask
    from .explain import png_bytes

    if table is None or not len(table) or "image_id" not in table:
        return None
    rows = dataset.table.set_index("image_id")
    for image_id in dict.fromkeys(table["image_id"].astype(str)):
        if image_id not in rows.index:
            continue
        try:
            image = read_image(rows.loc[image_id, "image_path"])
            mp = rows.loc[image_id, "mask_path"]
            mask = read_mask(mp, shape=image.shape[:2]) if isinstance(mp, str) and mp else None
            image, mask = _shrink(image, mask, 256)
            versions = recolour_skin(image, mask, levels=(60.0, 28.0, -20.0))
        except Exception:  # noqa: BLE001 - an illustration only: try the next image
            continue
        gap = np.full((image.shape[0], 6, 3), 255, dtype=np.uint8)
        parts = [image]
        for v in versions.images:
            parts += [gap, v]
        return png_bytes(np.concatenate(parts, axis=1))
    return None


def in_words(result: dict) -> str:
    """The verdict of the counterfactual test as one sentence a reviewer can check."""
    levels = result.get("levels") or []
    if result.get("verdict") == "insufficient" or len(levels) < 2:
        return (f"insufficient: only {result.get('n', 0)} of {result.get('n_sampled', 0)} sampled images could be "
                "recoloured and scored, too few for the paired tests.")
    light, dark = levels[0], levels[-1]
    p = result.get("p_adjusted") or {}
    effect = float(result.get("effect", float("nan")))
    direction = "raised" if effect > 0 else "lowered"
    text = (f"recolouring only the skin from ITA {light['target_ita']:g} to {dark['target_ita']:g} {direction} the "
            f"mean malignancy score by {abs(effect):.3f} ({light['mean_score']:.3f} to {dark['mean_score']:.3f}) on "
            f"{result.get('n')} images, and changed {dark.get('flips', 0)} decisions against the original; "
            f"Holm-adjusted p: McNemar {p.get('mcnemar', float('nan')):.2g}, Wilcoxon {p.get('wilcoxon', float('nan')):.2g}")
    if result.get("verdict") == "sensitive":
        return (f"sensitive: {text}. The change is significant and larger than the practical margin "
                f"{result.get('margin'):g}: this model's score depends on skin colour with the lesion unchanged.")
    return (f"not detected: {text}. No significant change larger than the practical margin {result.get('margin'):g} "
            "(the test can miss a dependence it has too few images to see).")
