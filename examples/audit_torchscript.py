"""Audit a TorchScript model file, as a user with an exported model would.

    python examples/audit_torchscript.py --out /tmp/ts-audit [--model model.pt --image-size 299]

Without --model, a small random-initialised ResNet18 is exported to TorchScript first (nothing
is downloaded), so the example runs anywhere; its scores are meaningless, the mechanics are not.
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import skinaudit as sa


def export_demo_model(path: Path) -> Path:
    import torch

    torch.manual_seed(0)
    net = sa.build_torchvision_model("resnet18", num_outputs=1).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates jit.script; still supported
        torch.jit.save(torch.jit.script(net), str(path))
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default=None, help="a TorchScript file (default: export a demo ResNet18)")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--n", type=int, default=24)
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model) if args.model else export_demo_model(out / "demo_resnet18.pt")
    model = sa.load_model(model_path, image_size=args.image_size)
    ds = sa.generate_phantoms(out / "phantoms", n=args.n, seed=2)
    result = sa.run_audit(model, ds, sa.AuditConfig(threshold=0.5, batch_size=8))
    sa.write_audit(result, out / "audit")  # replaced as a whole: the inputs stay beside it
    print(result.model["name"], result.model["sha256"][:12], result.overall["n"], "images audited")
    return result


if __name__ == "__main__":
    main()
