"""Regenerate ``skinaudit/key_order.json`` (the report's ``KEY_ORDER``) from the golden audits.

``audit.json`` stores objects with sorted keys; the report shows each object's members in the
order the stages produce them. This script records that order for every object of two or more
keys of the golden audits (demo and ISIC 200), keyed by the name of the object's parent and
its key set, and writes the table. Run after a stage adds or reorders keys:
``python tests/golden/key_order.py``.
"""
from __future__ import annotations

import os
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def collect(obj, parent: str, table: dict, conflicts: list) -> None:
    if isinstance(obj, dict):
        keys = tuple(str(k) for k in obj)
        if len(keys) > 1:
            key = (parent, tuple(sorted(keys)))
            if table.setdefault(key, keys) != keys:
                conflicts.append((key, table[key], keys))
        for k, v in obj.items():
            collect(v, str(k), table, conflicts)
    elif isinstance(obj, list):
        for v in obj:
            collect(v, parent, table, conflicts)


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1]))
    sys.path.insert(0, str(HERE.parent))
    import golden.outputs as g
    from skinaudit._jsonsafe import json_safe

    captured = []
    import skinaudit.result as R

    original = R.AuditResult.write_files

    def spy(self, folder):
        captured.append(self)
        return original(self, folder)

    R.AuditResult.write_files = spy
    data_root = Path(os.environ.get("SKINAUDIT_DATA", HERE.parents[2] / "shared" / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        g.demo_outputs(Path(tmp) / "demo")
        g.isic200_outputs(Path(tmp) / "isic", data_root)
    table, conflicts = {}, []
    for res in captured:
        for name, sec in res.sections.items():
            collect(json_safe(sec.data), name, table, conflicts)
        collect(json_safe(res.model), "model", table, conflicts)
        collect(json_safe(res.dataset), "dataset", table, conflicts)
    for c in conflicts:
        print("# CONFLICT", c, file=sys.stderr)
    rows = [[parent, list(order)] for (parent, _), order in sorted(table.items())]
    target = HERE.parents[1] / "skinaudit" / "key_order.json"
    target.write_text("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n", encoding="utf-8")
    print(f"wrote {len(rows)} orders to {target}")


if __name__ == "__main__":
    main()
