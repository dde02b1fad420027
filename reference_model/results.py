"""Results in the paper's table layout (Tables 2, 3 and 4), as CSV and Markdown.

Input rows are the ``metrics.json`` files written by ``python -m reference_model evaluate``
(``{"name": configuration, "metrics": binary_metrics(...)}``). Each table puts our measured
numbers next to the paper's (``PAPER_TABLES``), so a reproduction shows its gap at a glance.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from skinaudit.errors import DataError

from .config import CONFIGS, PAPER_TABLES, TABLE2_CONFIGS, TABLE4_CONFIGS

__all__ = ["load_metrics", "results_table", "write_results", "TABLE_COLUMNS"]

#: Metric columns of each table, in the paper's order.
TABLE_COLUMNS = {
    "table2": ("auc", "recall", "fn", "fp"),
    "table3": ("auc", "recall", "precision", "f1", "accuracy", "specificity", "tp", "fn", "tn", "fp"),
    "table4": ("auc", "recall", "precision", "f1", "fn", "fp"),
}
_ROW_ORDER = {"table2": [c.name for c in TABLE2_CONFIGS], "table4": [c.name for c in TABLE4_CONFIGS]}


def load_metrics(path) -> dict:
    """Read one ``metrics.json`` from ``evaluate``: returns ``{"name": str, "metrics": dict, ...}``."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable metrics.json ({exc})") from None
    if not isinstance(d, dict) or "name" not in d or "metrics" not in d:
        raise DataError(f"{path}: a metrics.json needs the keys 'name' and 'metrics'")
    return d


def results_table(rows, table: str = "table4", *, with_paper: bool = True) -> pd.DataFrame:
    """One of the paper's tables from evaluated runs.

    Parameters
    ----------
    rows : list of dict
        ``{"name": configuration name, "metrics": {auc, recall, ...}}`` (see :func:`load_metrics`).
    table : {"table2", "table3", "table4"}
        Table 2 (backbones: AUC, recall, FN, FP), Table 3 (all test metrics) or Table 4
        (ablation: AUC, recall, precision, F1, FN, FP).
    with_paper : bool
        Add ``paper_<metric>`` columns with the paper's reported values: for Tables 2 and 4
        the row of the same configuration (NaN where the paper has none), for Table 3 the
        paper's full model on every row.

    Returns
    -------
    DataFrame
        ``configuration, description, <metrics>[, paper_<metrics>]``; rows in the paper's
        order for known configurations, then the others in input order. A metric missing
        from a run is NaN.
    """
    if table not in TABLE_COLUMNS:
        raise DataError(f"unknown table {table!r}; choose from {', '.join(TABLE_COLUMNS)}")
    cols = TABLE_COLUMNS[table]
    order = _ROW_ORDER.get(table, [])
    rows = sorted(rows, key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
    paper = PAPER_TABLES[table]
    out = []
    for r in rows:
        m = r["metrics"]
        rec = {"configuration": r["name"],
               "description": CONFIGS[r["name"]].description if r["name"] in CONFIGS else r.get("description", "")}
        for c in cols:
            v = m.get(c)
            rec[c] = np.nan if v is None else v
        if with_paper:
            # Table 3 is the final model's: every row is compared with the paper's full model.
            ref = paper["paper"] if table == "table3" else paper.get(r["name"], {})
            for c in cols:
                rec[f"paper_{c}"] = ref.get(c, np.nan)
        out.append(rec)
    return pd.DataFrame(out, columns=["configuration", "description", *cols,
                                      *([f"paper_{c}" for c in cols] if with_paper else [])])


def _markdown(df: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return "n/a"
            return f"{v:.4f}" if not float(v).is_integer() or abs(v) < 1 else f"{int(v)}"
        return str(v)

    head = "| " + " | ".join(df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def write_results(rows, out_dir, *, tables=("table2", "table3", "table4")) -> list[Path]:
    """Write ``<table>.csv`` and ``<table>.md`` for each table into ``out_dir``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in tables:
        df = results_table(rows, t)
        csv, md = out / f"{t}.csv", out / f"{t}.md"
        df.to_csv(csv, index=False)
        md.write_text(_markdown(df), encoding="utf-8")
        paths += [csv, md]
    return paths
