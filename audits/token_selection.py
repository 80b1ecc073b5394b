"""Which token positions of a transcript a campaign explains."""

from __future__ import annotations

import torch

from audits.campaign_spec import TokenSelection
from nla.activations import TokenInfo
from nla.triage import select_top_k


def candidate_positions(tokens: list[TokenInfo], selection: TokenSelection) -> list[int]:
    """Content tokens of the chosen roles (specials skipped), every ``stride``-th."""
    candidates = [
        t.position for t in tokens if t.role in selection.roles and t.in_content and not t.is_special
    ]
    return candidates[:: selection.stride]


def select_tokens(tokens: list[TokenInfo], selection: TokenSelection) -> list[int]:
    """The explicit ``positions`` that exist in the transcript when given; otherwise the candidates,
    then at most ``max_per_transcript`` of them spread evenly from first to last."""
    if selection.positions is not None:
        return sorted({t.position for t in tokens} & set(selection.positions))
    candidates = candidate_positions(tokens, selection)
    cap = selection.max_per_transcript
    if cap is None or len(candidates) <= cap:
        return candidates
    if cap == 1:
        return [candidates[-1]]
    step = (len(candidates) - 1) / (cap - 1)
    return [candidates[round(i * step)] for i in range(cap)]


def triage_tokens(
    tokens: list[TokenInfo], selection: TokenSelection, scores: dict[int, torch.Tensor], seed: int, key: str
) -> dict[int, str]:
    """Position -> ``triage_top`` / ``triage_random`` for the candidates triage picks; ``scores`` maps
    each candidate position to its per-theme triage scores."""
    triage = selection.triage
    assert triage is not None
    candidates = [p for p in candidate_positions(tokens, selection) if p in scores]
    if not candidates:
        return {}
    top, extra = select_top_k(
        torch.stack([scores[p] for p in candidates]), triage.top_k, triage.random, seed, key
    )
    return {
        **{candidates[i]: "triage_top" for i in top},
        **{candidates[i]: "triage_random" for i in extra},
    }
