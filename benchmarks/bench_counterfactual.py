"""The counterfactual skin-tone test (#17): known answers, seam, speed and models.

Usage::

    python benchmarks/bench_counterfactual.py [--reference-model runs/cpu-small/model_state.pt]

writes ``benchmarks/results/counterfactual.json``. Parts:

- ``phantoms``: 30 phantoms (skin L* 45-80, b* 6-22, 0-3 hairs, a ruler in 6) recoloured to the
  five default levels and measured with skinaudit's own estimator (``ita_correction="none"``,
  the given mask, the original's artifact masks): |measured - target| and whether every lesion
  pixel is bit-identical.
- ``isic_uda1``: the same on the first 60 isic-uda1 images with human masks, at 256 px, and the
  seam (:func:`skinaudit.counterfactual.seam_energy` at the lesion's edge) of each version
  beside the originals' range (the same measure on the originals).
- ``timing``: :func:`counterfactual_test` with n=200 at 5 levels, a ResNet18 (random weights)
  at 96 px, on isic-uda1 images (the issue's budget: 60 s on 2 cores).
- ``planted``: a model that reads only the skin far from the centre and one that reads only the
  lesion's centre, on 40 isic-uda1 images at 128 px.
- ``reference_model`` (with ``--reference-model``): the reference model's ``cpu-small`` state
  dict (ResNet18, 96 px; ``model_info.json`` beside it gives the threshold) on 200 images.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from skinaudit.counterfactual import DEFAULT_LEVELS, recolour_skin, seam_energy
from skinaudit.counterfactual_stats import _shrink, counterfactual_test
from skinaudit.lesion import detect_artifacts
from skinaudit.phantoms import PhantomSpec, make_phantom
from skinaudit.skintone import ItaParams, estimate_ita

OUT = Path(__file__).resolve().parent / "results"
DATA = Path(os.environ.get("SKINAUDIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
NONE = ItaParams(ita_correction="none")


def _stats(x) -> dict:
    x = np.abs(np.asarray(x, dtype=float))
    x = x[np.isfinite(x)]
    return {"n": int(x.size), "mean": round(float(x.mean()), 3), "median": round(float(np.median(x)), 3),
            "max": round(float(x.max()), 3)}


def _errors(image, mask, rec) -> list[float]:
    art = detect_artifacts(image, lesion_mask=mask)
    return [estimate_ita(out, lesion_mask=mask, artifact_masks=art, params=NONE).ita - ita
            for ita, out in zip(rec.levels, rec.images)]


def phantoms(n=30) -> dict:
    rng = np.random.default_rng(17)
    errors, identical = [], True
    for i in range(n):
        spec = PhantomSpec(size=160, seed=500 + i, skin_L=float(rng.uniform(45, 80)), skin_b=float(rng.uniform(6, 22)),
                           hair=int(i % 4), ruler=i % 5 == 0)
        ph = make_phantom(spec)
        rec = recolour_skin(ph.image, ph.mask)
        errors += _errors(ph.image, ph.mask, rec)
        identical &= all(np.array_equal(out[ph.mask], ph.image[ph.mask]) for out in rec.images)
    return {"images": n, "versions": n * len(DEFAULT_LEVELS), "abs_error_deg": _stats(errors),
            "lesion_bit_identical": bool(identical)}


def uda1():
    from skinaudit.data import load_isic_archive

    root = DATA / "isic-uda1"
    return load_isic_archive(root / "labels.csv", root / "images", masks=root / "masks")


def real_images(ds, n=60) -> dict:
    from skinaudit.errors import DataError
    from skinaudit.imageio import read_image, read_mask

    table = ds.table.set_index("image_id")
    ids = [i for i, m in zip(ds.ids, ds.mask_paths) if m][:n]
    errors, seams, reference, skipped, identical = [], [], [], {}, True
    for iid in ids:
        image = read_image(table.loc[iid, "image_path"])
        image, mask = _shrink(image, read_mask(table.loc[iid, "mask_path"], shape=image.shape[:2]), 256)
        reference.append(seam_energy(image, mask))
        try:
            rec = recolour_skin(image, mask)
        except DataError as exc:
            skipped[iid] = str(exc)
            continue
        errors += _errors(image, mask, rec)
        seams.append([seam_energy(out, rec.zone) for out in rec.images])
        identical &= all(np.array_equal(out[mask], image[mask]) for out in rec.images)
    seams, top = np.asarray(seams), float(np.nanmax(reference))
    return {"images": len(ids), "recoloured": len(seams), "skipped": skipped, "abs_error_deg": _stats(errors),
            "lesion_bit_identical": bool(identical),
            "seam": {"originals_lesion_edge": {"median": round(float(np.nanmedian(reference)), 2),
                                              "p90": round(float(np.nanquantile(reference, 0.9)), 2),
                                              "max": round(top, 2)},
                     "by_level": {f"{lv:g}": {"median": round(float(np.median(seams[:, k])), 2),
                                              "within_originals_max": round(float(np.mean(seams[:, k] <= top)), 3)}
                                  for k, lv in enumerate(DEFAULT_LEVELS)}}}


def _resnet18(size=96):
    import torch
    import torchvision

    from skinaudit.models import Preprocess, TorchModel

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=2).eval()
    return TorchModel(net, preprocess=Preprocess(size=size))


def _summary(res: dict) -> dict:
    keep = ("verdict", "effect", "p_adjusted", "n", "skipped")
    out = {k: res[k] for k in keep if k in res}
    out["skipped"] = len(out.get("skipped", []))
    out["levels"] = [{k: lv[k] for k in ("target_ita", "mean_score", "recall", "fn", "flips")} for lv in res["levels"]]
    return out


def timing(ds, n=200) -> dict:
    import torch

    model = _resnet18()
    t0 = time.perf_counter()
    res = counterfactual_test(model, ds, n=n, n_boot=1000)
    return {"n": n, "levels": len(DEFAULT_LEVELS), "scored": res["n"], "seconds": round(time.perf_counter() - t0, 1),
            "torch_threads": torch.get_num_threads(), "loadavg_1min_at_start": os.getloadavg()[0],
            "budget_seconds": 60}


def _periphery(images):
    from PIL import Image

    out = []
    for im in images:
        a = np.asarray(Image.fromarray(im).resize((128, 128), Image.BILINEAR), dtype=float) / 255
        yy, xx = np.mgrid[:128, :128]
        out.append(1.0 - a[np.hypot(yy - 63.5, xx - 63.5) > 50].mean())
    return np.array(out)


def _centre(images):
    from PIL import Image

    return np.array([1.0 - (np.asarray(Image.fromarray(im).resize((128, 128), Image.BILINEAR), dtype=float)
                            / 255)[56:72, 56:72].mean() for im in images])


def planted(ds) -> dict:
    from skinaudit.models import CallableModel

    ids = [i for i, m in zip(ds.ids, ds.mask_paths) if m][:40]
    sub = ds.subset(ids)
    return {name: _summary(counterfactual_test(CallableModel(fn), sub, n=40, long_side=128, n_boot=1000))
            for name, fn in (("skin_reader", _periphery), ("centre_reader", _centre))}


def reference_model(ds, path: Path, n=200) -> dict:
    from skinaudit.cli import resolve_model_settings
    from skinaudit.models import load_model

    settings = resolve_model_settings(str(path), arch=None, threshold=None, image_size=None)
    model = load_model(path, arch=settings.arch, image_size=settings.image_size)
    t0 = time.perf_counter()
    res = counterfactual_test(model, ds, n=n, threshold=settings.threshold, n_boot=2000)
    return {"model": path.name, "arch": settings.arch, "image_size": settings.image_size,
            "threshold": settings.threshold, "seconds": round(time.perf_counter() - t0, 1), **_summary(res)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference-model", type=Path, help="state dict of the reference model (model_info.json beside)")
    ap.add_argument("--skip", nargs="*", default=(), choices=("phantoms", "real", "timing", "planted"))
    args = ap.parse_args(argv)
    res = {"levels": list(DEFAULT_LEVELS)}
    if "phantoms" not in args.skip:
        res["phantoms"] = phantoms()
    ds = uda1()
    if "real" not in args.skip:
        res["isic_uda1"] = real_images(ds)
    if "timing" not in args.skip:
        res["timing"] = timing(ds)
    if "planted" not in args.skip:
        res["planted"] = planted(ds)
    if args.reference_model:
        res["reference_model"] = reference_model(ds, args.reference_model)
    OUT.mkdir(exist_ok=True)
    target = OUT / "counterfactual.json"
    old = json.loads(target.read_text()) if target.exists() else {}
    old.update(res)
    target.write_text(json.dumps(old, indent=2) + "\n")
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
