"""Themes against the store: register definitions, score explanations, and write flag verdicts.

Each step only does missing work and commits per unit (a chunk of explanations, a transcript), so an
interrupted run resumes without losing or duplicating rows. Flags are written only for transcripts
whose every selected activation has all its samples explained, so a verdict is final when stored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from audits.errors import SpecError
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLAFlag,
    SQLAFlagTally,
    SQLAMessage,
    SQLAThemeDefinition,
    SQLAThemeScore,
    SQLATokenPosition,
    Store,
    add_counts,
    insert_ignore,
    insert_new,
)
from audits.themes.definitions import Theme
from audits.themes.detectors.base import Detector
from audits.themes.flag_rule import SampleEvidence, TokenEvidence, Verdict, judge_tokens, rule_key
from audits.themes.visibility import Visibility, visibility

SCORE_CHUNK = 256
Advance = Callable[[int], None]


@dataclass(frozen=True)
class ThemeJob:
    """What verdicts are about: one campaign's explanations by one NLA and sampling setting."""

    campaign_id: int
    checkpoint_id: str
    sampling_key: str
    samples: int
    model_ref: str
    layer: int
    themes: tuple[Theme, ...]
    detectors: tuple[Detector, ...]
    thresholds: dict[str, dict[str, float]]
    """Theme id -> detector key -> threshold."""


def register_themes(store: Store, themes: Sequence[Theme]) -> None:
    """Record each theme version's content; a changed definition under a stored version is refused."""
    with store.session() as session:
        stored = {
            (theme_id, version): digest
            for theme_id, version, digest in session.execute(
                select(
                    SQLAThemeDefinition.theme_id,
                    SQLAThemeDefinition.version,
                    SQLAThemeDefinition.content_hash,
                ).where(SQLAThemeDefinition.theme_id.in_([t.id for t in themes]))
            )
        }
        for theme in themes:
            if stored.get((theme.id, theme.version), theme.content_hash()) != theme.content_hash():
                raise SpecError(
                    f"theme {theme.key} differs from the definition stored in {store.name} under the same "
                    "version; bump `version` in its file so old and new scores stay apart"
                )
        rows = [
            {"theme_id": t.id, "version": t.version, "content_hash": t.content_hash(),
             "definition_json": t.model_dump(mode="json")}
            for t in themes
        ]  # fmt: skip
        insert_ignore(session, SQLAThemeDefinition, rows)


def _campaign_activations(job: ThemeJob) -> Select:
    return select(SQLAActivation.activation_key).where(
        SQLAActivation.campaign_id == job.campaign_id, SQLAActivation.layer == job.layer
    )


def pending_scores(store: Store, job: ThemeJob) -> list[tuple[int, str]]:
    """Parsed explanations of the campaign that miss a score for some (theme, detector). Both reads
    select by subquery, never by a list of ids (SQLite builds cap a statement at 32,766 parameters)."""
    wanted = {(t.id, t.version, d.key) for t in job.themes for d in job.detectors}
    parsed = select(SQLAExplanation.id, SQLAExplanation.text).where(
        SQLAExplanation.checkpoint_id == job.checkpoint_id,
        SQLAExplanation.sampling_key == job.sampling_key,
        SQLAExplanation.status == "ok",
        SQLAExplanation.activation_key.in_(_campaign_activations(job).scalar_subquery()),
    )
    with store.session() as session:
        explanations = session.execute(parsed.order_by(SQLAExplanation.id)).all()
        have: dict[int, set[tuple[str, int, str]]] = {}
        for eid, theme_id, version, detector in session.execute(
            select(
                SQLAThemeScore.explanation_id, SQLAThemeScore.theme_id, SQLAThemeScore.theme_version,
                SQLAThemeScore.detector,
            ).where(SQLAThemeScore.explanation_id.in_(parsed.with_only_columns(SQLAExplanation.id).scalar_subquery()))
        ):  # fmt: skip
            have.setdefault(eid, set()).add((theme_id, version, detector))
    return [(eid, text) for eid, text in explanations if not wanted <= have.get(eid, set())]


def score_explanations(
    store: Store, job: ThemeJob, pending: list[tuple[int, str]], advance: Advance, stop: Callable[[], bool]
) -> int:
    """Score ``pending`` explanations with every detector for every theme; a commit per chunk."""
    written = 0
    for start in range(0, len(pending), SCORE_CHUNK):
        if stop():
            break
        chunk = pending[start : start + SCORE_CHUNK]
        rows = []
        for detector in job.detectors:
            for (eid, _), scores in zip(
                chunk, detector.score([t for _, t in chunk], job.themes), strict=True
            ):
                rows.extend(
                    {
                        "explanation_id": eid,
                        "theme_id": s.theme_id,
                        "theme_version": s.theme_version,
                        "detector": s.detector,
                        "score": s.score,
                        "evidence_start": s.evidence.start if s.evidence else None,
                        "evidence_end": s.evidence.end if s.evidence else None,
                        "evidence_text": s.evidence.text if s.evidence else None,
                    }  # fmt: skip
                    for s in scores
                )
        with store.session() as session:
            written += insert_ignore(session, SQLAThemeScore, rows)
        advance(len(chunk))
    return written


def flaggable_transcripts(store: Store, job: ThemeJob) -> list[int]:
    """Transcripts whose every activation has all samples explained and that miss a verdict."""
    keys = {t.id: rule_key(t, job.thresholds[t.id]) for t in job.themes}
    with store.session() as session:
        activations = session.execute(
            select(SQLATokenPosition.transcript_id, SQLAActivation.activation_key)
            .join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
            .where(SQLAActivation.campaign_id == job.campaign_id, SQLAActivation.layer == job.layer)
        ).all()
        counts: dict[str, int] = {}
        for key in session.scalars(
            select(SQLAExplanation.activation_key).where(
                SQLAExplanation.checkpoint_id == job.checkpoint_id,
                SQLAExplanation.sampling_key == job.sampling_key,
                SQLAExplanation.activation_key.in_(_campaign_activations(job).scalar_subquery()),
            )
        ):
            counts[key] = counts.get(key, 0) + 1
        judged = set(
            session.execute(
                select(SQLATokenPosition.transcript_id, SQLAFlag.theme_id, SQLAFlag.rule_key)
                .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
                .where(
                    SQLAFlag.campaign_id == job.campaign_id,
                    SQLAFlag.checkpoint_id == job.checkpoint_id,
                    SQLAFlag.sampling_key == job.sampling_key,
                )
                .distinct()
            ).all()
        )
    by_transcript: dict[int, list[str]] = {}
    for transcript_id, key in activations:
        by_transcript.setdefault(transcript_id, []).append(key)
    return sorted(
        t
        for t, act_keys in by_transcript.items()
        if all(counts.get(k, 0) >= job.samples for k in act_keys)
        and any((t, theme_id, rk) not in judged for theme_id, rk in keys.items())
    )


def flag_transcript(store: Store, job: ThemeJob, transcript_id: int) -> int:
    """Write every theme's verdicts for one transcript, and the tallies of the new ones, in one
    transaction; return how many were new."""
    with store.session() as session:
        tokens = _token_evidence(session, job, transcript_id)
        messages = session.execute(
            select(SQLAMessage.role, SQLAMessage.content)
            .where(SQLAMessage.transcript_id == transcript_id)
            .order_by(SQLAMessage.message_index)
        ).all()
        seen = visibility([tuple(m) for m in messages], job.themes, job.detectors, job.thresholds)
        rows = []
        for theme in job.themes:
            thresholds = job.thresholds[theme.id]
            evidence = [_for_theme(tp, token, theme, thresholds) for tp, token in tokens.items()]
            rows.extend(
                _flag_row(job, theme, v, tokens[v.token_position_id].activation_key, seen[theme.id])
                for v in judge_tokens(evidence, theme, thresholds)
            )
        new = insert_new(session, SQLAFlag, rows, *(SQLAFlag.__table__.c[c] for c in TALLIED))
        add_counts(session, SQLAFlagTally, _tallies(job.campaign_id, transcript_id, new), TALLY_KEY, "count")
        return len(new)


TALLIED = ("theme_id", "theme_version", "rule_key", "checkpoint_id", "raised", "low_fidelity", "in_reply",
           "in_prompt")  # fmt: skip
"""The verdict columns a tally groups by (within one campaign and transcript)."""
TALLY_KEY = ["campaign_id", "transcript_id", *TALLIED]


def _tallies(campaign_id: int, transcript_id: int, verdicts: list[Row]) -> list[dict]:
    """One tally row per distinct ``TALLIED`` values among ``verdicts``, with how many share them."""
    counted = Counter(tuple(v) for v in verdicts)
    return [
        {"campaign_id": campaign_id, "transcript_id": transcript_id, **dict(zip(TALLIED, values, strict=True)),
         "count": n}
        for values, n in counted.items()
    ]  # fmt: skip


_Scores = dict[tuple[str, int, str], tuple[float, str | None]]
"""(theme id, version, detector) -> (score, evidence text) of one explanation."""


@dataclass
class _Token:
    """A token with an activation, and that activation's parsed samples ``(id, fve, cos, scores)``."""

    position: int
    activation_key: str
    samples: list[tuple[int, float | None, float | None, _Scores]]


def _token_evidence(session: Session, job: ThemeJob, transcript_id: int) -> dict[int, _Token]:
    """Tokens with activations in the transcript, each with its parsed samples and their scores."""
    rows = session.execute(
        select(SQLATokenPosition.id, SQLATokenPosition.position, SQLAActivation.activation_key)
        .join(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
        .where(SQLATokenPosition.transcript_id == transcript_id, SQLAActivation.layer == job.layer)
        .order_by(SQLATokenPosition.position)
    ).all()
    tokens = {tp: _Token(pos, key, []) for tp, pos, key in rows}
    explanations = session.execute(
        select(SQLAExplanation.id, SQLAExplanation.activation_key, SQLAExplanation.fve, SQLAExplanation.cos)
        .where(
            SQLAExplanation.checkpoint_id == job.checkpoint_id,
            SQLAExplanation.sampling_key == job.sampling_key,
            SQLAExplanation.status == "ok",
            SQLAExplanation.activation_key.in_({t.activation_key for t in tokens.values()}),
        )
        .order_by(SQLAExplanation.sample_index)
    ).all()
    scores: dict[int, _Scores] = {}
    for eid, theme_id, version, detector, score, text in session.execute(
        select(
            SQLAThemeScore.explanation_id, SQLAThemeScore.theme_id, SQLAThemeScore.theme_version,
            SQLAThemeScore.detector, SQLAThemeScore.score, SQLAThemeScore.evidence_text,
        ).where(SQLAThemeScore.explanation_id.in_([e.id for e in explanations]))
    ):  # fmt: skip
        scores.setdefault(eid, {})[(theme_id, version, detector)] = (score, text)
    by_key: dict[str, list] = {}
    for eid, key, fve, cos in explanations:
        by_key.setdefault(key, []).append((eid, fve, cos, scores.get(eid, {})))
    for token in tokens.values():
        token.samples = by_key.get(token.activation_key, [])
    return tokens


def _for_theme(tp_id: int, token: _Token, theme: Theme, thresholds: dict[str, float]) -> TokenEvidence:
    """One token's samples with their scores for one theme."""
    samples = []
    for eid, fve, cos, scores in token.samples:
        found = {
            d: scores[(theme.id, theme.version, d)]
            for d in thresholds
            if (theme.id, theme.version, d) in scores
        }
        best = max(found.values(), key=lambda pair: pair[0], default=(0.0, None))
        samples.append(SampleEvidence(eid, {d: score for d, (score, _) in found.items()}, best[1], fve, cos))
    return TokenEvidence(tp_id, token.position, tuple(samples))


def _flag_row(job: ThemeJob, theme: Theme, v: Verdict, activation_key: str, seen: Visibility) -> dict:
    return {
        "campaign_id": job.campaign_id, "token_position_id": v.token_position_id, "activation_key": activation_key,
        "checkpoint_id": job.checkpoint_id, "sampling_key": job.sampling_key, "theme_id": theme.id,
        "theme_version": theme.version, "rule_key": rule_key(theme, job.thresholds[theme.id]), "raised": v.raised,
        "score": v.score, "agreement": v.agreement, "n_samples": v.n_samples, "n_hits": v.n_hits,
        "neighbours": v.neighbours, "low_fidelity": v.low_fidelity, "fve": v.fve, "cos": v.cos,
        "explanation_id": v.explanation_id, "evidence_text": v.evidence_text, "in_reply": seen.in_reply,
        "in_prompt": seen.in_prompt, "visible_message_index": seen.message_index,
        "visible_evidence": seen.evidence,
    }  # fmt: skip
