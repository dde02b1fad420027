"""Concordance of ITA with human skin-type labels, beside an L*-only baseline; Monk Skin Tone.

ITA is a colorimetric angle; a Fitzpatrick type is a clinician's (or patient's) rating of sun
reactivity. Where a dataset has both, :func:`fitzpatrick_concordance` says how far they agree:

- Spearman's rho between ITA and the type (expected negative: lighter skin, higher ITA, lower
  type), and, on the same images, between L* alone and the type: if L* does as well as ITA, the
  b* term of ITA adds nothing on these images;
- linear-weighted Cohen's kappa between the type and ITA mapped to a type by
  :data:`ITA_TO_FITZPATRICK` (scikit-learn ``cohen_kappa_score(weights="linear")``).

The mapping is approximate: it puts Del Bino & Bernerd's (2013) six ITA categories, lightest to
darkest, onto types I to VI in order, as is commonly done when ITA is compared with Fitzpatrick
labels. ITA categories are colour classes measured by a colorimeter on sun-protected skin, not
phototypes, and published ITA-to-type tables differ; read the kappa as "agreement under this
mapping", not as the accuracy of ITA.

:func:`monk_tone` gives the nearest of the 10 Monk Skin Tone (MST) swatches (Monk 2019; the
published sRGB values of the Google MST scale, :data:`MST_HEX`) in CIELAB (Delta E 1976).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ITA_TO_FITZPATRICK", "MST_HEX", "ita_to_fitzpatrick", "parse_fitzpatrick", "fitzpatrick_concordance",
           "monk_tone"]

#: Del Bino & Bernerd 2013 ITA category (``del_bino`` scheme label) -> Fitzpatrick type (approximate).
ITA_TO_FITZPATRICK = {"very_light": 1, "light": 2, "intermediate": 3, "tan": 4, "brown": 5, "dark": 6}

#: The 10 Monk Skin Tone swatches, MST 1 (lightest) to 10, as sRGB hex (Google's Monk Skin Tone
#: Scale, skintone.google; Monk E., 2019).
MST_HEX = ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96", "#a07e56", "#825c43", "#604134", "#3a312a",
           "#292420")

_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}


def ita_to_fitzpatrick(ita) -> np.ndarray:
    """Approximate Fitzpatrick type (float 1-6; NaN without ITA) from ITA in degrees, through the
    ``del_bino`` scheme's bins (> 55: I, (41, 55]: II, (28, 41]: III, (10, 28]: IV,
    (-30, 10]: V, <= -30: VI) and :data:`ITA_TO_FITZPATRICK`."""
    from .schemes import UNKNOWN, assign_groups

    groups = assign_groups(np.asarray(ita, dtype=float), "del_bino")
    return np.array([np.nan if g == UNKNOWN else float(ITA_TO_FITZPATRICK[g]) for g in groups])


def parse_fitzpatrick(values) -> np.ndarray:
    """Human Fitzpatrick types as float 1-6 from numbers (1, 2.0) or Roman numerals (I-VI);
    anything else (missing, 0, 7, text) is NaN."""
    def one(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return np.nan
        text = str(v).strip().upper()
        if text in _ROMAN:
            return float(_ROMAN[text])
        try:
            x = float(text)
        except ValueError:
            return np.nan
        return x if x in (1, 2, 3, 4, 5, 6) else np.nan

    return np.array([one(v) for v in pd.Series(values).tolist()], dtype=float)


def _spearman(x, y) -> dict:
    from scipy.stats import spearmanr

    if len(x) < 3 or np.unique(x).size < 2 or np.unique(y).size < 2:
        return {"rho": float("nan"), "p": float("nan")}
    res = spearmanr(x, y)
    return {"rho": float(res.statistic), "p": float(res.pvalue)}


def fitzpatrick_concordance(ita, lightness, fitzpatrick, *, column: str) -> dict:
    """Concordance of ITA (and of L* alone) with human Fitzpatrick types, on the same images.

    Parameters
    ----------
    ita : array_like of float, shape (n,)
        ITA in degrees (NaN: no value).
    lightness : array_like of float, shape (n,)
        CIE L* of the same skin samples (the baseline).
    fitzpatrick : array_like, shape (n,)
        Human types (1-6 or I-VI; see :func:`parse_fitzpatrick`).
    column : str
        Name of the human-type column (recorded).

    Returns
    -------
    dict
        ``column, n_images`` (images with ITA, L* and a type), ``spearman_ita`` and
        ``spearman_ita_p``, ``spearman_lightness`` and ``spearman_lightness_p`` (the L*-only
        baseline), ``kappa_linear`` (linear-weighted Cohen's kappa of the type and the mapped
        ITA), ``exact_agreement`` and ``within_one`` (shares of images whose mapped type equals,
        or is within one of, the human type), ``mapping``, ``note``; a ``confusion`` table
        (human type x mapped type) as a list of records when any image has all three.
    """
    from sklearn.metrics import cohen_kappa_score

    ita = np.asarray(ita, dtype=float)
    light = np.asarray(lightness, dtype=float)
    human = parse_fitzpatrick(fitzpatrick)
    ok = np.isfinite(ita) & np.isfinite(light) & np.isfinite(human)
    mapped = ita_to_fitzpatrick(ita[ok])
    s_ita, s_l = _spearman(ita[ok], human[ok]), _spearman(light[ok], human[ok])
    out = {"column": column, "n_images": int(ok.sum()), "n_without_value": int((~ok & np.isfinite(human)).sum()),
           "spearman_ita": s_ita["rho"], "spearman_ita_p": s_ita["p"],
           "spearman_lightness": s_l["rho"], "spearman_lightness_p": s_l["p"],
           "kappa_linear": float("nan"), "exact_agreement": float("nan"), "within_one": float("nan"),
           "mapping": {"I": "> 55", "II": "(41, 55]", "III": "(28, 41]", "IV": "(10, 28]", "V": "(-30, 10]",
                       "VI": "<= -30"},
           "note": ("ITA mapped to a Fitzpatrick type through Del Bino & Bernerd's (2013) six ITA categories, "
                    "lightest to darkest onto I-VI: an approximation (ITA measures colour, a Fitzpatrick type sun "
                    "reactivity). A useful skin-tone estimate has a clearly negative Spearman rho with the type; "
                    "if L* alone does as well as ITA, ITA's b* term adds nothing on these images.")}
    if ok.sum() >= 2:
        labels = [1, 2, 3, 4, 5, 6]
        if np.unique(np.concatenate([human[ok], mapped])).size > 1:
            out["kappa_linear"] = float(cohen_kappa_score(human[ok].astype(int), mapped.astype(int), labels=labels,
                                                          weights="linear"))
        out["exact_agreement"] = float(np.mean(human[ok] == mapped))
        out["within_one"] = float(np.mean(np.abs(human[ok] - mapped) <= 1))
        roman = {v: k for k, v in _ROMAN.items()}
        table = pd.crosstab(pd.Categorical([roman[int(v)] for v in human[ok]], categories=list(roman.values())),
                            pd.Categorical([roman[int(v)] for v in mapped], categories=list(roman.values())),
                            dropna=False)
        out["confusion"] = [{"human type": str(h), **{f"ITA type {c}": int(table.loc[h, c]) for c in table.columns}}
                            for h in table.index]
    return out


def _hex_to_lab(hexes) -> np.ndarray:
    from skimage.color import rgb2lab

    rgb = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes], dtype=float) / 255.0
    return rgb2lab(rgb[None, :, :])[0]


def monk_tone(L, a, b) -> np.ndarray:
    """Nearest Monk Skin Tone swatch (int 1-10 as float; NaN where any input is NaN).

    Distance: CIE 1976 Delta E in CIELAB (D65; scikit-image ``rgb2lab`` of :data:`MST_HEX`).
    Inputs are CIELAB of the skin sample, broadcastable arrays.
    """
    lab = np.stack(np.broadcast_arrays(np.asarray(L, float), np.asarray(a, float), np.asarray(b, float)), axis=-1)
    ref = _hex_to_lab(MST_HEX)
    d = np.linalg.norm(lab[..., None, :] - ref, axis=-1)
    ok = np.isfinite(lab).all(axis=-1)
    out = np.full(lab.shape[:-1], np.nan)
    out[ok] = np.argmin(d[ok], axis=-1) + 1
    return out
