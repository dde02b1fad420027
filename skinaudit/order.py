"""Presentation order of the result's objects.

``audit.json`` stores every object with sorted keys (byte-stable files), so a result read back
from disk has lost the order in which the stages produced each object's members, the order a
reader expects (``n`` before ``auc``; ``light`` before ``dark`` in Table 7). The report puts each
object into :data:`KEY_ORDER`'s order before rendering, whether the result comes from memory or
from disk, so ``skinaudit report --from`` renders a saved audit exactly as the audit did.

``KEY_ORDER`` (the data file ``key_order.json``) maps (the parent key, the object's sorted keys)
to the order shown; ``tests/golden/key_order.py`` regenerates it from the golden audits after a
stage adds or reorders keys. An object the table does not know (a section of a library user, a
scheme's own group names, a section written without one of its optional parts) has its order
recorded in ``audit.json`` itself (``key_order``, written only when there is one:
:func:`recorded_orders`), so a result read back from disk renders exactly as it did in memory.
Failing both, an object whose keys are a subset of a listed key set of the same parent takes
that order, else sorted order.
"""
from __future__ import annotations

import json

__all__ = ["KEY_ORDER", "in_order", "recorded_orders"]


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
    others = sorted(k for k in keys if k not in fixed and k != reference and k != "unknown")
    last = ["unknown"] if "unknown" in keys else []  # shown, never compared: after the compared groups
    return ["metric", "all", reference, *others, *last, "gap", "significant_paper_rule"]


def _by_parent() -> dict:
    found: dict[str, list] = {}
    for (parent, keys), order in KEY_ORDER.items():
        found.setdefault(parent, []).append((len(keys), set(keys), order))
    return {parent: sorted(v, key=lambda t: (t[0], t[2])) for parent, v in found.items()}


_BY_PARENT = _by_parent()


def _listed_order(parent: str, keys: list, extra: dict | None = None) -> list | None:
    exact = (extra or {}).get((parent, tuple(keys))) or KEY_ORDER.get((parent, tuple(keys)))
    if exact is not None:
        return list(exact)
    for _, known, order in _BY_PARENT.get(parent, ()):
        if set(keys) <= known:
            return [k for k in order if k in set(keys)]
    return None


def _expected(parent: str, keys: list, reference, extra=None) -> list:
    return (_table8(keys, reference) if parent == "table8" else None) or _listed_order(parent, keys, extra) or keys


def in_order(obj, parent: str = "", *, reference: str | None = None, extra: dict | None = None):
    """``obj`` with every nested object's keys in presentation order (lists keep their order);
    ``reference`` is the fairness reference group (it leads the groups of Table 8); ``extra``
    holds orders recorded with the result (:func:`recorded_orders`)."""
    if isinstance(obj, dict):
        keys = sorted(str(k) for k in obj)  # as audit.json has them: memory and disk render alike
        by_name = {str(k): v for k, v in obj.items()}
        return {k: in_order(by_name[k], k, reference=reference, extra=extra)
                for k in _expected(parent, keys, reference, extra)}
    if isinstance(obj, list):
        return [in_order(v, parent, reference=reference, extra=extra) for v in obj]
    return obj


def recorded_orders(result) -> list:
    """``[[parent, [keys in producer order]], ...]`` for every object of ``result`` (sections,
    model, dataset; JSON-safe) whose producer order differs from what :data:`KEY_ORDER` and
    the rules above would give: what ``audit.json`` must carry for a faithful re-render."""
    from ._jsonsafe import json_safe

    fairness = result.section("fairness")
    reference = fairness.get("reference") if fairness is not None else None
    found: dict = {}

    def walk(obj, parent):
        if isinstance(obj, dict):
            keys = [str(k) for k in obj]
            if len(keys) > 1 and keys != _expected(parent, sorted(keys), reference):
                found.setdefault((parent, tuple(sorted(keys))), keys)
            for k, v in obj.items():
                walk(v, str(k))
        elif isinstance(obj, list):
            for v in obj:
                walk(v, parent)

    for name in result.sections:
        walk(json_safe(result.section(name).to_dict()), name)
    walk(json_safe(result.model or {}), "model")
    walk(json_safe(result.dataset or {}), "dataset")
    return [[parent, keys] for (parent, _), keys in sorted(found.items())]
