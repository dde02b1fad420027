"""Golden outputs: the audits whose bytes a refactor must not change.

Two audits are produced and every text output is hashed:

* ``demo``: the offline demo (phantoms, the small CNN or the colour model, full report);
* ``isic200``: the first 200 ISIC 2018 Task 3 test images (real data) audited from a seeded
  scores CSV (no model code involved, so the hashes test the audit itself).

Absolute paths that depend on where the audit ran (the output folder, the data folder) are
replaced by placeholders before hashing, so the hashes hold on any checkout. Run as a script
to print the hashes: ``python tests/golden/outputs.py [--write]``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HASHES = HERE / "hashes.json"
#: files hashed in each audit folder (figures are embedded in report.html as data URIs)
SUFFIXES = (".json", ".csv", ".html")
#: a fixed cover date, so report.html is reproducible
EPOCH = "1767225600"  # 2026-01-01


def _normalised(path: Path, roots: dict) -> bytes:
    text = path.read_text(encoding="utf-8")
    for placeholder, root in roots.items():
        text = text.replace(str(root), placeholder)
    return text.encode("utf-8")


def hash_folder(folder: Path, roots: dict) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(_normalised(p, roots)).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in SUFFIXES
            and "phantoms" not in p.relative_to(folder).parts}


def demo_outputs(out: Path) -> dict:
    from skinaudit.demo import run_demo

    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    run_demo(out, pdf=False)
    return hash_folder(out, {"<OUT>": out})


def isic200_outputs(out: Path, data_root: Path) -> dict:
    import numpy as np
    import pandas as pd

    import skinaudit as sa

    os.environ["SOURCE_DATE_EPOCH"] = EPOCH
    folder = data_root / "isic2018-task3-test-224"
    ds = sa.load_isic(folder / "images", folder / "ISIC2018_Task3_Test_GroundTruth.csv")
    ds = ds.subset(sorted(ds.ids)[:200])
    rng = np.random.default_rng(2018)
    y = ds.labels.astype(float)
    scores = 1.0 / (1.0 + np.exp(-(1.6 * y - 0.9 + rng.normal(0.0, 1.1, len(y)))))
    csv = out.parent / "isic200_scores.csv"
    pd.DataFrame({"image_id": ds.ids, "score": np.round(scores, 6)}).to_csv(csv, index=False)
    model = sa.PrecomputedScores.from_csv(csv)
    result = sa.run_audit(model, ds, sa.AuditConfig(threshold=0.4, seed=3))
    sa.write_audit(result, out, pdf=False)
    return hash_folder(out, {"<OUT>": out, "<TMP>": out.parent, "<DATA>": data_root.resolve()})


def main(argv):
    import tempfile

    sys.path.insert(0, str(HERE.parents[1]))
    data_root = Path(os.environ.get("SKINAUDIT_DATA", HERE.parents[2] / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        got = {"demo": demo_outputs(Path(tmp) / "demo"),
               "isic200": isic200_outputs(Path(tmp) / "isic200", data_root)}
    text = json.dumps(got, indent=2, sort_keys=True) + "\n"
    if "--write" in argv:
        HASHES.write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
