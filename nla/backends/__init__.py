"""Execution backends: where the AV and AR actually run. Callers use :class:`NLABackend` only."""

from nla.backends.base import NLABackend
from nla.backends.transformers import TransformersBackend

__all__ = ["NLABackend", "TransformersBackend"]
