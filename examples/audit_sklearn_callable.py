"""Audit a non-torch classifier (scikit-learn on colour features) through a plain callable.

    python examples/audit_sklearn_callable.py --out /tmp/sk-audit [--n 80]

Offline: the data are phantoms generated on the spot (under OUT/phantoms; the audit goes to
OUT/audit, a folder skinaudit replaces as a whole, so inputs never live inside it). To audit real data, swap the dataset
for ``skinaudit.load_isic(images_dir, labels_csv)`` or another loader.
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import skinaudit as sa
from skinaudit.demo import colour_features


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=80)
    args = ap.parse_args(argv)

    ds = sa.generate_phantoms(f"{args.out}/phantoms", n=args.n, seed=1)
    train, test = ds.subset(ds.ids[: args.n // 2]), ds.subset(ds.ids[args.n // 2:])

    X = np.stack([colour_features(sa.read_image(p)) for p in train.image_paths])
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, train.labels)

    def forest_model(images):  # images: list of (H, W, 3) uint8 -> P(malignant)
        return forest.predict_proba(np.stack([colour_features(im) for im in images]))[:, 1]

    result = sa.run_audit(sa.CallableModel(forest_model, name="random forest on colour features"), test,
                          sa.AuditConfig(threshold=0.5))
    sa.write_audit(result, f"{args.out}/audit")
    print({k: result.overall[k] for k in ("n", "auc", "recall", "precision", "fn", "fp")})
    return result


if __name__ == "__main__":
    main()
