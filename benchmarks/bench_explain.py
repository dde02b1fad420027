"""Explanation speed, memory flatness and failure-feature cost.

Usage: ``python benchmarks/bench_explain.py [--n-cam 6] [--n-rss 1000] [--n-feat 30] [--repeats 3]``;
writes ``benchmarks/results/bench_explain.json``.

1. Grad-CAM++ seconds per image through :func:`skinaudit.explain.compute_cams` against calling
   pytorch-grad-cam's ``GradCAMPlusPlus`` directly on the same ResNet50 (random init, 299 px,
   ``layer4[-1]``, malignant column of a two-logit head) and the same real images, in the same
   run, interleaved (A, B, A, B...) so that load on the shared machine hits both alike.
   The direct call gets ready-made tensors; ours includes preprocessing from uint8 and the
   resize of each map back to the image's size. Maps are compared too (max abs difference).
2. Resident memory (VmRSS) every 100 images over ``--n-rss`` CAMs of small images with a
   ResNet18 at 48 px, through our API and through the direct loop.
3. Failure-mode features (:func:`skinaudit.failures.failure_features`) per image on isic-uda1
   images with their human masks, and :func:`classify_failures` on them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from skinaudit.explain import compute_cams
from skinaudit.failures import classify_failures, failure_features
from skinaudit.imageio import read_image, read_mask
from skinaudit.models import Preprocess, TorchModel, build_torchvision_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results"


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")  # pragma: no cover - non-Linux


def uda1_cases(n: int):
    ids = sorted(p.name.removesuffix("_segmentation.png") for p in (DATA / "isic-uda1" / "masks").glob("*.png"))[:n]
    imgs = [read_image(DATA / "isic-uda1" / "images" / f"{i}.jpg") for i in ids]
    masks = [read_mask(DATA / "isic-uda1" / "masks" / f"{i}_segmentation.png") for i in ids]
    return ids, imgs, masks


def bench_speed(n: int, repeats: int) -> dict:
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    net = build_torchvision_model("resnet50", num_outputs=2).eval()
    model = TorchModel(net, preprocess=Preprocess(size=299))
    _, imgs, _ = uda1_cases(n)
    x = torch.from_numpy(model.preprocess(imgs))
    direct = GradCAMPlusPlus(model=net, target_layers=[net.layer4[-1]])

    def run_direct():
        return [direct(x[i:i + 1], [ClassifierOutputTarget(1)])[0] for i in range(n)]

    compute_cams(model, imgs[:1])                   # warm-up (imports, allocator)
    run_direct()
    times = {"ours_batch1": [], "ours_batch4": [], "direct": []}
    for _ in range(repeats):
        for key in times:
            t = time.perf_counter()
            if key == "direct":
                maps_direct = run_direct()
            else:
                maps_ours = compute_cams(model, imgs, batch_size=1 if key == "ours_batch1" else 4)
            times[key].append((time.perf_counter() - t) / n)
    direct.activations_and_grads.release()
    import cv2

    diff = max(float(np.abs(o - np.clip(cv2.resize(d, (o.shape[1], o.shape[0])), 0, 1)).max())
               for o, d in zip(maps_ours, maps_direct))
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"model": "resnet50 (random init), 299 px, layer4[-1], ClassifierOutputTarget(1)", "n_images": n,
            "image_source": "isic-uda1 (first ids with masks, ~600x450, resized by the model's preprocessing)",
            "seconds_per_image_runs": times, "seconds_per_image_median": med,
            "ratio_ours_batch1_over_direct": med["ours_batch1"] / med["direct"],
            "ratio_ours_batch4_over_direct": med["ours_batch4"] / med["direct"],
            "max_abs_map_difference_after_resize": diff}


def bench_rss(n: int) -> dict:
    from pytorch_grad_cam import GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    net = build_torchvision_model("resnet18", num_outputs=1).eval()
    model = TorchModel(net, preprocess=Preprocess(size=48))
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(100)]
    out = {}
    for how in ("ours", "direct"):
        samples = [rss_mib()]
        t = time.perf_counter()
        if how == "direct":
            cam = GradCAMPlusPlus(model=net, target_layers=[net.layer4[-1]])
        for done in range(0, n, 100):
            if how == "ours":
                compute_cams(model, imgs, batch_size=8)
            else:
                x = torch.from_numpy(model.preprocess(imgs))
                for s in range(0, 100, 8):
                    cam(x[s:s + 8], [ClassifierOutputTarget(0)] * len(x[s:s + 8]))
            samples.append(rss_mib())
        if how == "direct":
            cam.activations_and_grads.release()
        after_first = samples[1:]
        out[how] = {"rss_mib_every_100": [round(v, 1) for v in samples],
                    "growth_after_first_100_mib": round(after_first[-1] - after_first[0], 1),
                    "slope_mib_per_1000_after_first_100": round(float(np.polyfit(np.arange(len(after_first)) * 100,
                                                                                 after_first, 1)[0] * 1000), 2),
                    "seconds_per_image": (time.perf_counter() - t) / n}
    return {"model": "resnet18 (random init), 48 px, one logit, batch 8", "n_images": n, **out}


def bench_features(n: int) -> dict:
    ids, imgs, masks = uda1_cases(n)
    rng = np.random.default_rng(0)
    from scipy import ndimage

    cams = []
    for m in masks:                                # smooth maps, half on the lesion, half random
        noise = ndimage.gaussian_filter(rng.random(m.shape), 25)
        cams.append(0.5 * ndimage.gaussian_filter(m.astype(float), 15) + noise / noise.max() * 0.5)
    arts = []
    for m in masks:                                # a ruler-like band along the top edge
        a = np.zeros_like(m)
        a[5:15, :] = True
        arts.append({"ruler": a})
    t = time.perf_counter()
    feats = failure_features(ids, imgs, masks, cams=cams, artifact_masks=arts, ita=[40.0] * n)
    t_feat = (time.perf_counter() - t) / n
    t = time.perf_counter()
    modes = classify_failures(feats)
    t_cls = (time.perf_counter() - t) / n
    return {"n_images": n, "image_sizes": sorted({f"{im.shape[1]}x{im.shape[0]}" for im in imgs}),
            "seconds_per_image_features": t_feat, "seconds_per_image_classify": t_cls,
            "modes_of_this_synthetic_setup": modes["mode"].value_counts().to_dict()}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-cam", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-rss", type=int, default=1000)
    ap.add_argument("--n-feat", type=int, default=30)
    args = ap.parse_args(argv)
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.machine(),
              "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "note": "shared 2-core machine; timings are noisy, compare ratios measured in the same run"}
    result["cam_speed"] = bench_speed(args.n_cam, args.repeats)
    result["rss"] = bench_rss(args.n_rss)
    result["failure_features"] = bench_features(args.n_feat)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_explain.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
