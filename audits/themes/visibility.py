"""The unverbalized check: does the target's visible text (its reply, or the prompt) express a theme
that its activations' explanations express? Flags whose theme appears in the explanations but in
neither are *unverbalized*, the NLA's key auditing signal. The same detectors and thresholds judge
both sides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from audits.themes.definitions import Theme
from audits.themes.detectors.base import Detector

REPLY_ROLES = ("assistant",)


@dataclass(frozen=True)
class Visibility:
    """Where the visible transcript expresses a theme, with the strongest evidence."""

    in_reply: bool
    in_prompt: bool
    message_index: int | None
    evidence: str | None

    @property
    def verbalized(self) -> bool:
        """The theme is visible in the transcript (reply or prompt)."""
        return self.in_reply or self.in_prompt


def visibility(
    messages: Sequence[tuple[str, str]],
    themes: Sequence[Theme],
    detectors: Sequence[Detector],
    thresholds: dict[str, dict[str, float]],
) -> dict[str, Visibility]:
    """For each theme (by id), whether the messages (``(role, content)``) express it.

    ``thresholds`` maps theme id -> detector key -> threshold."""
    texts = [content for _, content in messages]
    hits: dict[str, list[tuple[float, int, str | None]]] = {t.id: [] for t in themes}
    for detector in detectors:
        for i, row in enumerate(detector.score(texts, themes)):
            for theme, score in zip(themes, row, strict=True):
                threshold = thresholds[theme.id].get(score.detector)
                if threshold is not None and score.score >= threshold:
                    evidence = score.evidence.text if score.evidence else None
                    hits[theme.id].append((score.score / threshold, i, evidence))
    out = {}
    for theme in themes:
        found = hits[theme.id]
        roles = {messages[i][0] for _, i, _ in found}
        best = max(found, default=None)
        out[theme.id] = Visibility(
            in_reply=bool(roles & set(REPLY_ROLES)),
            in_prompt=bool(roles - set(REPLY_ROLES)),
            message_index=best[1] if best else None,
            evidence=best[2] if best else None,
        )
    return out
