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
4. A planted shortcut (``--only shortcut`` runs just this and merges it into the JSON): a small
   CNN trained on phantoms where a ruler means benign, and a control; does the taxonomy call
   their false negatives on ruler phantoms artifact distraction?
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
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


def _shortcut_phantoms(n: int, *, ruler_if_benign: float, ruler_if_malignant: float, seed: int, size: int = 96):
    from skinaudit.phantoms import PhantomSpec, make_phantom

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mal = bool(rng.random() < 0.4)
        ruler = bool(rng.random() < (ruler_if_malignant if mal else ruler_if_benign))
        spec = PhantomSpec(size=size, skin_L=float(rng.uniform(45, 72)), skin_b=float(rng.uniform(10, 20)),
                           lesion_dL=float(rng.uniform(-30, -14)),
                           radius=float(rng.uniform(0.16, 0.28) if mal else rng.uniform(0.12, 0.24)),
                           irregularity=float(rng.uniform(0.3, 1.0) if mal else rng.uniform(0.0, 0.7)),
                           variegation=float(rng.uniform(0.2, 1.0) if mal else rng.uniform(0.0, 0.6)),
                           ruler=ruler, seed=seed * 10_000 + i)
        out.append((make_phantom(spec), int(mal), ruler))
    return out


def _train_small_cnn(data, *, epochs: int, seed: int):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 1))
    pre = Preprocess(size=data[0][0].image.shape[0])
    x = torch.from_numpy(pre([ph.image for ph, _, _ in data]))
    y = torch.tensor([lab for _, lab, _ in data], dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(32):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[idx])[:, 0], y[idx])
            loss.backward()
            opt.step()
    return TorchModel(net.eval(), preprocess=pre, name="small CNN")


def bench_shortcut(n_train: int, n_test: int, epochs: int) -> dict:
    """A planted shortcut: does the taxonomy find it? Rulers on most benign training phantoms
    (and few malignant ones) teach a small CNN that a ruler means benign; a control model
    is trained on phantoms whose rulers are independent of the label. On test phantoms with
    rulers on half the malignant cases, each model's false negatives are classified from
    its Grad-CAM++ maps (targets "malignant" and "predicted") and the exact artifact masks."""
    test = _shortcut_phantoms(n_test, ruler_if_benign=0.5, ruler_if_malignant=0.5, seed=99)
    result = {"n_train": n_train, "n_test": n_test, "epochs": epochs, "size_px": test[0][0].image.shape[0],
              "target_layer": "6 (the last ReLU)"}
    for name, (rb, rm) in {"shortcut": (0.8, 0.1), "control": (0.4, 0.4)}.items():
        train = _shortcut_phantoms(n_train, ruler_if_benign=rb, ruler_if_malignant=rm, seed=1 if name == "shortcut" else 2)
        t = time.perf_counter()
        model = _train_small_cnn(train, epochs=epochs, seed=0)
        train_s = time.perf_counter() - t
        imgs = [ph.image for ph, _, _ in test]
        y = np.array([lab for _, lab, _ in test])
        ruler = np.array([r for _, _, r in test])
        p = model.predict_proba(imgs)
        fn = np.flatnonzero((y == 1) & (p < 0.5))
        entry = {"train_seconds": train_s, "recall_with_ruler": float((p[(y == 1) & ruler] >= 0.5).mean()),
                 "recall_without_ruler": float((p[(y == 1) & ~ruler] >= 0.5).mean()),
                 "specificity": float((p[y == 0] < 0.5).mean()), "n_fn": int(len(fn)),
                 "n_fn_with_ruler": int(ruler[fn].sum())}
        for target in ("malignant", "predicted"):
            cams = compute_cams(model, [imgs[k] for k in fn], target_layer="6", target=target, batch_size=16)
            feats = failure_features([f"t{k}" for k in fn], [imgs[k] for k in fn], [test[k][0].mask for k in fn],
                                     cams=cams, artifact_masks=[test[k][0].artifact_masks for k in fn],
                                     ita=[float(test[k][0].truth["ita_true"]) for k in fn])
            modes = classify_failures(feats)
            with_r = ruler[fn]
            entry[f"modes_target_{target}"] = {
                "fn_with_ruler": modes["mode"][with_r].value_counts().to_dict(),
                "fn_without_ruler": modes["mode"][~with_r].value_counts().to_dict(),
                "artifact_distraction_share_with_ruler": float((modes["mode"][with_r] == "artifact_distraction").mean())
                if with_r.any() else None}
        result[name] = entry
    return result


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-cam", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-rss", type=int, default=1000)
    ap.add_argument("--n-feat", type=int, default=30)
    ap.add_argument("--only", choices=["shortcut"], default=None,
                    help="run one section and merge it into the existing JSON")
    ap.add_argument("--shortcut-train", type=int, default=400)
    ap.add_argument("--shortcut-test", type=int, default=300)
    ap.add_argument("--shortcut-epochs", type=int, default=12)
    args = ap.parse_args(argv)
    out_path = OUT / "bench_explain.json"
    if args.only == "shortcut":
        result = json.loads(out_path.read_text()) if out_path.exists() else {}
        result["planted_shortcut"] = bench_shortcut(args.shortcut_train, args.shortcut_test, args.shortcut_epochs)
        result["planted_shortcut"]["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        OUT.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2))
        print(json.dumps(result["planted_shortcut"], indent=2))
        return
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": platform.machine(),
              "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "note": "shared 2-core machine; timings are noisy, compare ratios measured in the same run"}
    result["cam_speed"] = bench_speed(args.n_cam, args.repeats)
    result["rss"] = bench_rss(args.n_rss)
    result["failure_features"] = bench_features(args.n_feat)
    result["planted_shortcut"] = bench_shortcut(args.shortcut_train, args.shortcut_test, args.shortcut_epochs)
    OUT.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
