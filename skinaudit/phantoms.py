"""Synthetic dermoscopy-like images with known truth ("phantoms").

Each phantom is a flat patch of skin of a chosen CIELAB colour (so its ITA is known), a
lesion of irregular outline with its exact mask, and optional artifacts drawn on top,
each with its own pixel mask: hair strands, ruler marks, surgical-marker ink, dark
vignette corners, gel bubbles, and a global colour cast. They are the known-answer bed for
skin-tone estimation, artifact detection and failure modes, and the offline demo data.

Colour maths: CIELAB -> sRGB with scikit-image (``lab2rgb``, D65, 2 degree observer). The
truth table's ``skin_L`` / ``skin_b`` / ``ita_true`` are re-measured from the rendered
8-bit skin colour, so they are exactly what an estimator can recover from the pixels
(before any cast). ITA = degrees(arctan((L* - 50) / b*)) (Chardon et al. 1991).

Everything is deterministic in ``seed``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from skimage import color, draw, filters

from .errors import ConfigError
from .skintone import ita_degrees  # one ITA formula for the whole package

__all__ = ["PhantomSpec", "Phantom", "make_phantom", "generate_phantoms", "ARTIFACTS", "CASTS"]

#: Artifact names, as they appear in the truth table and in artifact detection.
ARTIFACTS = ("hair", "ruler", "ink", "dark_corner", "gel_bubble")
#: 8-bit value of the neutral specular highlight drawn in each gel bubble.
SPECULAR_LEVEL = 228
#: Colour casts as per-channel sRGB gains (applied to linear-light values).
CASTS = {
    "none": (1.0, 1.0, 1.0),
    "blue": (0.86, 0.95, 1.18),   # bluish polarised dermatoscope
    "warm": (1.12, 1.0, 0.84),    # tungsten / yellowed
    "green": (0.92, 1.08, 0.92),
}


@dataclass(frozen=True)
class PhantomSpec:
    """Everything that defines one phantom (all colours in CIELAB, D65).

    ``irregularity`` (0-1) scales the outline's harmonics; ``variegation`` (0-1) adds
    darker and blue-grey blotches inside the lesion; ``asymmetry`` (0-1) stretches the
    lesion along one axis. Malignant-looking phantoms have high values of all three.
    """

    size: int = 224
    skin_L: float = 65.0
    skin_a: float = 12.0
    skin_b: float = 16.0
    lesion_dL: float = -28.0
    lesion_a: float = 14.0
    lesion_b: float = 22.0
    radius: float = 0.22
    irregularity: float = 0.2
    asymmetry: float = 0.1
    variegation: float = 0.0
    texture_sd: float = 1.2
    hair: int = 0
    ruler: bool = False
    ink: bool = False
    dark_corner: bool = False
    gel_bubble: int = 0
    cast: str = "none"
    seed: int = 0


@dataclass
class Phantom:
    """A rendered phantom: ``image`` (H, W, 3) uint8, ``mask`` (H, W) bool, ``truth`` dict,
    ``artifact_masks`` name -> (H, W) bool (only artifacts present)."""

    image: np.ndarray
    mask: np.ndarray
    truth: dict
    artifact_masks: dict = field(default_factory=dict)


def _lab_to_rgb8(lab: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # Saturated blue-grey blotches fall outside sRGB; clipping them is intended.
        warnings.filterwarnings("ignore", message=".*negative Z values.*", category=UserWarning)
        rgb = color.lab2rgb(lab)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def _rgb8_to_lab(rgb8: np.ndarray) -> np.ndarray:
    return color.rgb2lab(rgb8.astype(np.float64) / 255.0)


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    n = filters.gaussian(rng.standard_normal(shape), sigma=sigma)
    sd = n.std()
    return n / sd if sd > 0 else n


def _lesion_mask(spec: PhantomSpec, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    s = spec.size
    cy, cx = s / 2 + rng.uniform(-0.06, 0.06) * s, s / 2 + rng.uniform(-0.06, 0.06) * s
    theta = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 9):
        amp = spec.irregularity * rng.uniform(0.02, 0.12) / math.sqrt(k - 1)
        r += amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    stretch = 1.0 + 0.6 * spec.asymmetry
    rot = rng.uniform(0, np.pi)
    R = spec.radius * s
    x = R * r * np.cos(theta) * stretch
    y = R * r * np.sin(theta) / math.sqrt(stretch)
    xr = x * np.cos(rot) - y * np.sin(rot) + cx
    yr = x * np.sin(rot) + y * np.cos(rot) + cy
    rr, cc = draw.polygon(yr, xr, shape=(s, s))
    mask = np.zeros((s, s), dtype=bool)
    mask[rr, cc] = True
    return mask, {"center_y": cy, "center_x": cx}


def _draw_hair(img, rng, n, s):
    m = np.zeros((s, s), dtype=bool)
    for _ in range(n):
        p = rng.uniform(0, s - 1, size=(3, 2))
        rr, cc = draw.bezier_curve(int(p[0, 0]), int(p[0, 1]), int(p[1, 0]), int(p[1, 1]),
                                   int(p[2, 0]), int(p[2, 1]), weight=rng.uniform(0.5, 2.0), shape=(s, s))
        m[rr, cc] = True
    width = max(1, s // 160)
    if width > 1:
        from scipy import ndimage
        m = ndimage.binary_dilation(m, iterations=width - 1)
    img[m] = np.array([38, 28, 22], dtype=np.uint8)
    return m


def _draw_ruler(img, rng, s):
    m = np.zeros((s, s), dtype=bool)
    side = rng.integers(0, 4)
    base = int(0.04 * s)
    step = max(4, s // 28)
    for i, pos in enumerate(range(step, s - step, step)):
        length = int(0.07 * s) if i % 5 == 0 else int(0.04 * s)
        if side in (0, 1):  # top or bottom edge, vertical ticks
            y0 = base if side == 0 else s - 1 - base - length
            rr, cc = draw.rectangle((y0, pos), extent=(length, max(1, s // 224)), shape=(s, s))
        else:
            x0 = base if side == 2 else s - 1 - base - length
            rr, cc = draw.rectangle((pos, x0), extent=(max(1, s // 224), length), shape=(s, s))
        m[rr, cc] = True
    img[m] = np.array([20, 20, 24], dtype=np.uint8)
    return m


def _draw_ink(img, lesion_mask, rng, s):
    from scipy import ndimage
    m = np.zeros((s, s), dtype=bool)
    ring = ndimage.binary_dilation(lesion_mask, iterations=max(3, s // 20)) & ~ndimage.binary_dilation(
        lesion_mask, iterations=max(2, s // 30))
    ys, xs = np.nonzero(ring)
    if len(ys) == 0:
        return m
    for _ in range(4):
        k = rng.integers(len(ys))
        rr, cc = draw.disk((ys[k], xs[k]), radius=max(2, s // 45), shape=(s, s))
        m[rr, cc] = True
    img[m] = np.array([98, 48, 160], dtype=np.uint8)  # violet surgical marker
    return m


def _vignette(img, s, rng):
    yy, xx = np.mgrid[0:s, 0:s]
    d = np.hypot(yy - (s - 1) / 2, xx - (s - 1) / 2) / (s / 2)
    r0 = rng.uniform(1.0, 1.12)
    fade = np.clip((d - r0) / 0.06, 0, 1)
    out = (img.astype(float) * (1 - fade[..., None])).round().astype(np.uint8)
    img[:] = out
    return fade > 0.5


def _bubbles(img, lesion_mask, rng, n, s):
    m = np.zeros((s, s), dtype=bool)
    for _ in range(n):
        r = rng.uniform(0.03, 0.07) * s
        cy, cx = rng.uniform(r, s - r, size=2)
        rr, cc = draw.circle_perimeter(int(cy), int(cx), int(r), shape=(s, s))
        ring = np.zeros((s, s), dtype=bool)
        ring[rr, cc] = True
        from scipy import ndimage
        ring = ndimage.binary_dilation(ring)
        img[ring] = np.clip(img[ring].astype(int) + 70, 0, 255).astype(np.uint8)
        hr, hc = draw.disk((cy - r * 0.4, cx - r * 0.4), radius=max(1.5, r * 0.2), shape=(s, s))
        # A neutral specular highlight, bright but below clipping even under the strongest
        # cast in CASTS (228 -> linear 0.77; x 1.18 < 1), so a cast stays identifiable from it.
        img[hr, hc] = SPECULAR_LEVEL
        m |= ring
        m[hr, hc] = True
    return m


def _apply_cast(img: np.ndarray, cast: str) -> np.ndarray:
    gains = np.asarray(CASTS[cast], dtype=float)
    v = img / 255.0
    rgb_lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)  # sRGB -> linear light
    rgb_lin = np.clip(rgb_lin * gains, 0, 1)
    srgb = np.where(rgb_lin <= 0.0031308, 12.92 * rgb_lin, 1.055 * rgb_lin ** (1 / 2.4) - 0.055)
    return np.clip(np.round(srgb * 255), 0, 255).astype(np.uint8)


def make_phantom(spec: PhantomSpec) -> Phantom:
    """Render one phantom from its spec. Deterministic in ``spec.seed``."""
    if spec.size < 64:
        raise ConfigError(f"the phantom size must be at least 64 px; got {spec.size}")
    if spec.cast not in CASTS:
        raise ConfigError(f"unknown cast {spec.cast!r}; choose from {', '.join(CASTS)}")
    rng = np.random.default_rng(spec.seed)
    s = spec.size
    skin_rgb = _lab_to_rgb8(np.array([[[spec.skin_L, spec.skin_a, spec.skin_b]]]))
    skin_lab = _rgb8_to_lab(skin_rgb)[0, 0]  # what the pixels really hold after 8-bit rounding
    lab = np.empty((s, s, 3))
    lab[...] = skin_lab
    lab[..., 0] += spec.texture_sd * _smooth_noise(rng, (s, s), 2.0)
    lab[..., 1] += 0.5 * spec.texture_sd * _smooth_noise(rng, (s, s), 3.0)
    mask, geo = _lesion_mask(spec, rng)
    lesion_L = float(np.clip(skin_lab[0] + spec.lesion_dL, 5, 95))
    les = np.array([lesion_L, spec.lesion_a, spec.lesion_b])
    # Soft radial shading: darker centre, as in pigmented lesions.
    from scipy import ndimage
    dist = ndimage.distance_transform_edt(mask)
    depth = dist / dist.max() if dist.max() > 0 else dist
    lesion_lab = np.empty((s, s, 3))
    lesion_lab[...] = les
    lesion_lab[..., 0] -= 6.0 * depth
    if spec.variegation > 0:
        blot = _smooth_noise(rng, (s, s), s / 25)
        dark = blot > 0.6
        blue = blot < -0.9
        lesion_lab[..., 0] -= spec.variegation * 18 * dark
        lesion_lab[..., 1] -= spec.variegation * 10 * blue
        lesion_lab[..., 2] -= spec.variegation * 30 * blue
    lesion_lab[..., 0] += 1.5 * _smooth_noise(rng, (s, s), 1.5)
    lab[mask] = lesion_lab[mask]
    img = _lab_to_rgb8(lab)
    artifact_masks: dict[str, np.ndarray] = {}
    if spec.dark_corner:
        artifact_masks["dark_corner"] = _vignette(img, s, rng)
    if spec.gel_bubble:
        artifact_masks["gel_bubble"] = _bubbles(img, mask, rng, spec.gel_bubble, s)
    if spec.ink:
        artifact_masks["ink"] = _draw_ink(img, mask, rng, s)
    if spec.ruler:
        artifact_masks["ruler"] = _draw_ruler(img, rng, s)
    if spec.hair:
        artifact_masks["hair"] = _draw_hair(img, rng, spec.hair, s)
    if spec.cast != "none":
        img = _apply_cast(img, spec.cast)
    truth = {
        "skin_L": float(skin_lab[0]), "skin_a": float(skin_lab[1]), "skin_b": float(skin_lab[2]),
        "ita_true": float(ita_degrees(skin_lab[0], skin_lab[2])),
        "lesion_L": lesion_L, "lesion_area_frac": float(mask.mean()),
        "irregularity": spec.irregularity, "asymmetry": spec.asymmetry, "variegation": spec.variegation,
        "cast": spec.cast, "seed": spec.seed,
        **{a: bool(a in artifact_masks) for a in ARTIFACTS},
        "hair_strands": int(spec.hair), "gel_bubbles": int(spec.gel_bubble),
        **{k: float(v) for k, v in geo.items()},
    }
    return Phantom(image=img, mask=mask, truth=truth, artifact_masks=artifact_masks)


def _sample_spec(i: int, rng: np.random.Generator, *, size: int, artifact_rate: float, cast_rate: float,
                 malignant: bool, seed: int) -> PhantomSpec:
    # Skin tones spread over the whole ITA range (very light to dark); L* and b* drawn as
    # in published skin colorimetry (L* 30-75, b* 8-24).
    L = float(rng.uniform(32, 75))
    b = float(rng.uniform(9, 22))
    a = float(rng.uniform(8, 15))
    art = lambda: bool(rng.random() < artifact_rate)  # noqa: E731
    return PhantomSpec(
        size=size, skin_L=L, skin_a=a, skin_b=b,
        lesion_dL=float(rng.uniform(-34, -18) if malignant else rng.uniform(-26, -12)),
        lesion_a=float(rng.uniform(10, 20)), lesion_b=float(rng.uniform(12, 26)),
        radius=float(rng.uniform(0.18, 0.3) if malignant else rng.uniform(0.12, 0.24)),
        irregularity=float(rng.uniform(0.5, 1.0) if malignant else rng.uniform(0.0, 0.45)),
        asymmetry=float(rng.uniform(0.3, 1.0) if malignant else rng.uniform(0.0, 0.4)),
        variegation=float(rng.uniform(0.5, 1.0) if malignant else rng.uniform(0.0, 0.3)),
        hair=int(rng.integers(3, 10)) if art() else 0,
        ruler=art(), ink=bool(rng.random() < artifact_rate / 2), dark_corner=art(),
        gel_bubble=int(rng.integers(1, 4)) if art() else 0,
        cast=str(rng.choice(["blue", "warm"])) if rng.random() < cast_rate else "none",
        seed=int(seed * 100_003 + i),
    )


def generate_phantoms(out_dir, n: int = 60, *, seed: int = 0, size: int = 224, prevalence: float = 0.3,
                      artifact_rate: float = 0.25, cast_rate: float = 0.0, progress=None):
    """Write ``n`` phantoms as a ``manifest`` dataset and return it (an :class:`AuditDataset`).

    Files: ``images/<id>.png`` (lossless), ``masks/<id>_segmentation.png`` (0/255),
    ``manifest.csv`` (``image_id,image_path,label,mask_path`` plus every truth column:
    ``skin_L, skin_b, ita_true``, one boolean per artifact, ``cast``, lesion shape).
    Malignant phantoms (``prevalence``) are larger, more irregular, asymmetric and
    variegated, so a small model can learn the task.
    """
    from .data import load_manifest

    if n < 2:
        raise ConfigError(f"the number of phantoms must be at least 2; got {n}")
    if not 0 < prevalence < 1:
        raise ConfigError(f"prevalence must be in (0, 1); got {prevalence}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_pos = max(1, int(round(n * prevalence)))
    labels = np.array([1] * n_pos + [0] * (n - n_pos))
    rng.shuffle(labels)
    rows = []
    iterator = range(n) if progress is None else progress(range(n), total=n, desc="phantoms")
    for i in iterator:
        spec = _sample_spec(i, rng, size=size, artifact_rate=artifact_rate, cast_rate=cast_rate,
                            malignant=bool(labels[i]), seed=seed)
        ph = make_phantom(spec)
        image_id = f"PH_{seed:03d}_{i:05d}"
        Image.fromarray(ph.image).save(out / "images" / f"{image_id}.png")
        Image.fromarray(ph.mask.astype(np.uint8) * 255).save(out / "masks" / f"{image_id}_segmentation.png")
        rows.append({"image_id": image_id, "image_path": f"images/{image_id}.png", "label": int(labels[i]),
                     "mask_path": f"masks/{image_id}_segmentation.png", **ph.truth})
    manifest = out / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return load_manifest(manifest, name=f"phantoms (seed {seed})")
