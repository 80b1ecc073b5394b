"""Which token positions of a transcript a campaign explains."""

from __future__ import annotations

from audits.campaign_spec import TokenSelection
from nla.activations import TokenInfo


def select_tokens(tokens: list[TokenInfo], selection: TokenSelection) -> list[int]:
    """Content tokens of the chosen roles (specials skipped), every ``stride``-th, then at most
    ``max_per_transcript`` of them spread evenly from first to last."""
    candidates = [
        t.position for t in tokens if t.role in selection.roles and t.in_content and not t.is_special
    ]
    candidates = candidates[:: selection.stride]
    cap = selection.max_per_transcript
    if cap is None or len(candidates) <= cap:
        return candidates
    if cap == 1:
        return [candidates[-1]]
    step = (len(candidates) - 1) / (cap - 1)
    return [candidates[round(i * step)] for i in range(cap)]
