"""An automatic false-negative taxonomy, with the evidence for every case.

The paper sorted its 35 false negatives by hand into four modes (its Table 6). This module
measures, for each missed case, what the model looked at (its Grad-CAM++ map against the
lesion mask and the artifact masks) and what the lesion looks like (contrast against the
surrounding skin, asymmetry, border, colour), then applies a table of named thresholds
(:class:`FailureRules`) in a stated precedence order, so every case gets exactly one mode.
The modes are records of one registry, :data:`FAILURE_MODES` (name, wording, criterion):

============================  ==============================================================
``artifact_distraction``      the map puts much of its mass on artifact pixels (hair, ruler,
                              ink, gel, dark corners...) outside the lesion, more than chance
``low_contrast``              the lesion hardly differs in colour from the skin around it
                              (CIEDE2000; optionally a wider tolerance at low ITA)
``poor_localisation``         the map's peak misses the lesion or little of its mass is on it
``atypical_presentation``     the model looked at the lesion, which shows few malignancy
                              cues (asymmetry, border irregularity, colour variegation); also
                              the mode of a case no rule explains (``criterion_met=False``)
============================  ==============================================================

Numeric core: numpy, scipy, scikit-image, pandas; no torch. Maps come in as plain arrays
(from :func:`skinaudit.explain.compute_cams` or elsewhere).

Definitions (one image; ``M`` the lesion mask, ``c`` the map, ``A`` the union of artifact
masks dilated by ``artifact_margin`` and minus ``M``):

* ``artifact_mass = sum(c * A) / sum(c)``; ``artifact_lift = artifact_mass / mean(A)``
  (1 = no more attention on artifacts than a flat map); ``top_artifact`` the artifact with
  the largest share.
* ``relevance_mass``, ``pointing_game``, ``iou_top``: :func:`skinaudit.localisation.localisation_scores`.
* ``delta_e`` = CIEDE2000 (Sharma et al. 2005, scikit-image ``deltaE_ciede2000``) between the
  median CIELAB colour of the lesion and of a ring of skin around it (from ``ring_gap`` to
  ``ring_gap + ring_width`` lesion-equivalent diameters outside the border), artifact pixels
  excluded from both. ``delta_e76`` is the Euclidean (CIE76) distance of the same medians.
* ``asymmetry`` in [0, 1]: mean over the two principal axes of the share of lesion pixels
  whose mirror image across the axis (through the centroid) falls outside the lesion
  (0 = mirror-symmetric on both axes; cf. Stolz's ABCD rule and Celebi et al. 2007).
* ``border_irregularity`` >= 1: compactness index ``P^2 / (4 pi A)`` (1 for a disc;
  Golston et al. 1992), perimeter by scikit-image ``perimeter`` (Crofton, 4 directions).
* ``colour_variegation``: mean CIE76 distance of lesion pixels (3 pixels in from the border) to
  their median colour, after a 1-pixel Gaussian blur against sensor noise (a spread of colours,
  in Delta E units).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import ConfigError, DataError
from .localisation import localisation_scores
from .validation import check_choice

__all__ = [
    "DARK_ITA",
    "FAILURE_MODES",
    "MODES",
    "MODE_DESCRIPTIONS",
    "FailureMode",
    "FailureRules",
    "lesion_features",
    "cam_features",
    "case_features",
    "failure_features",
    "classify_failures",
    "failure_table",
    "failure_summary",
]

_MIN_PIXELS = 30


def _ciede2000(lab1, lab2) -> float:
    from skimage.color import deltaE_ciede2000

    return float(deltaE_ciede2000(np.asarray(lab1, float), np.asarray(lab2, float)))


def _check_image_mask(image, lesion_mask):
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise DataError(f"the image must be an (H, W, 3) uint8 RGB array; got {img.shape} {img.dtype}")
    m = np.asarray(lesion_mask)
    if m.shape != img.shape[:2]:
        raise DataError(f"the lesion mask's shape {m.shape} differs from the image's {img.shape[:2]}")
    return img, m.astype(bool)


def _artifact_union(artifact_masks, shape) -> np.ndarray:
    union = np.zeros(shape, bool)
    for name, a in (artifact_masks or {}).items():
        a = np.asarray(a)
        if a.shape != tuple(shape):
            raise DataError(f"the artifact mask {name!r} has shape {a.shape}; the image is {tuple(shape)}")
        union |= a.astype(bool)
    return union


# ----------------------------------------------------------------------------------------
# features of the lesion (image + mask)
# ----------------------------------------------------------------------------------------

def _asymmetry(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    pts = np.stack([ys, xs], axis=1).astype(float)
    centre = pts.mean(axis=0)
    d = pts - centre
    _, vecs = np.linalg.eigh(np.cov(d.T))
    local = d @ vecs                      # coordinates along the principal axes
    shares = []
    for axis in (0, 1):
        mirrored = local.copy()
        mirrored[:, axis] *= -1
        back = np.rint(mirrored @ vecs.T + centre).astype(int)
        inside = (back[:, 0] >= 0) & (back[:, 0] < mask.shape[0]) & (back[:, 1] >= 0) & (back[:, 1] < mask.shape[1])
        hit = np.zeros(len(back), bool)
        hit[inside] = mask[back[inside, 0], back[inside, 1]]
        shares.append(1.0 - hit.mean())
    return float(np.mean(shares))


def lesion_features(image, lesion_mask, *, artifact_masks: Mapping[str, np.ndarray] | None = None,
                    ring_gap: float = 0.05, ring_width: float = 0.25) -> dict:
    """Colour contrast and shape cues of one lesion, from its image and mask.

    Parameters
    ----------
    image : (H, W, 3) uint8 sRGB
    lesion_mask : (H, W) bool (given or estimated)
    artifact_masks : dict name -> (H, W) bool, optional
        Pixels left out of the colour statistics (hair over the lesion, ink, ...).
    ring_gap, ring_width : float
        The skin ring around the lesion, in lesion-equivalent diameters
        (``sqrt(4 * area / pi)``): from ``ring_gap`` to ``ring_gap + ring_width`` outside it.

    Returns
    -------
    dict: ``delta_e`` (CIEDE2000), ``delta_e76``, ``lesion_L``, ``skin_L``, ``asymmetry``
    [0, 1], ``border_irregularity`` (>= 1), ``colour_variegation`` (Delta E76),
    ``lesion_area_frac``, ``lesion_reason`` ("" or why values are NaN).
    """
    from scipy import ndimage
    from skimage import color, filters, measure

    img, m = _check_image_mask(image, lesion_mask)
    if ring_gap < 0 or ring_width <= 0:
        raise ConfigError(f"ring_gap must be >= 0 and ring_width > 0; got {ring_gap}, {ring_width}")
    out = {"delta_e": np.nan, "delta_e76": np.nan, "lesion_L": np.nan, "skin_L": np.nan, "asymmetry": np.nan,
           "border_irregularity": np.nan, "colour_variegation": np.nan, "lesion_area_frac": float(m.mean()),
           "lesion_reason": ""}
    if m.sum() < _MIN_PIXELS:
        out["lesion_reason"] = f"lesion mask has fewer than {_MIN_PIXELS} pixels"
        return out
    if m.all():
        out["lesion_reason"] = "the lesion mask covers the whole image: no skin to compare with"
    lab = color.rgb2lab(img)
    clean = ~_artifact_union(artifact_masks, m.shape)
    area = float(m.sum())
    out["asymmetry"] = _asymmetry(m)
    out["border_irregularity"] = float(measure.perimeter(m) ** 2 / (4 * math.pi * area))
    lesion_px = m & clean
    if lesion_px.sum() < _MIN_PIXELS:
        out["lesion_reason"] = "fewer than 30 artifact-free lesion pixels"
        return out
    smooth = np.stack([filters.gaussian(lab[..., k], sigma=1.0) for k in range(3)], axis=-1)
    lesion_lab = np.median(lab[lesion_px], axis=0)
    out["lesion_L"] = float(lesion_lab[0])
    inner = ndimage.binary_erosion(lesion_px, iterations=3)   # keep the blur from mixing in skin colour
    inner = inner if inner.sum() >= _MIN_PIXELS else lesion_px
    out["colour_variegation"] = float(np.linalg.norm(smooth[inner] - np.median(smooth[inner], axis=0), axis=1).mean())
    if m.all():
        return out
    diam = math.sqrt(4 * area / math.pi)
    dist = ndimage.distance_transform_edt(~m)
    ring = (dist > ring_gap * diam) & (dist <= (ring_gap + ring_width) * diam) & clean
    if ring.sum() < _MIN_PIXELS:
        ring = ~m & clean
    if ring.sum() < _MIN_PIXELS:
        out["lesion_reason"] = "fewer than 30 artifact-free skin pixels around the lesion"
        return out
    skin_lab = np.median(lab[ring], axis=0)
    out["skin_L"] = float(skin_lab[0])
    out["delta_e"] = _ciede2000(lesion_lab, skin_lab)
    out["delta_e76"] = float(np.linalg.norm(lesion_lab - skin_lab))
    return out


# ----------------------------------------------------------------------------------------
# features of the explanation (map + masks)
# ----------------------------------------------------------------------------------------

def cam_features(cam, lesion_mask, *, artifact_masks: Mapping[str, np.ndarray] | None = None,
                 keep_top: float = 0.25, artifact_margin: float = 0.02) -> dict:
    """Where one map puts its mass: on the lesion, on artifacts, elsewhere.

    Parameters
    ----------
    cam : (H, W) array >= 0, same size as the mask
    lesion_mask : (H, W) bool
    artifact_masks : dict name -> (H, W) bool, optional
        Detected (``skinaudit.lesion.detect_artifacts``) or known artifact pixels.
    keep_top : float
        Sharpened region for ``iou_top``.
    artifact_margin : float
        Artifact masks are dilated by this fraction of the image's shorter side (a CAM at a
        ResNet's ``layer4`` has one cell per 32 input pixels, so a 2-pixel hair can only be
        "looked at" together with its surroundings).

    Returns
    -------
    dict: ``relevance_mass, pointing_game, iou_top`` (see localisation.localisation_scores),
    ``artifact_mass``, ``artifact_area_frac``, ``artifact_lift``, ``top_artifact``
    (name or ""), ``artifact_mass_<name>`` per artifact, ``cam_reason``.
    """
    from scipy import ndimage

    loc = localisation_scores(cam, lesion_mask, keep_top=keep_top)
    c = np.asarray(cam, dtype=np.float64)
    m = np.asarray(lesion_mask).astype(bool)
    if not 0 <= artifact_margin < 0.5:
        raise ConfigError(f"the 'artifact_margin' parameter must be in [0, 0.5); got {artifact_margin}")
    out = {k: loc[k] for k in ("relevance_mass", "pointing_game", "iou_top")}
    out.update({"artifact_mass": np.nan, "artifact_area_frac": np.nan, "artifact_lift": np.nan, "top_artifact": "",
                "cam_reason": loc["reason"]})
    total = c.sum()
    if total <= 0:
        return out
    radius = int(round(artifact_margin * min(m.shape)))
    grow = (lambda a: ndimage.binary_dilation(a, iterations=radius)) if radius > 0 else (lambda a: a)
    union = np.zeros(m.shape, bool)
    best, best_mass = "", 0.0
    for name, a in (artifact_masks or {}).items():
        a = np.asarray(a)
        if a.shape != m.shape:
            raise DataError(f"the artifact mask {name!r} has shape {a.shape}; the map is {m.shape}")
        region = grow(a.astype(bool)) & ~m if a.any() else np.zeros(m.shape, bool)
        mass = float(c[region].sum() / total)
        out[f"artifact_mass_{name}"] = mass
        if mass > best_mass:
            best, best_mass = name, mass
        union |= region
    if artifact_masks is None:
        out["cam_reason"] = out["cam_reason"] or "no artifact masks given"
        return out
    area = float(union.mean())
    out["artifact_mass"] = float(c[union].sum() / total)
    out["artifact_area_frac"] = area
    out["artifact_lift"] = out["artifact_mass"] / area if area > 0 else np.nan
    out["top_artifact"] = best
    return out


def case_features(image, lesion_mask, *, cam=None, artifact_masks=None, ita: float = np.nan,
                  keep_top: float = 0.25, artifact_margin: float = 0.02, ring_gap: float = 0.05,
                  ring_width: float = 0.25) -> dict:
    """All features of one case: :func:`lesion_features` + :func:`cam_features` + ``ita``.

    Without a map (``cam=None``: no eager model, or explanations switched off) the map
    features are NaN with ``cam_reason="no CAM"``; the rules that need them do not fire.
    """
    feats = lesion_features(image, lesion_mask, artifact_masks=artifact_masks, ring_gap=ring_gap,
                            ring_width=ring_width)
    if cam is None:
        feats.update({"relevance_mass": np.nan, "pointing_game": np.nan, "iou_top": np.nan, "artifact_mass": np.nan,
                      "artifact_area_frac": np.nan, "artifact_lift": np.nan, "top_artifact": "", "cam_reason": "no CAM"})
    else:
        feats.update(cam_features(cam, lesion_mask, artifact_masks=artifact_masks, keep_top=keep_top,
                                  artifact_margin=artifact_margin))
    feats["ita"] = float(ita) if ita is not None else np.nan
    return feats


def failure_features(ids: Sequence, images: Sequence[np.ndarray], lesion_masks: Sequence[np.ndarray], *,
                     cams: Sequence[np.ndarray] | None = None,
                     artifact_masks: Sequence[Mapping[str, np.ndarray] | None] | None = None,
                     ita: Sequence[float] | None = None, keep_top: float = 0.25, artifact_margin: float = 0.02,
                     ring_gap: float = 0.05, ring_width: float = 0.25, progress=None) -> pd.DataFrame:
    """:func:`case_features` for many cases (e.g. every false negative).

    Sequences are aligned with ``ids``; ``cams``, ``artifact_masks`` and ``ita`` are optional
    (one entry per case, ``None`` where missing). ``progress`` is a tqdm-like wrapper.

    Returns
    -------
    DataFrame with ``image_id`` then the feature columns, one row per case.
    """
    ids = list(ids)
    n = len(ids)
    seqs = {"images": images, "lesion_masks": lesion_masks, "cams": cams, "artifact_masks": artifact_masks, "ita": ita}
    for name, seq in seqs.items():
        if seq is not None and len(seq) != n:
            raise DataError(f"{len(seq)} {name} for {n} image ids")
    it = range(n) if progress is None else progress(range(n), total=n, desc="failure features")
    rows = []
    for i in it:
        rows.append({"image_id": ids[i], **case_features(
            images[i], lesion_masks[i], cam=None if cams is None else cams[i],
            artifact_masks=None if artifact_masks is None else artifact_masks[i],
            ita=np.nan if ita is None or ita[i] is None else ita[i], keep_top=keep_top,
            artifact_margin=artifact_margin, ring_gap=ring_gap, ring_width=ring_width)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# the criteria: each takes one case's features and the rules, says whether its mode holds
# (None when the features it needs are NaN) and states the comparison with the numbers
# ----------------------------------------------------------------------------------------

def _nan(x) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and math.isnan(x))


def _f(x) -> str:
    return f"{x:.3g}"


def _artifact_rule(r, rules, case):
    mass, lift = r.get("artifact_mass", np.nan), r.get("artifact_lift", np.nan)
    if _nan(mass) or _nan(lift):
        return None, "no CAM or no artifact masks"
    fired = mass >= rules.artifact_mass_min and lift >= rules.artifact_lift_min
    top = r.get("top_artifact")
    where = f" on {top}" if isinstance(top, str) and top else ""
    return fired, (f"artifact_mass {_f(mass)}{where} {'>=' if mass >= rules.artifact_mass_min else '<'} "
                   f"{_f(rules.artifact_mass_min)}, lift {_f(lift)} {'>=' if lift >= rules.artifact_lift_min else '<'} "
                   f"{_f(rules.artifact_lift_min)}")


def _contrast_rule(r, rules, case):
    de, ita = r.get("delta_e", np.nan), r.get("ita", np.nan)
    if _nan(de):
        return None, "no lesion-to-skin Delta E"
    dark = not _nan(ita) and ita <= rules.dark_ita
    thr = rules.delta_e_max_dark if dark else rules.delta_e_max
    tone = f"ITA {_f(ita)} <= {_f(rules.dark_ita)}" if dark else ("ITA unknown" if _nan(ita) else f"ITA {_f(ita)}")
    return de < thr, f"delta_e {_f(de)} {'<' if de < thr else '>='} {_f(thr)} ({tone})"


def _localisation_rule(r, rules, case):
    rm, pg = r.get("relevance_mass", np.nan), r.get("pointing_game", np.nan)
    if _nan(rm) or _nan(pg):
        return None, "no CAM"
    low = rm < rules.relevance_mass_min
    missed = rules.pointing_game_required and pg < 0.5
    return bool(low or missed), (f"relevance_mass {_f(rm)} {'<' if low else '>='} {_f(rules.relevance_mass_min)}, "
                                 f"pointing game {'missed' if pg < 0.5 else 'hit'}")


def _cues(r, rules):
    vals = [r.get("asymmetry", np.nan), r.get("border_irregularity", np.nan), r.get("colour_variegation", np.nan)]
    if any(_nan(v) for v in vals):
        return None
    thr = (rules.asymmetry_min, rules.border_min, rules.variegation_min)
    return sum(int(v >= t) for v, t in zip(vals, thr))


def _atypical_rule(r, rules, case):
    n = _cues(r, rules)
    if n is None:
        return None, "no shape or colour features"
    fired = n < rules.min_cues if case == "FN" else n >= rules.min_cues
    return fired, (f"{n} of 3 cues (asymmetry {_f(r['asymmetry'])}, border {_f(r['border_irregularity'])}, "
                   f"variegation {_f(r['colour_variegation'])}) {'<' if n < rules.min_cues else '>='} "
                   f"{rules.min_cues}")


# ----------------------------------------------------------------------------------------
# the taxonomy: one record per mode
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FailureMode:
    """One mode of the taxonomy: its key, its wording and its criterion.

    Attributes
    ----------
    name : str
        Key of the mode in every table (``mode`` column) and in ``FailureRules.order``.
    label : str
        Display name, in the paper's Table 6 wording.
    description : str
        What the mode means for a false negative, stated as what is measured.
    check : callable ``(features, rules, case) -> (fired, evidence)``
        ``features`` one case's feature mapping (a missing key counts as NaN), ``rules`` a
        :class:`FailureRules`, ``case`` ``"FN"`` or ``"FP"``. ``fired`` is True or False, or
        None when the features it needs are NaN (the criterion does not hold); ``evidence``
        states the comparison with its numbers.
    fp_description : str
        The false-positive reading when it differs from ``description`` ("" = the same).
    """

    name: str
    label: str
    description: str
    check: Callable[[Mapping, "FailureRules", str], tuple]
    fp_description: str = ""

    def describe(self, case: str = "FN") -> str:
        """The description for false negatives (``"FN"``) or false positives (``"FP"``)."""
        return self.fp_description if case == "FP" and self.fp_description else self.description


#: The taxonomy (the paper's Table 6), in the default precedence order. Adding a mode is
#: adding a record here (and, if it needs thresholds, fields of :class:`FailureRules`).
FAILURE_MODES = (
    FailureMode("artifact_distraction", "artifact distraction",
                "attention on hair, rulers, ink, gel or dark corners rather than the lesion", _artifact_rule),
    FailureMode("low_contrast", "low contrast",
                "insufficient lesion-to-skin colour contrast (especially on darker skin, low ITA)", _contrast_rule),
    FailureMode("poor_localisation", "poor lesion localisation",
                "activations scattered or off the lesion; the lesion was not identified", _localisation_rule),
    FailureMode("atypical_presentation", "atypical presentation",
                "the model looked at the lesion, which lacks canonical malignant cues", _atypical_rule,
                fp_description="a benign lesion showing malignancy cues (asymmetry, border, colour)"),
)

#: Mode keys in the default precedence order.
MODES = tuple(m.name for m in FAILURE_MODES)

#: Table 6's descriptions (false negatives) by mode key, derived from :data:`FAILURE_MODES`.
MODE_DESCRIPTIONS = {m.name: m.description for m in FAILURE_MODES}

_BY_NAME = {m.name: m for m in FAILURE_MODES}

#: ITA (degrees) at or below which a case counts as dark skin by default: the cut of the
#: binary grouping scheme (``skinaudit.skintone``'s ``binary``: dark <= 28 < light).
DARK_ITA = 28.0

CASES = ("FN", "FP")


# ----------------------------------------------------------------------------------------
# the thresholds, as data
# ----------------------------------------------------------------------------------------

def _rule(default, meaning: str):
    """A rule field with its one-line meaning (shown by :meth:`FailureRules.table`)."""
    return field(default=default, metadata={"meaning": meaning})


@dataclass(frozen=True)
class FailureRules:
    """Named thresholds of the taxonomy and the order in which the modes are tried.

    A case gets the first mode of ``order`` whose criterion holds; a criterion whose
    features are NaN (no map, no skin ring...) does not hold. When none holds the case gets
    ``fallback`` with ``criterion_met=False``. The defaults and their grounds (measurements
    on public datasets with human masks) are in docs/explanations.md.

    Attributes
    ----------
    artifact_mass_min : float in [0, 1]
        artifact_distraction needs at least this share of the map's mass on (dilated)
        artifact pixels outside the lesion...
    artifact_lift_min : float
        ...and at least this many times the share a flat map would put there.
    delta_e_max : float >= 0
        low_contrast when the lesion-to-skin CIEDE2000 is below this...
    delta_e_max_dark : float >= 0
        ...or below this when the case's ITA is <= ``dark_ita``. The default equals
        ``delta_e_max`` (no wider tolerance on darker skin, see docs/explanations.md); raise
        it to follow the paper's reading ("low contrast (dark skin)").
    dark_ita : float
        ITA (degrees) at or below which ``delta_e_max_dark`` applies; default
        :data:`DARK_ITA` (28, the binary scheme's cut). An audit passes its own grouping
        scheme's cut (``classify_failures(..., dark_ita=...)``).
    relevance_mass_min : float in [0, 1]
        poor_localisation when less than this share of the map is on the lesion...
    pointing_game_required : bool
        ...or (if True) when the map's peak is off the lesion.
    asymmetry_min, border_min, variegation_min : float
        A lesion shows a malignancy cue when its asymmetry, border irregularity or colour
        variegation reaches these values.
    min_cues : int
        atypical_presentation when fewer than this many cues are shown (0-3).
    order : tuple of str
        Precedence: a permutation of :data:`MODES`.
    fallback : str
        Mode of a case no criterion explains.
    """

    artifact_mass_min: float = _rule(
        0.25, "artifact distraction: min share of CAM mass on artifact pixels outside the lesion")
    artifact_lift_min: float = _rule(
        1.5, "artifact distraction: min ratio of that share to the artifact pixels' area share")
    delta_e_max: float = _rule(8.0, "low contrast: max lesion-to-skin CIEDE2000")
    delta_e_max_dark: float = _rule(8.0, "low contrast: max CIEDE2000 when ITA <= dark_ita")
    dark_ita: float = _rule(DARK_ITA, "ITA (degrees) at or below which the dark-skin contrast threshold applies")
    relevance_mass_min: float = _rule(0.3, "poor localisation: min share of CAM mass on the lesion")
    pointing_game_required: bool = _rule(True, "poor localisation also when the CAM's peak is off the lesion")
    asymmetry_min: float = _rule(
        0.065, "cue: asymmetry (share of mirrored lesion pixels outside the lesion) at least")
    border_min: float = _rule(1.5, "cue: border irregularity P^2/(4 pi A) at least")
    variegation_min: float = _rule(11.0, "cue: colour variegation (mean Delta E76 to the lesion median) at least")
    min_cues: int = _rule(2, "atypical presentation: fewer cues than this")
    order: tuple = _rule(MODES, "precedence of the modes")
    fallback: str = _rule("atypical_presentation", "mode of a case no criterion explains")

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("order", "fallback", "pointing_game_required"):
                continue
            if not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(float(v)):
                raise ConfigError(f"the rule {f.name!r} must be a finite number; got {v!r}")
        for name in ("artifact_mass_min", "relevance_mass_min"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"the rule {name!r} is a share of the map's mass in [0, 1]; got {getattr(self, name)}")
        if self.delta_e_max < 0 or self.delta_e_max_dark < 0:
            raise ConfigError("the Delta E thresholds must be >= 0")
        if self.min_cues not in (0, 1, 2, 3):
            raise ConfigError(f"the rule 'min_cues' must be 0, 1, 2 or 3; got {self.min_cues}")
        if sorted(self.order) != sorted(MODES):
            raise ConfigError(f"the rule 'order' must list each of {', '.join(MODES)} once; got {self.order}")
        if self.fallback not in MODES:
            raise ConfigError(f"the rule 'fallback' must be one of {', '.join(MODES)}; got {self.fallback!r}")

    def table(self) -> pd.DataFrame:
        """The rules as a table: ``name, value, meaning`` (for reports), one row per field."""
        rows = []
        for f in fields(self):
            v = getattr(self, f.name)
            rows.append({"name": f.name, "value": v if not isinstance(v, tuple) else " > ".join(v),
                         "meaning": f.metadata["meaning"]})
        return pd.DataFrame(rows)


EVIDENCE_COLUMNS = ("artifact_mass", "artifact_lift", "top_artifact", "relevance_mass", "pointing_game", "iou_top",
                    "delta_e", "ita", "asymmetry", "border_irregularity", "colour_variegation", "n_cues")


def classify_failures(features: pd.DataFrame, *, rules: FailureRules | None = None, case: str = "FN",
                      dark_ita: float | None = None) -> pd.DataFrame:
    """Give each case exactly one failure mode, with its evidence.

    Parameters
    ----------
    features : DataFrame
        :func:`failure_features` output (``image_id`` and feature columns; missing columns
        count as NaN, so a pipeline without maps still classifies on contrast and cues).
    rules : FailureRules, optional
        Thresholds and precedence (default ``FailureRules()``).
    case : {"FN", "FP"}
        False negatives (default) or false positives. For false positives the fourth mode
        reads the other way: ``atypical_presentation`` = a benign lesion that shows at least
        ``min_cues`` malignancy cues (the "atypical nevus" a dermatologist would also
        biopsy); the other rules are the same.
    dark_ita : float, optional
        ITA cut (degrees) of the audit's grouping scheme: a case with ``ita <= dark_ita``
        gets the dark-skin contrast threshold ``rules.delta_e_max_dark``. Given, it replaces
        ``rules.dark_ita``; None keeps it (default :data:`DARK_ITA`, 28, the binary scheme's
        cut).

    Returns
    -------
    DataFrame ``image_id, mode, criterion_met, evidence, checks`` then the evidence columns
    (``artifact_mass, artifact_lift, top_artifact, relevance_mass, pointing_game, iou_top,
    delta_e, ita, asymmetry, border_irregularity, colour_variegation, n_cues``).
    ``evidence`` states the deciding comparison; ``checks`` every rule's outcome in order
    (``yes`` / ``no`` / ``n/a`` with the numbers).
    """
    rules = rules or FailureRules()
    check_choice(case, "case", CASES)
    if not isinstance(rules, FailureRules):
        raise ConfigError(f"the 'rules' parameter must be a FailureRules; got {type(rules).__name__}")
    if dark_ita is not None:
        rules = replace(rules, dark_ita=dark_ita)
    if not isinstance(features, pd.DataFrame) or "image_id" not in features.columns:
        raise DataError("classify_failures needs a DataFrame with an 'image_id' column (see failure_features)")
    modes = [_BY_NAME[name] for name in rules.order]
    rows = []
    for rec in features.to_dict("records"):
        mode, met, evidence, checks = None, False, "", []
        for m in modes:
            fired, text = m.check(rec, rules, case)
            checks.append(f"{m.name}: {'n/a' if fired is None else 'yes' if fired else 'no'} ({text})")
            if fired and mode is None:
                mode, met, evidence = m.name, True, text
        if mode is None:
            mode, evidence = rules.fallback, "no criterion holds; assigned by elimination"
        n = _cues(rec, rules)
        row = {"image_id": rec["image_id"], "mode": mode, "criterion_met": met, "evidence": evidence,
               "checks": "; ".join(checks)}
        row.update({c: rec.get(c, np.nan) for c in EVIDENCE_COLUMNS if c != "n_cues"})
        row["n_cues"] = np.nan if n is None else n
        row["top_artifact"] = row["top_artifact"] if isinstance(row["top_artifact"], str) else ""
        rows.append(row)
    return pd.DataFrame(rows, columns=["image_id", "mode", "criterion_met", "evidence", "checks", *EVIDENCE_COLUMNS])


def failure_table(modes: pd.DataFrame, *, case: str = "FN") -> pd.DataFrame:
    """Table 6's layout: ``mode, count, percent, description`` (+ ``by_elimination``).

    One row per mode (zero counts included), most frequent first, ties in :data:`MODES`
    order; ``percent`` is the share of the classified cases (% of FN) in percent, NaN when
    there are none. ``by_elimination`` counts cases given the mode as fallback. ``case="FP"``
    uses the false-positive reading of the descriptions.

    Parameters
    ----------
    modes : DataFrame
        :func:`classify_failures` output (a ``mode`` column; ``criterion_met`` optional).
    case : {"FN", "FP"}

    Returns
    -------
    DataFrame ``mode`` (display label), ``key``, ``count``, ``percent``, ``description``,
    ``by_elimination``; one row per :data:`FAILURE_MODES` record.
    """
    check_choice(case, "case", CASES)
    if not isinstance(modes, pd.DataFrame) or "mode" not in modes.columns:
        raise DataError("failure_table needs classify_failures' output (a 'mode' column)")
    unknown = set(modes["mode"]) - set(MODES)
    if unknown:
        raise DataError(f"unknown failure mode(s): {sorted(unknown)}")
    n = len(modes)
    met = modes["criterion_met"] if "criterion_met" in modes.columns else pd.Series(True, index=modes.index)
    rows = []
    for rank, m in enumerate(FAILURE_MODES):
        sel = modes["mode"] == m.name
        count = int(sel.sum())
        rows.append({"mode": m.label, "key": m.name, "count": count,
                     "percent": 100.0 * count / n if n else np.nan, "description": m.describe(case),
                     "by_elimination": int((sel & ~met.astype(bool)).sum()), "_rank": rank})
    out = pd.DataFrame(rows).sort_values(["count", "_rank"], ascending=[False, True], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)


def failure_summary(modes: pd.DataFrame) -> dict:
    """JSON-safe ``{mode: {"count": int, "share": float or None}}`` plus ``"n"`` (for metrics.json).

    ``share`` is ``count / n`` in [0, 1], None when there is no case.
    """
    t = failure_table(modes)
    out = {"n": int(len(modes))}
    for r in t.itertuples():
        out[r.key] = {"count": int(r.count), "share": None if math.isnan(r.percent) else r.percent / 100.0}
    return out
