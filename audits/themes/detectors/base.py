"""The detector seam: texts and themes in, one score in [0, 1] per (text, theme) with its evidence."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from audits.themes.definitions import Theme

_BOUNDARY = re.compile(r"(?<=[.!?;:])\s+|\n+|\s+[—–]\s+")
_MIN_WORDS = 3


@dataclass(frozen=True)
class Evidence:
    """The span of the scored text that triggered a score (character offsets, end exclusive)."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ThemeScore:
    """One detector's score of one text for one theme version."""

    theme_id: str
    theme_version: int
    detector: str
    """``name@vN`` of the detector that produced the score."""
    score: float
    evidence: Evidence | None
    """None when nothing in the text supports the theme."""


class Detector(ABC):
    """Scores texts for themes."""

    name: ClassVar[str]
    """Short name used in calibration files, the store and reports."""
    version: ClassVar[int]
    """Bumped whenever the scoring changes, so stored scores are never mixed across versions."""

    @property
    def key(self) -> str:
        """``name@vN``: how stored scores name their detector."""
        return f"{self.name}@v{self.version}"

    @abstractmethod
    def score(self, texts: Sequence[str], themes: Sequence[Theme]) -> list[list[ThemeScore]]:
        """``result[i][j]``: the score of ``texts[i]`` for ``themes[j]``."""


def segments(text: str) -> list[tuple[int, int]]:
    """Sentence- and clause-like spans of ``text`` (offsets, end exclusive); a fragment shorter than
    three words joins the span after it (the last one, the span before it)."""
    spans: list[tuple[int, int]] = []
    start = 0
    pending: int | None = None
    for match in [*_BOUNDARY.finditer(text), None]:
        end = match.start() if match else len(text)
        piece = text[start:end]
        if piece.strip():
            left = start + len(piece) - len(piece.lstrip())
            right = start + len(piece.rstrip())
            begin = left if pending is None else pending
            short = len(text[begin:right].split()) < _MIN_WORDS
            if short and match is not None:
                pending = begin
            elif short and spans:  # a short tail joins the span before it
                spans[-1] = (spans[-1][0], right)
            else:
                spans.append((begin, right))
            if not short or match is None:
                pending = None
        if match:
            start = match.end()
    return spans
