"""Human review of flags and of discovered terms: append-only decisions (author, decision, reason, time),
kept apart from machine results. The current state of a flag, or of a term within the comparison it was
discovered in (campaign, source, arm against arm), is derived: its latest decision, or open."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from audits.errors import SpecError
from audits.store import (
    SQLACampaign,
    SQLAFlag,
    SQLAReview,
    SQLATermReview,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    Store,
)
from audits.store.orm import DISCOVERY_SOURCES, REVIEW_DECISIONS
from audits.themes.rates import campaign_id_of

OPEN = "open"
"""The state of a flag no one has decided on yet."""


def _check_decision(author: str, decision: str, reason: str) -> None:
    if decision not in REVIEW_DECISIONS:
        raise SpecError(f"decision {decision!r}: choose one of {', '.join(REVIEW_DECISIONS)}")
    if not author.strip():
        raise SpecError("a review needs the reviewer's name (author)")
    if not reason.strip():
        raise SpecError("a review needs a reason")


def add_review(store: Store, flag_id: int, *, author: str, decision: str, reason: str) -> int:
    """Append one decision on a flag; bad input raises SpecError and writes nothing."""
    _check_decision(author, decision, reason)
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
    return _latest(history, ["flag_id"])


def _latest(history: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The newest row of ``history`` per ``key``: ``key``, decision, author, reason, created_at."""
    columns = [*key, "decision", "author", "reason", "created_at"]
    if history.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return history.sort_values(["created_at", "review_id"]).groupby(key, as_index=False).last()[columns]


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


TERM_KEY = ["source", "arm", "against", "term"]
"""What a decision on a discovered term is about: the term within the comparison it was found in."""


def campaign_arms(store: Store, campaign: str) -> list[str]:
    """The arms discovery compares in a campaign: its spec's target arms, else ``main`` and ``control``
    (each scenario against its paired control)."""
    return _arms_and_control(store, campaign)[0]


def comparison(store: Store, campaign: str, arm: str | None, against: str | None) -> tuple[str, str]:
    """The focal and comparison arms, defaulted as ``campaign discover`` defaults them (the first arm that
    is not the control, against the control); an arm the campaign does not have raises SpecError."""
    from audits.discovery.discover import arm_choice

    arms, control = _arms_and_control(store, campaign)
    return arm_choice(arms, control, arm, against)


def _arms_and_control(store: Store, campaign: str) -> tuple[list[str], str | None]:
    from audits.campaign_spec import CampaignSpec

    campaign_id_of(store, campaign)  # an unknown campaign lists the known ones
    with store.session() as session:
        spec = CampaignSpec.model_validate(
            session.scalar(select(SQLACampaign.spec_json).where(SQLACampaign.name == campaign))
        )
    return list(spec.arms) or ["main", "control"], spec.control()


def add_term_review(
    store: Store,
    campaign: str,
    term: str,
    *,
    source: str,
    arm: str,
    against: str,
    author: str,
    decision: str,
    reason: str,
) -> int:
    """Append one decision on a term discovered in ``source`` documents of arm ``arm`` against arm
    ``against``; bad input raises SpecError and writes nothing."""
    _check_decision(author, decision, reason)
    if not term.strip():
        raise SpecError("a term review needs the term")
    if source not in DISCOVERY_SOURCES:
        raise SpecError(f"source {source!r}: choose one of {', '.join(DISCOVERY_SOURCES)}")
    arms = campaign_arms(store, campaign)
    for option, name in (("arm", arm), ("against", against)):
        if name not in arms:
            raise SpecError(
                f"{option} {name!r} is not an arm of campaign {campaign!r}; arms: {', '.join(arms)}"
            )
    if arm == against:
        raise SpecError(f"arm and against are both {arm!r}; a term is discovered between two different arms")
    campaign_id = campaign_id_of(store, campaign)
    with store.session() as session:
        row = SQLATermReview(
            campaign_id=campaign_id, source=source, arm=arm, against=against, term=" ".join(term.lower().split()),
            author=author.strip(), decision=decision, reason=reason.strip(),
        )  # fmt: skip
        session.add(row)
        session.flush()
        return row.id


def term_review_history(store: Store, campaign: str) -> pd.DataFrame:
    """Every decision on the campaign's discovered terms, oldest first."""
    campaign_id = campaign_id_of(store, campaign)
    r = SQLATermReview
    query = (
        select(r.id.label("review_id"), r.source, r.arm, r.against, r.term, r.author, r.decision, r.reason,
               r.created_at)
        .where(r.campaign_id == campaign_id)
        .order_by(r.created_at, r.id)
    )  # fmt: skip
    with store.session() as session:
        return pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))


def current_term_decisions(history: pd.DataFrame) -> pd.DataFrame:
    """The latest decision per term and comparison (``TERM_KEY``, decision, author, reason, created_at)."""
    return _latest(history, TERM_KEY)


def term_states(
    terms: pd.DataFrame, history: pd.DataFrame, *, source: str, arm: str, against: str
) -> pd.DataFrame:
    """``terms`` (a frame with ``term``, e.g. a discovery table) with ``review_state`` (latest decision on
    the term in this comparison, or ``open``), ``reviewer`` and ``review_reason``."""
    current = current_term_decisions(history)
    current = current[
        (current["source"] == source) & (current["arm"] == arm) & (current["against"] == against)
    ]
    current = current[["term", "decision", "author", "reason"]].rename(
        columns={"decision": "review_state", "author": "reviewer", "reason": "review_reason"}
    )
    merged = terms.merge(current, on="term", how="left")
    merged["review_state"] = merged["review_state"].fillna(OPEN)
    return merged
