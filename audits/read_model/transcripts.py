"""Transcripts and what was read from them: messages, tokens with their triage, detector and flag scores,
each token's explanation samples with detector scores, and the evidence behind a flag (a transcript
excerpt and every sample of the flagged activation).

Token texts are stored as the tokenizer decodes each token alone, so a character split across tokens
(most non-Latin text under a byte-level BPE) reads as "\ufffd" token by token. Excerpts are therefore cut
from the message's own text at the tokens' character spans (:func:`token_spans`), never glued together
from token texts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from audits.read_model.campaigns import frame
from audits.read_model.explanations import NLASetting, setting_explanations
from audits.read_model.flags import cell_label
from audits.read_model.lens import LensReading, flag_lens, shared_words
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLAFlag,
    SQLAMessage,
    SQLAThemeScore,
    SQLATokenPosition,
    SQLATranscript,
    SQLATriageScore,
    SQLAVariant,
    Store,
)
from audits.themes.rates import campaign_id_of, condition_label, current_rules, is_current

REPLACEMENT = "\ufffd"
EXCERPT_BEFORE, EXCERPT_AFTER = 40, 20
"""Tokens of context shown before and after a flagged token."""


def transcript_list(store: Store, campaign: str) -> pd.DataFrame:
    """The campaign's transcripts with scenario, condition, ``cell`` (the condition as read, controls
    named by their condition), status and raised-flag count."""
    campaign_id = campaign_id_of(store, campaign)
    rules = current_rules(store, campaign_id)
    raised = (
        select(SQLATokenPosition.transcript_id, func.count().label("raised_flags"))
        .join(SQLAFlag, SQLAFlag.token_position_id == SQLATokenPosition.id)
        .where(SQLAFlag.campaign_id == campaign_id, SQLAFlag.raised.is_(True), is_current(rules))
        .group_by(SQLATokenPosition.transcript_id)
        .subquery()
    )
    query = (
        select(
            SQLATranscript.id.label("transcript_id"), SQLAVariant.variant_key, SQLAVariant.scenario_id,
            SQLAVariant.is_control, SQLAVariant.conditions_json, SQLATranscript.status, SQLATranscript.source,
            func.coalesce(raised.c.raised_flags, 0).label("raised_flags"),
        )
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
        .outerjoin(raised, raised.c.transcript_id == SQLATranscript.id)
        .where(SQLAVariant.campaign_id == campaign_id)
        .order_by(SQLAVariant.scenario_id, SQLAVariant.is_control, SQLAVariant.variant_key)
    )  # fmt: skip
    transcripts = frame(store, query)
    transcripts["condition"] = transcripts.pop("conditions_json").map(condition_label)
    transcripts["cell"] = [
        cell_label(c, bool(k))
        for c, k in zip(transcripts["condition"], transcripts["is_control"], strict=True)
    ]
    return transcripts


def messages(store: Store, transcript_id: int) -> pd.DataFrame:
    """A transcript's messages in order."""
    query = (
        select(SQLAMessage.message_index, SQLAMessage.role, SQLAMessage.content)
        .where(SQLAMessage.transcript_id == transcript_id)
        .order_by(SQLAMessage.message_index)
    )
    return frame(store, query)


def token_spans(content: str, texts: list[str]) -> list[tuple[int, int] | None]:
    """The character span in ``content`` of each of a message's content tokens (``texts``, in order, as
    decoded one by one). Tokens that decode to "\ufffd" (part of a character split across tokens) share
    the span of the characters their run covers; a token the text cannot be matched to gets None."""
    spans: list[tuple[int, int] | None] = [None] * len(texts)
    cursor, pending = 0, []
    for i, text in enumerate(texts):
        if REPLACEMENT in text:
            pending.append(i)
            continue
        if pending:  # the run of split tokens ends where this whole token is found again
            least = 1 + sum(len(texts[j].replace(REPLACEMENT, "")) for j in pending)
            at = content.find(text, cursor + least) if text else -1
            end = at if at >= 0 else len(content)
            for j in pending:
                spans[j] = (cursor, end)
            cursor, pending = end, []
            if at < 0:
                continue
        if text and content.startswith(text, cursor):
            spans[i], cursor = (cursor, cursor + len(text)), cursor + len(text)
        elif i == 0:  # the first token may carry template text before the content
            overlap = next((n for n in range(len(text), 0, -1) if content.startswith(text[-n:], cursor)), 0)
            if overlap:
                spans[i], cursor = (cursor, cursor + overlap), cursor + overlap
        elif text and content[cursor:] and text.startswith(content[cursor:]):  # the last may run past it
            spans[i], cursor = (cursor, len(content)), len(content)
    for j in pending:
        spans[j] = (cursor, len(content))
    return spans


def display_tokens(tokens: pd.DataFrame, contents: dict[int, str]) -> list[str]:
    """Each token's text as a person should read it: a token that is part of a split character shows
    the character(s) its run spells (``contents``: message index -> content)."""
    shown = tokens["token_text"].tolist()
    content_rows = tokens[tokens["in_content"].astype(bool)]
    for index, rows in content_rows.groupby("message_index"):
        content = contents.get(int(index), "")
        for row, span in zip(rows.index, token_spans(content, rows["token_text"].tolist()), strict=True):
            if span is not None and REPLACEMENT in shown[tokens.index.get_loc(row)]:
                shown[tokens.index.get_loc(row)] = (
                    content[span[0] : span[1]] or shown[tokens.index.get_loc(row)]
                )
    return shown


def token_scores(
    store: Store, campaign: str, transcript_id: int, setting: NLASetting
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A transcript's tokens (with their activation and why it was verbalized), and their scores in long
    format: one row per token, theme and ``kind``: ``triage`` (z-score of the activation along the
    theme's direction), ``detector`` (the highest detector score among the token's explanation samples
    under ``setting``) or ``flag`` (the flag rule's verdict score: the mean detector score of the samples
    that reached their threshold, 0 when none did)."""
    campaign_id = campaign_id_of(store, campaign)
    rules = current_rules(store, campaign_id)
    in_transcript = SQLATokenPosition.transcript_id == transcript_id
    tokens = frame(
        store,
        select(
            SQLATokenPosition.id.label("token_position_id"), SQLATokenPosition.position,
            SQLATokenPosition.token_text, SQLATokenPosition.role, SQLATokenPosition.message_index,
            SQLATokenPosition.in_content, SQLATokenPosition.is_special, SQLAActivation.selection,
            SQLAActivation.activation_key,
        )
        .outerjoin(SQLAActivation, (SQLAActivation.token_position_id == SQLATokenPosition.id)
                   & (SQLAActivation.campaign_id == campaign_id))
        .where(in_transcript)
        .order_by(SQLATokenPosition.position),
    ).drop_duplicates("token_position_id", ignore_index=True)  # fmt: skip
    contents = dict(messages(store, transcript_id)[["message_index", "content"]].itertuples(index=False))
    tokens["shown"] = display_tokens(tokens, contents)
    triage = frame(
        store,
        select(SQLATriageScore.token_position_id, SQLATriageScore.theme_id, SQLATriageScore.score)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLATriageScore.token_position_id)
        .where(in_transcript),
    ).assign(kind="triage", raised=False)
    flags = frame(
        store,
        select(SQLAFlag.token_position_id, SQLAFlag.theme_id, SQLAFlag.score, SQLAFlag.raised)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        .where(in_transcript, SQLAFlag.campaign_id == campaign_id, is_current(rules)),
    ).assign(kind="flag")
    detector = _detector_scores(store, campaign_id, transcript_id, setting).assign(
        kind="detector", raised=False
    )
    present = [s for s in (triage, detector, flags) if len(s)]
    if not present:  # a campaign with no theme (or none scored yet) has tokens but no scores
        return tokens, pd.DataFrame(columns=["token_position_id", "theme_id", "score", "raised", "kind"])
    scores = pd.concat(present, ignore_index=True)
    return tokens, scores


def _detector_scores(store: Store, campaign_id: int, transcript_id: int, setting: NLASetting) -> pd.DataFrame:
    """Per token and theme, the highest detector score among the token's parsed samples (newest theme
    version)."""
    columns = ["token_position_id", "theme_id", "score"]
    if not setting.sampling_key:
        return pd.DataFrame(columns=columns)
    query = (
        select(
            SQLATokenPosition.id.label("token_position_id"), SQLAThemeScore.theme_id, SQLAThemeScore.theme_version,
            func.max(SQLAThemeScore.score).label("score"),
        )
        .join(SQLAActivation, (SQLAActivation.token_position_id == SQLATokenPosition.id)
              & (SQLAActivation.campaign_id == campaign_id))
        .join(SQLAExplanation, SQLAExplanation.activation_key == SQLAActivation.activation_key)
        .join(SQLAThemeScore, SQLAThemeScore.explanation_id == SQLAExplanation.id)
        .where(
            SQLATokenPosition.transcript_id == transcript_id, SQLAExplanation.checkpoint_id == setting.checkpoint,
            SQLAExplanation.sampling_key == setting.sampling_key, SQLAExplanation.sample_index < setting.samples,
            SQLAExplanation.status == "ok",
        )
        .group_by(SQLATokenPosition.id, SQLAThemeScore.theme_id, SQLAThemeScore.theme_version)
    )  # fmt: skip
    scores = frame(store, query)
    newest = scores.groupby("theme_id")["theme_version"].transform("max") if len(scores) else None
    return scores[scores["theme_version"] == newest][columns] if len(scores) else scores[columns]


def token_explanations(store: Store, activation_key: str, setting: NLASetting) -> pd.DataFrame:
    """Every explanation sample of one activation under the campaign's NLA setting, with fidelity."""
    query = (
        select(
            SQLAExplanation.id.label("explanation_id"), SQLAExplanation.checkpoint_id, SQLAExplanation.sample_index,
            SQLAExplanation.status, SQLAExplanation.text, SQLAExplanation.raw_output, SQLAExplanation.cos,
            SQLAExplanation.fve, SQLAExplanation.n_tokens, SQLAExplanation.finish,
        )
        .where(
            SQLAExplanation.activation_key == activation_key, SQLAExplanation.checkpoint_id == setting.checkpoint,
            SQLAExplanation.sampling_key == setting.sampling_key, SQLAExplanation.sample_index < setting.samples,
        )
        .order_by(SQLAExplanation.sample_index)
    )  # fmt: skip
    return frame(store, query)


def explanation_theme_scores(store: Store, explanation_ids: list[int]) -> pd.DataFrame:
    """Detector scores and evidence spans of the given explanations (newest theme version only)."""
    query = (
        select(
            SQLAThemeScore.explanation_id, SQLAThemeScore.theme_id, SQLAThemeScore.theme_version,
            SQLAThemeScore.detector, SQLAThemeScore.score, SQLAThemeScore.evidence_start,
            SQLAThemeScore.evidence_end, SQLAThemeScore.evidence_text,
        )
        .where(SQLAThemeScore.explanation_id.in_(explanation_ids))
        .order_by(SQLAThemeScore.explanation_id, SQLAThemeScore.theme_id, SQLAThemeScore.theme_version.desc())
    )  # fmt: skip
    return frame(store, query).drop_duplicates(["explanation_id", "theme_id", "detector"], ignore_index=True)


def theme_score_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`explanation_theme_scores` as one row per explanation id and one column per
    ``(theme_id, detector)``."""
    return scores.pivot(index="explanation_id", columns=["theme_id", "detector"], values="score")


@dataclass(frozen=True)
class Sample:
    """One explanation sample of a flagged token's activation."""

    index: int
    status: str
    text: str
    cos: float | None
    fve: float | None
    explanation_id: int | None = None
    evidence: tuple[int, int] | None = None
    """The character span of ``text`` that the flag's theme was detected in (its best detector's), if any."""
    score: float | None = None
    """That detector's score for the flag's theme."""


@dataclass(frozen=True)
class Evidence:
    """A flag with its transcript excerpt, every explanation sample and the review state."""

    flag: dict[str, Any]
    before: str
    token: str
    after: str
    samples: list[Sample]
    lens: list[LensReading] = field(default_factory=list)
    """The logit lens of the flagged activation (an independent reading to check the samples against)."""

    def lens_agrees(self, sample: Sample) -> list[str]:
        """The logit-lens words that this sample's explanation also uses."""
        return shared_words(self.lens, sample.text)


def _excerpt(tokens: list[tuple[int, str, bool]], position: int, content: str) -> tuple[str, str, str]:
    """(before, token, after) around ``position`` among one message's ``(position, text, in_content)``
    tokens: cut from the message text at the tokens' spans when the token is in the content, else the
    tokens' texts joined."""
    at = next(i for i, (p, _, _) in enumerate(tokens) if p == position)
    texts = [t for _, t, _ in tokens]
    content_rows = [i for i, (_, _, inside) in enumerate(tokens) if inside]
    if at in content_rows:
        spans = dict(zip(content_rows, token_spans(content, [texts[i] for i in content_rows]), strict=True))
        mine = spans[at]
        first = next((spans[i] for i in content_rows if i >= at - EXCERPT_BEFORE and spans[i]), mine)
        last = next((spans[i] for i in reversed(content_rows) if i <= at + EXCERPT_AFTER and spans[i]), mine)
        if mine is not None:
            return (
                content[first[0] : mine[0]],
                content[mine[0] : mine[1]],
                content[mine[1] : max(last[1], mine[1])],
            )
    before = "".join(texts[max(0, at - EXCERPT_BEFORE) : at])
    return before, texts[at], "".join(texts[at + 1 : at + 1 + EXCERPT_AFTER])


def evidence(store: Store, flags: pd.DataFrame) -> list[Evidence]:
    """Excerpt and every explanation sample (the flag's checkpoint and sampling) for each flag, strongest
    first; each sample carries the span its best detector cited for the flag's theme."""
    out = []
    for flag in flags.sort_values(["score", "agreement"], ascending=False).to_dict("records"):
        with store.session() as s:
            tokens = s.execute(
                select(SQLATokenPosition.position, SQLATokenPosition.token_text, SQLATokenPosition.in_content)
                .where(
                    SQLATokenPosition.transcript_id == flag["transcript_id"],
                    SQLATokenPosition.message_index == flag["message_index"],
                )
                .order_by(SQLATokenPosition.position)
            ).all()
            content = s.scalar(
                select(SQLAMessage.content).where(
                    SQLAMessage.transcript_id == flag["transcript_id"],
                    SQLAMessage.message_index == flag["message_index"],
                )
            )
            sampling = select(SQLAFlag.sampling_key).where(SQLAFlag.id == flag["flag_id"]).scalar_subquery()
            samples = s.execute(
                select(SQLAExplanation)
                .where(
                    SQLAExplanation.activation_key == flag["activation_key"],
                    SQLAExplanation.checkpoint_id == flag["checkpoint_id"],
                    SQLAExplanation.sampling_key == sampling,
                )
                .order_by(SQLAExplanation.sample_index)
            ).scalars().all()  # fmt: skip
            spans = {
                eid: (start, end, score)
                for eid, start, end, score in s.execute(
                    select(SQLAThemeScore.explanation_id, SQLAThemeScore.evidence_start, SQLAThemeScore.evidence_end,
                           SQLAThemeScore.score)
                    .where(SQLAThemeScore.explanation_id.in_([e.id for e in samples]),
                           SQLAThemeScore.theme_id == flag["theme_id"],
                           SQLAThemeScore.theme_version == flag["theme_version"])
                    .order_by(SQLAThemeScore.explanation_id, SQLAThemeScore.score)
                )  # ascending, so each explanation keeps its best detector's span
            }  # fmt: skip
            rows = [_sample(e, spans.get(e.id)) for e in samples]
        before, token, after = _excerpt([tuple(t) for t in tokens], flag["position"], content or "")
        out.append(Evidence(flag, before, token, after, rows, flag_lens(store, int(flag["flag_id"]))))
    return out


def _sample(e: SQLAExplanation, span: tuple[int | None, int | None, float] | None) -> Sample:
    text = e.text or e.raw_output
    start, end, score = span if span else (None, None, None)
    cited = (
        (start, end)
        if e.text and start is not None and end is not None and 0 <= start < end <= len(text)
        else None
    )
    return Sample(e.sample_index, e.status, text, e.cos, e.fve, e.id, cited, score)


def explanation_rows(store: Store, setting: NLASetting) -> pd.DataFrame:
    """The campaign's explanations under ``setting``, one row per (token, sample): the token each explains
    (a vector read at several tokens gets a row per token), its status, fidelity and text."""
    explained = setting_explanations(
        setting, SQLAExplanation.id, SQLAExplanation.activation_key, SQLAExplanation.sample_index,
        SQLAExplanation.status, SQLAExplanation.fve, SQLAExplanation.cos, SQLAExplanation.text,
        SQLAExplanation.raw_output,
    ).subquery()  # fmt: skip
    query = (
        select(
            explained.c.id.label("explanation_id"), SQLATokenPosition.transcript_id, SQLATokenPosition.position,
            SQLATokenPosition.token_text.label("token"), SQLATokenPosition.role, explained.c.sample_index,
            explained.c.status, explained.c.fve, explained.c.cos, explained.c.text, explained.c.raw_output,
        )
        .join(SQLAActivation, (SQLAActivation.activation_key == explained.c.activation_key)
              & (SQLAActivation.campaign_id == setting.campaign_id))
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAActivation.token_position_id)
        .order_by(SQLATokenPosition.transcript_id, SQLATokenPosition.position, explained.c.sample_index)
    )  # fmt: skip
    if not setting.sampling_key:
        return pd.DataFrame(columns=list(query.selected_columns.keys()))
    return frame(store, query)
