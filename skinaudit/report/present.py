"""A result in presentation order (:mod:`skinaudit.order`), as the report shows it."""
from __future__ import annotations

import dataclasses

from ..order import in_order, recorded_orders

__all__ = ["presented"]


def presented(result):
    """A copy of ``result`` (an :class:`~skinaudit.result.AuditResult`) whose sections, model and
    dataset descriptions are in presentation order."""
    from .._jsonsafe import json_safe
    from ..result import Section

    fairness = result.section("fairness")
    reference = fairness.get("reference") if fairness is not None else None
    saved = result.key_order if result.key_order is not None else recorded_orders(result)
    extra = {(parent, tuple(sorted(keys))): tuple(keys) for parent, keys in saved}
    sections = {name: Section.from_dict(name, in_order(json_safe(result.section(name).to_dict()), name,
                                                       reference=reference, extra=extra))
                for name in result.sections}
    return dataclasses.replace(result, sections=sections,
                               model=in_order(json_safe(result.model or {}), "model", extra=extra),
                               dataset=in_order(json_safe(result.dataset or {}), "dataset", extra=extra))
