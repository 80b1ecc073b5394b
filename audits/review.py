"""Human review of flags: append-only decisions (author, decision, reason, time), kept apart from
machine results. The current state of a flag is derived: its latest decision, or open."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from audits.errors import SpecError
from audits.store import SQLAFlag, SQLAReview, SQLATokenPosition, SQLATranscript, SQLAVariant, Store
from audits.store.orm import REVIEW_DECISIONS
from audits.themes.rates import campaign_id_of

OPEN = "open"
"""The state of a flag no one has decided on yet."""


def add_review(store: Store, flag_id: int, *, author: str, decision: str, reason: str) -> int:
    """Append one decision on a flag; bad input raises SpecError and writes nothing."""
    if decision not in REVIEW_DECISIONS:
        raise SpecError(f"decision {decision!r}: choose one of {', '.join(REVIEW_DECISIONS)}")
    if not author.strip():
        raise SpecError("a review needs the reviewer's name (author)")
    if not reason.strip():
        raise SpecError("a review needs a reason")
    with store.session() as session:
        if session.get(SQLAFlag, flag_id) is None:
            raise SpecError(f"no flag {flag_id} in {store.name}")
        row = SQLAReview(flag_id=flag_id, author=author.strip(), decision=decision, reason=reason.strip())
        session.add(row)
        session.flush()
        return row.id


def review_history(store: Store, campaign: str) -> pd.DataFrame:
    """Every decision on the campaign's flags, oldest first."""
    campaign_id = campaign_id_of(store, campaign)
    query = (
        select(
            SQLAReview.id.label("review_id"), SQLAReview.flag_id, SQLAFlag.theme_id, SQLAVariant.variant_key,
            SQLATokenPosition.position, SQLAReview.author, SQLAReview.decision, SQLAReview.reason,
            SQLAReview.created_at,
        )
        .join(SQLAFlag, SQLAFlag.id == SQLAReview.flag_id)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
        .where(SQLAFlag.campaign_id == campaign_id)
        .order_by(SQLAReview.created_at, SQLAReview.id)
    )  # fmt: skip
    with store.session() as session:
        return pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))


def current_decisions(history: pd.DataFrame) -> pd.DataFrame:
    """The latest decision per flag (flag_id, decision, author, reason, created_at)."""
    columns = ["flag_id", "decision", "author", "reason", "created_at"]
    if history.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return history.sort_values(["created_at", "review_id"]).groupby("flag_id", as_index=False).last()[columns]


def with_review_state(flags: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """``flags`` with ``review_state`` (latest decision or ``open``), ``reviewer`` and ``review_reason``."""
    current = current_decisions(history).rename(
        columns={
            "decision": "review_state",
            "author": "reviewer",
            "reason": "review_reason",
            "created_at": "reviewed_at",
        }
    )
    merged = flags.merge(current, on="flag_id", how="left")
    merged["review_state"] = merged["review_state"].fillna(OPEN)
    return merged
