"""A campaign's documents for discovery, by source, each with its arm, transcript and position group.

* ``explanations``: every parsed explanation sample of the campaign's selected tokens (under the NLA
  setting of its newest run), low-fidelity ones (FVE below ``min_fve``) left out unless asked for;
* ``replies``: each transcript's final assistant message (the visible output);
* ``logit-lens``: each selected token's top logit-lens tokens at the NLA's layer.

A token's position group is ``before_reply`` (the prompt, the reply's header and its first
``FIRST_REPLY_TOKENS`` content tokens: where the model has said nothing yet) or ``in_reply``. The arm of
a transcript is its ``arm`` condition; a campaign without arms has the arms ``main`` and ``control``
(its scenarios' paired controls).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from sqlalchemy import select

from audits.discovery.terms import document_terms, words
from audits.errors import SpecError
from audits.read_model.explanations import nla_setting, setting_explanations
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLALogitLens,
    SQLAMessage,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    Store,
)
from audits.themes.rates import campaign_id_of

Source = Literal["explanations", "replies", "logit-lens"]
SOURCES: tuple[str, ...] = ("explanations", "replies", "logit-lens")
Positions = Literal["all", "before-reply", "in-reply"]
FIRST_REPLY_TOKENS = 3
"""Reply content tokens still counted as ``before_reply``: the model has committed to little yet."""
COLUMNS = ["doc_id", "transcript_id", "arm", "group", "terms", "text", "explanation_id", "token_position_id",
           "position", "activation_key", "fve"]  # fmt: skip


def transcripts(store: Store, campaign: str) -> pd.DataFrame:
    """The campaign's transcripts that ran (status ok): id, arm, variant key, scenario, visible text and
    reply (the last assistant message)."""
    campaign_id = campaign_id_of(store, campaign)
    with store.session() as session:
        rows = session.execute(
            select(SQLATranscript.id, SQLAVariant.variant_key, SQLAVariant.scenario_id, SQLAVariant.is_control,
                   SQLAVariant.conditions_json)
            .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
            .where(SQLAVariant.campaign_id == campaign_id, SQLATranscript.status == "ok")
            .order_by(SQLATranscript.id)
        ).all()  # fmt: skip
        ids = [r[0] for r in rows]
        messages = session.execute(
            select(
                SQLAMessage.transcript_id, SQLAMessage.message_index, SQLAMessage.role, SQLAMessage.content
            )
            .where(SQLAMessage.transcript_id.in_(ids))
            .order_by(SQLAMessage.transcript_id, SQLAMessage.message_index)
        ).all()
    texts: dict[int, list[str]] = {}
    replies: dict[int, str] = {}
    for transcript_id, _, role, content in messages:
        texts.setdefault(transcript_id, []).append(content)
        if role == "assistant":
            replies[transcript_id] = content
    frame = pd.DataFrame(
        rows, columns=["transcript_id", "variant_key", "scenario_id", "is_control", "conditions"]
    )
    frame["arm"] = [arm_of(c, bool(k)) for c, k in zip(frame["conditions"], frame["is_control"], strict=True)]
    frame["visible"] = frame["transcript_id"].map(lambda t: "\n".join(texts.get(t, [])))
    frame["reply"] = frame["transcript_id"].map(lambda t: replies.get(t, ""))
    return frame.drop(columns="conditions")


def arm_of(conditions: dict, is_control: bool) -> str:
    """A transcript's arm: its ``arm`` condition, else ``control`` or ``main``."""
    return conditions.get("arm") or ("control" if is_control else "main")


def _token_groups(store: Store, transcript_ids: list[int]) -> dict[int, int]:
    """Per transcript, the first position counted ``in_reply`` (past the reply's first tokens)."""
    with store.session() as session:
        rows = session.execute(
            select(SQLATokenPosition.transcript_id, SQLATokenPosition.message_index, SQLATokenPosition.position)
            .where(SQLATokenPosition.transcript_id.in_(transcript_ids), SQLATokenPosition.in_content,
                   SQLATokenPosition.role == "assistant", ~SQLATokenPosition.is_special)
            .order_by(SQLATokenPosition.transcript_id, SQLATokenPosition.position)
        ).all()  # fmt: skip
    last_message: dict[int, int] = {}
    for transcript_id, message_index, _ in rows:
        last_message[transcript_id] = max(message_index, last_message.get(transcript_id, -1))
    reply: dict[int, list[int]] = {}
    for transcript_id, message_index, position in rows:
        if message_index == last_message[transcript_id]:
            reply.setdefault(transcript_id, []).append(position)
    big = 1 << 30
    return {t: (p[FIRST_REPLY_TOKENS] if len(p) > FIRST_REPLY_TOKENS else big) for t, p in reply.items()}


def _token_frame(store: Store, campaign_id: int, extra: list, joins: list) -> pd.DataFrame:
    query = (
        select(SQLATokenPosition.transcript_id, SQLATokenPosition.id.label("token_position_id"),
               SQLATokenPosition.position, SQLAActivation.activation_key, SQLAActivation.id.label("activation_id"),
               *extra)
        .join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
        .where(SQLAActivation.campaign_id == campaign_id)
    )  # fmt: skip
    for table, on in joins:
        query = query.join(table, on)
    with store.session() as session:
        return pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))


def documents(
    store: Store,
    campaign: str,
    source: Source = "explanations",
    *,
    include_low_fidelity: bool = False,
    min_fve: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The campaign's documents of ``source`` (columns ``COLUMNS``) and its transcripts frame."""
    if source not in SOURCES:
        raise SpecError(f"--source: unknown source {source!r}; use one of {', '.join(SOURCES)}")
    runs = transcripts(store, campaign)
    arms = dict(zip(runs["transcript_id"], runs["arm"], strict=True))
    if source == "replies":
        docs = runs[runs["reply"] != ""].assign(
            doc_id=runs["transcript_id"], group="in_reply", terms=runs["reply"].map(document_terms), text=runs["reply"],
            explanation_id=None, token_position_id=None, position=None, activation_key=None, fve=None,
        )  # fmt: skip
        return docs[COLUMNS].reset_index(drop=True), runs
    campaign_id = campaign_id_of(store, campaign)
    if source == "logit-lens":
        frame = _token_frame(
            store, campaign_id, [SQLALogitLens.tokens],
            [(SQLALogitLens, (SQLALogitLens.activation_id == SQLAActivation.id) & (SQLALogitLens.layer == SQLAActivation.layer))],
        )  # fmt: skip
        frame["text"] = frame["tokens"].map(lambda tokens: " | ".join(t.strip() or repr(t) for t in tokens))
        frame["terms"] = frame.pop("tokens").map(lens_terms)
        frame = frame.assign(doc_id=frame["activation_id"], explanation_id=None, fve=None)
    else:
        setting = nla_setting(store, campaign)
        keys = setting_explanations(setting, SQLAExplanation.id, SQLAExplanation.activation_key,
                                    SQLAExplanation.text, SQLAExplanation.fve).where(SQLAExplanation.status == "ok")  # fmt: skip
        with store.session() as session:
            explained = pd.DataFrame(
                session.execute(keys).all(), columns=["explanation_id", "activation_key", "text", "fve"]
            )
        tokens = _token_frame(store, campaign_id, [], [])
        frame = tokens.merge(explained, on="activation_key")
        if not include_low_fidelity:
            frame = frame[~(frame["fve"].astype(float) < min_fve)]
        frame = frame.assign(doc_id=frame["explanation_id"], terms=frame["text"].map(document_terms))
    frame = frame[frame["transcript_id"].isin(arms)]
    starts = _token_groups(store, list(arms))
    frame = frame.assign(
        arm=frame["transcript_id"].map(arms),
        group=[
            "before_reply" if p < starts.get(t, 1 << 30) else "in_reply"
            for t, p in zip(frame["transcript_id"], frame["position"], strict=True)
        ],
    )
    return frame[COLUMNS].reset_index(drop=True), runs


def lens_terms(tokens: list[str]) -> set[str]:
    """The words among a token's logit-lens top tokens (sub-word pieces and punctuation dropped)."""
    from audits.discovery.terms import STOP_WORDS

    return {w for t in tokens for w in words(t) if len(w) > 2 and w not in STOP_WORDS}
