"""Learned lesion segmentation and artifact flags: two small networks trained in this repository
on isic2018-task1-train-256 (model card: ``docs/learned_detectors.md``).

The methods of the lesion stage are chosen by name: ``"learned"``, ``"classical"`` (the rules of
:mod:`skinaudit.lesion`, no weights) or ``"auto"`` (learned when torch is importable, else
classical; :data:`DEFAULT_METHOD`). :func:`resolve` turns a name into the method used. Inference
(:mod:`.inference`) imports torch lazily; this module does not.
"""
from __future__ import annotations

import importlib.util

__all__ = ["METHODS", "DEFAULT_METHOD", "DEFAULT_SEGMENTER", "DEFAULT_ARTIFACTS", "torch_available",
           "weights_present", "resolve", "segment", "lesion_probability", "artifact_scores", "artifact_flags",
           "weights_version"]

#: accepted values of ``segmenter`` / ``artifacts`` options
METHODS = ("auto", "learned", "classical")
#: the default of the segmenter option; set to "classical" to revert the switch of issue #19
DEFAULT_METHOD = "auto"
#: the default lesion segmenter (``LesionParams.segmenter``, ``AuditConfig.segmenter``, ``--segmenter``)
DEFAULT_SEGMENTER = DEFAULT_METHOD
#: the default image-level artifact flags (``ArtifactParams.detector``, ``AuditConfig.artifacts``,
#: ``--artifacts``): the classical rules. On data the detector never saw (isic-uda1) the learned flags
#: lose to the rules for hair (F1 0.75 vs 0.83) and ruler (0.34 vs 0.82, a shortcut of the training
#: folder) and fire on most phantoms; they win only for gel bubbles (docs/learned_detectors.md).
DEFAULT_ARTIFACTS = "classical"


def torch_available() -> bool:
    """True when torch can be imported (checked without importing it; a ``sys.modules["torch"]``
    set to None, Python's way of blocking an import, counts as absent)."""
    import sys

    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def weights_present(which: str) -> bool:
    """True when the weight file ``which`` ("segmenter" or "artifacts") ships with the package."""
    from importlib import resources

    return resources.files("skinaudit").joinpath("weights", f"{which}.pt").is_file()


def resolve(method: str, which: str = "segmenter") -> str:
    """``"learned"`` or ``"classical"``: ``method`` with ``"auto"`` resolved (learned when torch is
    importable and the weights ``which`` are installed). Raises ConfigError for an unknown name or
    ``"learned"`` without torch."""
    from ..errors import ConfigError

    if method not in METHODS:
        raise ConfigError(f"the method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "auto":
        return "learned" if torch_available() and weights_present(which) else "classical"
    if method == "learned" and not torch_available():
        raise ConfigError("the learned segmenter / artifact detector needs torch: pip install 'skinaudit[torch]' "
                          "(or choose 'classical')")
    return method


def segment(image, shape=None, colours=None):
    """Learned lesion mask (:func:`skinaudit.learned.inference.segment`)."""
    from .inference import segment as f

    return f(image, shape, colours)


def lesion_probability(image, shape=None):
    """Learned lesion probability (:func:`skinaudit.learned.inference.lesion_probability`)."""
    from .inference import lesion_probability as f

    return f(image, shape)


def artifact_scores(image):
    """Learned artifact scores (:func:`skinaudit.learned.inference.artifact_scores`)."""
    from .inference import artifact_scores as f

    return f(image)


def artifact_flags(image):
    """Learned artifact flags (:func:`skinaudit.learned.inference.artifact_flags`)."""
    from .inference import artifact_flags as f

    return f(image)


def weights_version(which: str) -> str:
    """Short hash of the shipped weights ``which`` (:func:`skinaudit.learned.inference.weights_version`)."""
    from .inference import weights_version as f

    return f(which)
