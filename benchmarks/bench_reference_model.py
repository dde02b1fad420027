"""Throughput of the reference model on real images: decoding, training, inference, ensemble + TTA.

    python benchmarks/bench_reference_model.py --config cpu-small --n 64 --threads 1 \
        --out benchmarks/results/bench_reference_model.json

Reads ``../shared/data/ham10000-224`` (or ``--images/--labels``). Writes one JSON with images/s
for each stage, the device, thread count and the load average at the start (on a shared machine
the numbers move with the load: read them with it). On a GPU pass ``--device cuda``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SKINAUDIT_DATA", REPO.parent / "shared" / "data")) / "ham10000-224"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="cpu-small")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--n", type=int, default=64, help="images (stratified subset)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=Path, default=DATA / "images")
    ap.add_argument("--labels", type=Path, default=DATA / "HAM10000_metadata.csv")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_reference_model.json")
    args = ap.parse_args(argv)

    import torch

    from skinaudit.data import load_isic

    from reference_model import TTAEnsemble, get_config
    from reference_model import train as T
    from reference_model.data import ImageTensorDataset, load_images, normalize, training_transform
    from reference_model.pipeline import limit_dataset, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    cfg = get_config(args.config, image_size=args.image_size)
    ds = limit_dataset(load_isic(args.images, args.labels), args.n, random_state=0)
    load0 = os.getloadavg()[0]
    res = {"config": cfg.name, "arch": cfg.arch, "image_size": cfg.image_size, "n": len(ds), "device": device,
           "threads": torch.get_num_threads(), "loadavg_1min_at_start": load0, "python": platform.python_version(),
           "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if cuda else None}

    t = time.perf_counter()
    images = load_images(ds.image_paths, size=cfg.image_size)
    res["decode_images_per_s"] = len(ds) / (time.perf_counter() - t)

    T.seed_everything(0)
    model = T.build_model(cfg.replace(pretrained=False)).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    train = ImageTensorDataset(images, ds.labels, training_transform(cfg))
    loader = T.make_loader(train, batch_size=cfg.batch_size, shuffle=True, pin_memory=cuda)
    opt = T.build_optimizer(model, cfg)
    loss = T.build_loss(cfg, ds.labels, device=device)
    T.train_one_epoch(model, loader, loss, opt, device=device, amp=cuda, channels_last=cuda)  # warm-up
    res["train"] = T.train_one_epoch(model, loader, loss, opt, device=device, amp=cuda, channels_last=cuda)

    plain = T.make_loader(ImageTensorDataset(images, ds.labels), batch_size=64, shuffle=False, pin_memory=cuda)
    res["inference_images_per_s"] = T.evaluate(model, plain, device=device, amp=cuda,
                                               channels_last=cuda)["images_per_s"]
    ens = TTAEnsemble([model.eval()] * 3, tta=cfg.tta).to(device)
    x = normalize(images).to(device)
    with torch.no_grad():
        ens(x[:8])
        t = time.perf_counter()
        for i in range(0, len(x), 64):
            ens(x[i:i + 64])
        if cuda:
            torch.cuda.synchronize()
    res["ensemble3_tta_images_per_s"] = len(x) / (time.perf_counter() - t)
    res["ensemble"] = f"3 models x {len(cfg.tta)} TTA views"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
