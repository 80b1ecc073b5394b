"""The logit lens stored beside a token's activation: what the residual stream predicts at the NLA's layer
(and any further layers the campaign read), read through the target's own final norm and unembedding. An
independent reading of the same activation an explanation was written from, shown beside it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select

from audits.store import SQLAActivation, SQLALogitLens, Store


@dataclass(frozen=True)
class LensReading:
    """One layer's top tokens for one activation, best first."""

    layer: int
    tokens: list[str]
    probabilities: list[float]

    def label(self, top: int = 10) -> str:
        """``'tok' 41%, 'tok' 9%, ...``: the top tokens with their probabilities, as plain text."""
        return ", ".join(
            f"{t!r} {p:.0%}" for t, p in zip(self.tokens[:top], self.probabilities[:top], strict=False)
        )


def token_lens(store: Store, campaign_id: int, token_position_id: int) -> list[LensReading]:
    """The logit-lens readings of a campaign's activation at one token (empty when none was stored)."""
    with store.session() as session:
        rows = session.execute(
            select(SQLALogitLens.layer, SQLALogitLens.tokens, SQLALogitLens.logprobs)
            .join(SQLAActivation, SQLAActivation.id == SQLALogitLens.activation_id)
            .where(SQLAActivation.campaign_id == campaign_id, SQLAActivation.token_position_id == token_position_id)
            .order_by(SQLALogitLens.layer)
        ).all()  # fmt: skip
    return [
        LensReading(layer, list(tokens), [math.exp(v) for v in logprobs]) for layer, tokens, logprobs in rows
    ]
