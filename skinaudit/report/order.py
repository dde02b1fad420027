"""Presentation order of the result's objects.

``audit.json`` stores every object with sorted keys (byte-stable files), so a result read back
from disk has lost the order in which the stages produced each object's members, the order a
reader expects (``n`` before ``auc``; ``light`` before ``dark`` in Table 7). The report puts each
object into :data:`KEY_ORDER`'s order before rendering, whether the result comes from memory or
from disk, so ``skinaudit report --from`` renders a saved audit exactly as the audit did.

``KEY_ORDER`` (the data file ``key_order.json``) maps (the parent key, the object's sorted keys)
to the order shown. An object whose
key set is not listed takes the order of the smallest listed key set of the same parent that
holds all its keys (a section written without one of its optional parts), else sorted order.
Keys are sorted before any of this, in memory as on disk, so the two always render the same. ``tests/golden/key_order.py`` regenerates the table from
the golden audits after a stage adds or reorders keys.
"""
from __future__ import annotations

import dataclasses
import json

__all__ = ["KEY_ORDER", "in_order", "presented"]

def _load() -> dict[tuple[str, tuple[str, ...]], tuple[str, ...]]:
    from importlib.resources import files

    rows = json.loads(files(__package__).joinpath("key_order.json").read_text(encoding="utf-8"))
    return {(parent, tuple(sorted(order))): tuple(order) for parent, order in rows}


#: (parent key, sorted key set) -> the order shown; generated into ``key_order.json`` by
#: ``tests/golden/key_order.py`` from the golden audits.
KEY_ORDER = _load()


def _table8(keys: list, reference: str | None):
    """Columns of the paper's Table 8 (:func:`skinaudit.metrics.paper_table`): metric, all, the
    reference group, the other groups, gap, significant_paper_rule."""
    fixed = ("metric", "all", "gap", "significant_paper_rule")
    if not set(fixed) <= set(keys) or reference not in keys:
        return None
    others = sorted(k for k in keys if k not in fixed and k != reference)
    return ["metric", "all", reference, *others, "gap", "significant_paper_rule"]


def _by_parent() -> dict:
    found: dict[str, list] = {}
    for (parent, keys), order in KEY_ORDER.items():
        found.setdefault(parent, []).append((len(keys), set(keys), order))
    return {parent: sorted(v, key=lambda t: (t[0], t[2])) for parent, v in found.items()}


_BY_PARENT = _by_parent()


def _listed_order(parent: str, keys: list) -> list | None:
    exact = KEY_ORDER.get((parent, tuple(keys)))
    if exact is not None:
        return list(exact)
    for _, known, order in _BY_PARENT.get(parent, ()):
        if set(keys) <= known:
            return [k for k in order if k in set(keys)]
    return None


def in_order(obj, parent: str = "", *, reference: str | None = None):
    """``obj`` with every nested object's keys in presentation order (lists keep their order);
    ``reference`` is the fairness reference group (it leads the groups of Table 8)."""
    if isinstance(obj, dict):
        keys = sorted(str(k) for k in obj)  # as audit.json has them: memory and disk render alike
        order = (_table8(keys, reference) if parent == "table8" else None) \
            or _listed_order(parent, keys) or keys
        by_name = {str(k): v for k, v in obj.items()}
        return {k: in_order(by_name[k], k, reference=reference) for k in order}
    if isinstance(obj, list):
        return [in_order(v, parent, reference=reference) for v in obj]
    return obj


def presented(result):
    """A copy of ``result`` (an :class:`~skinaudit.result.AuditResult`) whose sections, model and
    dataset descriptions are in presentation order."""
    from .._jsonsafe import json_safe
    from ..result import Section

    fairness = result.section("fairness")
    reference = fairness.get("reference") if fairness is not None else None
    sections = {name: Section.from_dict(name, in_order(json_safe(result.section(name).to_dict()), name,
                                                       reference=reference))
                for name in result.sections}
    return dataclasses.replace(result, sections=sections, model=in_order(json_safe(result.model or {}), "model"),
                               dataset=in_order(json_safe(result.dataset or {}), "dataset"))
