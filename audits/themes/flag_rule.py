"""The flag rule: per token and theme, combine detector scores of the token's explanation samples
with their AR fidelity, agreement across samples, and neighbouring tokens into one cited verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from audits.store.keys import json_key
from audits.themes.definitions import Theme

RULE_LOGIC_VERSION = 1
"""Bumped whenever :func:`judge_tokens` changes meaning, so stored verdicts are never mixed."""


@dataclass(frozen=True)
class SampleEvidence:
    """One parsed explanation sample of a token, scored for one theme."""

    explanation_id: int
    scores: dict[str, float]
    """Detector key -> score."""
    evidence_text: str | None
    """The span the highest-scoring detector cited."""
    fve: float | None
    cos: float | None


@dataclass(frozen=True)
class TokenEvidence:
    """A token with the parsed explanation samples of its activation."""

    token_position_id: int
    position: int
    samples: tuple[SampleEvidence, ...]


@dataclass(frozen=True)
class Verdict:
    """The rule's decision on one token for one theme, citing the explanation that decided it."""

    token_position_id: int
    raised: bool
    score: float
    agreement: float
    n_samples: int
    n_hits: int
    neighbours: int
    low_fidelity: bool
    fve: float | None
    cos: float | None
    explanation_id: int | None
    evidence_text: str | None


def rule_key(theme: Theme, thresholds: dict[str, float]) -> str:
    """Content key of everything a verdict depends on besides the data."""
    return json_key(
        {
            "theme": theme.key,
            "rule": theme.flag.model_dump(),
            "thresholds": thresholds,
            "logic": RULE_LOGIC_VERSION,
        }
    )


def _hit(sample: SampleEvidence, thresholds: dict[str, float]) -> bool:
    return any(sample.scores.get(d, 0.0) >= t for d, t in thresholds.items())


def _strength(sample: SampleEvidence, thresholds: dict[str, float]) -> float:
    return max((sample.scores.get(d, 0.0) for d in thresholds), default=0.0)


def judge_tokens(
    tokens: Sequence[TokenEvidence], theme: Theme, thresholds: dict[str, float]
) -> list[Verdict]:
    """Verdicts for the tokens of one transcript that have at least one parsed sample.

    A sample hits when any detector reaches its threshold. A token is raised when the share of its
    samples that hit reaches ``min_agreement`` and at least ``min_neighbours`` tokens within
    ``neighbour_window`` positions hit too. The cited sample is the strongest hit (or, when nothing
    hits, the strongest sample); its FVE below ``min_fve`` marks the verdict low-fidelity."""
    rule = theme.flag
    scored = [t for t in tokens if t.samples]
    hitting = {t.position for t in scored if any(_hit(s, thresholds) for s in t.samples)}
    verdicts = []
    for token in scored:
        hits = [s for s in token.samples if _hit(s, thresholds)]
        cited = max(hits or token.samples, key=lambda s: _strength(s, thresholds))
        agreement = len(hits) / len(token.samples)
        neighbours = sum(
            1 for p in hitting if p != token.position and abs(p - token.position) <= rule.neighbour_window
        )
        verdicts.append(
            Verdict(
                token_position_id=token.token_position_id,
                raised=bool(hits) and agreement >= rule.min_agreement and neighbours >= rule.min_neighbours,
                score=sum(_strength(s, thresholds) for s in hits) / len(hits) if hits else 0.0,
                agreement=agreement,
                n_samples=len(token.samples),
                n_hits=len(hits),
                neighbours=neighbours,
                low_fidelity=cited.fve is not None and cited.fve < rule.min_fve,
                fve=cited.fve,
                cos=cited.cos,
                explanation_id=cited.explanation_id,
                evidence_text=cited.evidence_text if hits else None,
            )
        )
    return verdicts
