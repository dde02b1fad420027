"""A malformed ``SOURCE_DATE_EPOCH`` must not break ``import skinaudit``.

numpy.f2py (imported through scipy) parses ``SOURCE_DATE_EPOCH`` with ``int()`` when it is
imported and raises a bare ValueError on a value such as ``yesterday``, so ``import skinaudit``,
and with it every CLI command, would end in a traceback. While skinaudit imports its
dependencies a malformed value is hidden; it is reported where it is used:
:func:`skinaudit.report.report_date` raises a ConfigError naming it.
"""
from __future__ import annotations

import contextlib
import os

_NAME = "SOURCE_DATE_EPOCH"


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def malformed_epoch_hidden():
    """Within the block, a ``SOURCE_DATE_EPOCH`` that ``int()`` cannot read is unset; restored after."""
    value = os.environ.get(_NAME)
    malformed = value is not None and not _is_int(value)
    if malformed:
        del os.environ[_NAME]
    try:
        yield
    finally:
        if malformed:
            os.environ.setdefault(_NAME, value)
