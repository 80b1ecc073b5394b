"""Detectors: each scores texts for themes in [0, 1] and cites the span that triggered the score."""

from audits.themes.detectors.base import Detector, Evidence, ThemeScore, segments
from audits.themes.detectors.lexicon import LexiconDetector
from audits.themes.detectors.semantic import SemanticDetector, load_sentence_encoder
from nla.errors import InputError

__all__ = [
    "Detector",
    "Evidence",
    "LexiconDetector",
    "SemanticDetector",
    "ThemeScore",
    "load_sentence_encoder",
    "make_detectors",
    "segments",
]


def make_detectors(names: list[str]) -> tuple[Detector, ...]:
    """Detectors by name (``lexicon``, ``semantic``), in the order given."""
    factories = {"lexicon": LexiconDetector, "semantic": SemanticDetector}
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise InputError(f"unknown detector(s) {unknown}; valid: {', '.join(factories)}")
    return tuple(factories[n]() for n in names)
