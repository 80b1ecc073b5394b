"""The logit lens stored beside a token's activation: what the residual stream predicts at the NLA's layer
(and any further layers the campaign read), read through the target's own final norm and unembedding. An
independent reading of the same activation an explanation was written from, shown beside it: where an
explanation and the lens name the same word, two methods agree; where only the explanation does, it is a
lead to verify (NLA explanations can be confabulated)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sqlalchemy import select

from audits.store import SQLAActivation, SQLAFlag, SQLALogitLens, Store
from audits.themes.rates import campaign_id_of

REPLACEMENT = "\ufffd"
"""What a byte-level token that is only part of a UTF-8 character decodes to on its own."""

_WORD = re.compile(r"[^\W\d_]{3,}")
"""A lens token counts as a word when it holds three or more letters (sub-word pieces and punctuation do
not say anything an explanation could share)."""


@dataclass(frozen=True)
class LensReading:
    """One layer's top tokens for one activation, best first."""

    layer: int
    tokens: list[str]
    probabilities: list[float]

    def label(self, top: int = 10) -> str:
        """``'tok' 41%, 'tok' 9%, ...``: the top tokens with their probabilities, as plain text; a token that
        is only part of a character's bytes (decoded alone it is U+FFFD) reads ``(byte piece)``."""
        return ", ".join(
            f"{'(byte piece)' if REPLACEMENT in t else repr(t)} {p:.0%}"
            for t, p in zip(self.tokens[:top], self.probabilities[:top], strict=False)
        )

    def words(self) -> list[str]:
        """The lens tokens that are words, lower-cased and stripped, best first, without repeats."""
        out: list[str] = []
        for t in self.tokens:
            w = t.strip().lower()
            if _WORD.fullmatch(w) and w not in out:
                out.append(w)
        return out


def shared_words(readings: list[LensReading], text: str | None) -> list[str]:
    """The lens words (any layer) that the explanation ``text`` also uses as whole words, best first."""
    if not text:
        return []
    said = set(re.findall(r"[^\W\d_]+", text.lower()))
    out: list[str] = []
    for r in readings:
        out += [w for w in r.words() if w in said and w not in out]
    return out


def _rows(store: Store, where) -> list[LensReading]:
    with store.session() as session:
        rows = session.execute(
            select(SQLALogitLens.layer, SQLALogitLens.tokens, SQLALogitLens.logprobs)
            .join(SQLAActivation, SQLAActivation.id == SQLALogitLens.activation_id)
            .where(*where)
            .order_by(SQLALogitLens.layer)
        ).all()
    return [
        LensReading(layer, list(tokens), [math.exp(v) for v in logprobs]) for layer, tokens, logprobs in rows
    ]


def token_lens(store: Store, campaign: str, token_position_id: int) -> list[LensReading]:
    """The logit-lens readings of a campaign's activation at one token (empty when none was stored: a
    campaign run before the lens existed, or one with the lens turned off)."""
    return _rows(
        store,
        [SQLAActivation.campaign_id == campaign_id_of(store, campaign),
         SQLAActivation.token_position_id == token_position_id],
    )  # fmt: skip


def flag_lens(store: Store, flag_id: int) -> list[LensReading]:
    """The logit-lens readings of the activation a flag judged (its campaign's, at its token)."""
    flag = select(SQLAFlag.campaign_id, SQLAFlag.token_position_id).where(SQLAFlag.id == flag_id).subquery()
    return _rows(
        store,
        [SQLAActivation.campaign_id == flag.c.campaign_id,
         SQLAActivation.token_position_id == flag.c.token_position_id],
    )  # fmt: skip
