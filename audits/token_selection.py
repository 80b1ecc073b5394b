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


def reply_header_positions(tokens: list[TokenInfo]) -> list[int]:
    """Non-special template tokens that open an assistant turn, before its first content token (e.g.
    ``assistant`` and the newline after ``<|im_start|>``)."""
    first_content: dict[int, int] = {}
    for t in tokens:
        if t.in_content:
            first_content.setdefault(t.message_index, t.position)
    return [
        t.position
        for t in tokens
        if t.role == "assistant" and not t.in_content and not t.is_special
        and t.position < first_content.get(t.message_index, len(tokens))
    ]  # fmt: skip


def select_tokens(tokens: list[TokenInfo], selection: TokenSelection) -> list[int]:
    """The explicit ``positions`` that exist in the transcript when given; otherwise the candidates,
    then at most ``max_per_transcript`` of them spread evenly from first to last, plus the reply's
    header tokens when ``reply_header`` asks for them."""
    if selection.positions is not None:
        return sorted({t.position for t in tokens} & set(selection.positions))
    header = reply_header_positions(tokens) if selection.reply_header else []
    candidates = candidate_positions(tokens, selection)
    cap = selection.max_per_transcript
    if cap is not None and len(candidates) > cap:
        step = (len(candidates) - 1) / (cap - 1) if cap > 1 else 0
        candidates = [candidates[round(i * step)] for i in range(cap)] if cap > 1 else [candidates[-1]]
    return sorted(set(candidates) | set(header))


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
