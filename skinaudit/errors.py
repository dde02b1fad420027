"""Exception types. Every message is one sentence a user can act on.

The CLI turns any :class:`SkinauditError` into a one-line message and a non-zero
exit code; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = [
    "SkinauditError",
    "ConfigError",
    "DataError",
    "ImageError",
    "ModelError",
    "UnsafeCheckpointError",
    "MissingDependencyError",
    "NotFittedError",
    "OutputError",
]


class SkinauditError(Exception):
    """Base class of every error skinaudit raises on purpose (user mistakes, bad files)."""


class ConfigError(SkinauditError, ValueError):
    """An option or parameter has an invalid value."""


class DataError(SkinauditError):
    """A dataset, label table, mask or score table cannot be used as given."""


class ImageError(DataError):
    """One image (or mask) cannot be read or used; carries the path and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # pickled from a worker (process pool, Ray task) with its two fields
        return type(self), (self.path, self.reason)


class OutputError(SkinauditError):
    """The output folder cannot be written (full, read-only, not a folder); earlier outputs stay."""


class ModelError(SkinauditError):
    """A model file cannot be loaded or does not behave like a binary classifier."""


class UnsafeCheckpointError(ModelError):
    """A checkpoint would need arbitrary code execution (pickle) to load."""


class MissingDependencyError(SkinauditError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str):
        self.package = package
        self.extra = extra
        self.purpose = purpose
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed; "
            f"install it with: pip install 'skinaudit[{extra}]'"
        )

    def __reduce__(self):  # pickled from a worker with its three fields
        return type(self), (self.package, self.extra, self.purpose)


class NotFittedError(SkinauditError, RuntimeError):
    """An estimator was asked to predict before ``fit``."""
