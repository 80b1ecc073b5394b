"""The lexicon detector: a theme's regular expressions, fast and explainable."""

from __future__ import annotations

import re
from collections.abc import Sequence

from audits.themes.definitions import Theme
from audits.themes.detectors.base import Detector, Evidence, ThemeScore


class LexiconDetector(Detector):
    """Score ``1 - 0.5 ** matches`` over a theme's patterns; the first match is the evidence."""

    name = "lexicon"
    version = 1

    def __init__(self) -> None:
        self._compiled: dict[str, list[re.Pattern[str]]] = {}

    def _patterns(self, theme: Theme) -> list[re.Pattern[str]]:
        if theme.key not in self._compiled:
            self._compiled[theme.key] = [re.compile(p, re.IGNORECASE) for p in theme.lexicon]
        return self._compiled[theme.key]

    def score(self, texts: Sequence[str], themes: Sequence[Theme]) -> list[list[ThemeScore]]:
        return [[self._one(text, theme) for theme in themes] for text in texts]

    def _one(self, text: str, theme: Theme) -> ThemeScore:
        matches = sorted(
            (m for p in self._patterns(theme) for m in p.finditer(text)), key=lambda m: m.start()
        )
        evidence = Evidence(matches[0].start(), matches[0].end(), matches[0].group(0)) if matches else None
        return ThemeScore(theme.id, theme.version, self.key, 1 - 0.5 ** len(matches), evidence)
