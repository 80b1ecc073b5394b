"""Analysis-ready exports of a campaign: flags, explanations, reviews (of flags), term_reviews (of
discovered terms) or tokens as CSV, JSONL or
Parquet. Rows stream from the database in chunks (never a whole table in memory) and every column has
a fixed name, type and meaning (:data:`COLUMNS`), so files from different campaigns concatenate.

A campaign's explanations are its own activations' samples under the NLA settings its runs used
(checkpoint, sampling key, samples per vector), whichever run wrote them: explanations are shared by
content, so another campaign's samples of the same vectors (another checkpoint, other sampling, more
samples) are never exported with it. ``checkpoint_id`` and ``sampling_key`` say which setting a row is.

CSV cells that a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return: model output and transcripts are untrusted) are written with a leading ``'``
(OWASP's CSV-injection advice); JSONL and Parquet keep every value as it is."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Select, and_, false, func, or_, select

from audits.store import (
    SQLAActivation,
    SQLACampaign,
    SQLAExplanation,
    SQLAFlag,
    SQLAReview,
    SQLARun,
    SQLATermReview,
    SQLATokenPosition,
    SQLATranscript,
    SQLATriageScore,
    SQLAVariant,
    Store,
)
from audits.themes.rates import campaign_id_of
from nla.errors import InputError

What = Literal["flags", "explanations", "reviews", "term_reviews", "tokens"]
Format = Literal["csv", "jsonl", "parquet"]
CHUNK = 5_000

_STR, _INT, _F64, _BOOL, _TS = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.timestamp("us", tz="UTC")
_TOKEN = [
    ("scenario_id", _STR, "scenario id"), ("variant_key", _STR, "scenario variant (condition cell or control)"),
    ("is_control", _BOOL, "the variant is a scenario's paired control"), ("transcript_id", _INT, "transcript row id"),
    ("position", _INT, "token position in the templated transcript"), ("token", _STR, "the token's text"),
    ("role", _STR, "system, user or assistant"), ("message_index", _INT, "message the token belongs to"),
]  # fmt: skip
COLUMNS: dict[str, list[tuple[str, pa.DataType, str]]] = {
    "flags": [
        ("flag_id", _INT, "flag row id (reviews refer to it)"), *_TOKEN, ("theme_id", _STR, "theme id"),
        ("theme_version", _INT, "theme definition version"), ("raised", _BOOL, "the flag rule raised a flag"),
        ("score", _F64, "mean detector score of the hitting samples"), ("agreement", _F64, "share of samples that hit"),
        ("n_samples", _INT, "parsed explanation samples"), ("n_hits", _INT, "samples that hit the theme"),
        ("neighbours", _INT, "nearby tokens that hit too"), ("low_fidelity", _BOOL, "cited FVE below the rule's minimum"),
        ("fve", _F64, "FVE of the cited explanation"), ("cos", _F64, "cos of the cited explanation"),
        ("explanation_id", _INT, "cited explanation row id"), ("evidence", _STR, "span that triggered the detector"),
        ("in_reply", _BOOL, "the target's reply expresses the theme"), ("in_prompt", _BOOL, "the prompt expresses it"),
        ("checkpoint_id", _STR, "NLA checkpoint id"),
    ],
    "explanations": [
        ("explanation_id", _INT, "explanation row id"), *_TOKEN, ("activation_key", _STR, "sha256 of the vector"),
        ("checkpoint_id", _STR, "NLA checkpoint id"),
        ("sampling_key", _STR, "sha256 of the sampling settings (temperature, top-p, length cap, seed)"),
        ("sample_index", _INT, "sample number for this vector"),
        ("status", _STR, "ok, empty, unclosed, no_tags or injection_failed"), ("text", _STR, "parsed explanation"),
        ("n_tokens", _INT, "generated tokens"), ("finish", _STR, "stop, eos or length"), ("cos", _F64, "AR cos"),
        ("mse", _F64, "AR normalised mse"), ("fve", _F64, "AR FVE (null without a baseline)"),
        ("created_at", _TS, "when it was stored (UTC)"),
    ],
    "reviews": [
        ("review_id", _INT, "review row id"), ("flag_id", _INT, "the reviewed flag"), ("theme_id", _STR, "theme id"),
        ("variant_key", _STR, "scenario variant"), ("position", _INT, "token position"),
        ("author", _STR, "reviewer"), ("decision", _STR, "confirm, dismiss or follow_up"), ("reason", _STR, "why"),
        ("created_at", _TS, "when (UTC); the latest decision per flag is its state"),
    ],
    "term_reviews": [
        ("review_id", _INT, "term review row id"), ("term", _STR, "the discovered term (lower-case words)"),
        ("source", _STR, "documents it was discovered in: explanations, replies or logit-lens"),
        ("arm", _STR, "the arm whose documents over-represent it"), ("against", _STR, "the comparison arm"),
        ("author", _STR, "reviewer"), ("decision", _STR, "confirm, dismiss or follow_up"), ("reason", _STR, "why"),
        ("created_at", _TS, "when (UTC); the latest decision per term and comparison is its state"),
    ],
    "tokens": [
        *_TOKEN, ("token_id", _INT, "vocabulary id"), ("in_content", _BOOL, "inside a message's content"),
        ("is_special", _BOOL, "a special token"), ("selection", _STR, "why it was verbalized (null: not verbalized)"),
        ("activation_norm", _F64, "L2 norm of its residual vector (null: not extracted)"),
        ("triage_max", _F64, "highest triage z-score over the campaign's themes (null: not triaged)"),
    ],
}  # fmt: skip

_TOKEN_COLS = (
    SQLAVariant.scenario_id, SQLAVariant.variant_key, SQLAVariant.is_control, SQLATranscript.id,
    SQLATokenPosition.position, SQLATokenPosition.token_text, SQLATokenPosition.role, SQLATokenPosition.message_index,
)  # fmt: skip


def _from_tokens(query: Select, campaign_id: int) -> Select:
    return (
        query.join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
        .where(SQLAVariant.campaign_id == campaign_id)
    )


def explanation_scope(store: Store, campaign_id: int) -> tuple[list[tuple[str, str]], int]:
    """The (checkpoint, sampling key) settings the campaign's runs used, and its samples per vector."""
    with store.session() as session:
        spec = session.scalar(select(SQLACampaign.spec_json).where(SQLACampaign.id == campaign_id)) or {}
        runs = session.scalars(
            select(SQLARun.provenance_json).where(SQLARun.campaign_id == campaign_id)
        ).all()
    settings = {(p.get("checkpoint_id"), p.get("sampling_key")) for p in runs if p}
    return sorted(s for s in settings if None not in s), int((spec.get("sampling") or {}).get("samples", 1))


def _query(what: What, campaign_id: int, scope: tuple[list[tuple[str, str]], int]) -> Select:
    if what == "flags":
        query = select(SQLAFlag.id, *_TOKEN_COLS, SQLAFlag.theme_id, SQLAFlag.theme_version, SQLAFlag.raised,
                       SQLAFlag.score, SQLAFlag.agreement, SQLAFlag.n_samples, SQLAFlag.n_hits, SQLAFlag.neighbours,
                       SQLAFlag.low_fidelity, SQLAFlag.fve, SQLAFlag.cos, SQLAFlag.explanation_id,
                       SQLAFlag.evidence_text, SQLAFlag.in_reply, SQLAFlag.in_prompt, SQLAFlag.checkpoint_id)  # fmt: skip
        query = query.join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        return _from_tokens(query, campaign_id).order_by(SQLAFlag.id)
    if what == "explanations":
        e = SQLAExplanation
        query = select(e.id, *_TOKEN_COLS, e.activation_key, e.checkpoint_id, e.sampling_key, e.sample_index,
                       e.status, e.text, e.n_tokens, e.finish, e.cos, e.mse, e.fve, e.created_at)  # fmt: skip
        settings, samples = scope
        mine = (
            or_(*(and_(e.checkpoint_id == c, e.sampling_key == k) for c, k in settings))
            if settings
            else false()
        )
        query = (
            query.join(
                SQLAActivation,
                and_(SQLAActivation.activation_key == e.activation_key, SQLAActivation.campaign_id == campaign_id),
            )
            .join(SQLATokenPosition, SQLATokenPosition.id == SQLAActivation.token_position_id)
            .where(mine, e.sample_index < samples)
        )  # fmt: skip
        return _from_tokens(query, campaign_id).order_by(
            SQLATokenPosition.id, e.checkpoint_id, e.sample_index, e.id
        )
    if what == "reviews":
        r = SQLAReview
        query = (
            select(r.id, r.flag_id, SQLAFlag.theme_id, SQLAVariant.variant_key, SQLATokenPosition.position, r.author,
                   r.decision, r.reason, r.created_at)
            .join(SQLAFlag, SQLAFlag.id == r.flag_id)
            .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        )  # fmt: skip
        return _from_tokens(query, campaign_id).order_by(r.id)
    if what == "term_reviews":
        t = SQLATermReview
        return (
            select(t.id, t.term, t.source, t.arm, t.against, t.author, t.decision, t.reason, t.created_at)
            .where(t.campaign_id == campaign_id)
            .order_by(t.id)
        )
    triage = (
        select(SQLATriageScore.token_position_id, func.max(SQLATriageScore.score).label("best"))
        .group_by(SQLATriageScore.token_position_id)
        .subquery()
    )
    query = (
        select(*_TOKEN_COLS, SQLATokenPosition.token_id, SQLATokenPosition.in_content, SQLATokenPosition.is_special,
               SQLAActivation.selection, SQLAActivation.norm, triage.c.best)
        .select_from(SQLATokenPosition)
        .outerjoin(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
        .outerjoin(triage, triage.c.token_position_id == SQLATokenPosition.id)
    )  # fmt: skip
    return _from_tokens(query, campaign_id).order_by(SQLATranscript.id, SQLATokenPosition.position)


def stream_rows(store: Store, campaign: str, what: What) -> Iterator[list[dict[str, Any]]]:
    """Chunks of export rows, read with a server-side cursor where the driver has one."""
    if what not in COLUMNS:
        raise InputError(f"--what {what!r}: choose one of {', '.join(COLUMNS)}")
    names = [name for name, _, _ in COLUMNS[what]]
    campaign_id = campaign_id_of(store, campaign)
    scope = explanation_scope(store, campaign_id) if what == "explanations" else ([], 0)
    query = _query(what, campaign_id, scope)
    with store.engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
        for chunk in result.partitions(CHUNK):
            yield [dict(zip(names, row, strict=True)) for row in chunk]


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> object:
    """A CSV cell: datetimes in ISO form; text a spreadsheet would run as a formula behind a ``'``."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot export {type(value).__name__}")


def write_export(chunks: Iterator[list[dict[str, Any]]], what: What, fmt: Format, path: Path) -> int:
    """Write streamed rows to ``path`` in ``fmt``; return the number of rows."""
    schema = pa.schema([pa.field(name, kind) for name, kind, _ in COLUMNS[what]])
    count = 0
    if fmt == "parquet":
        with pq.ParquetWriter(path, schema) as writer:
            for chunk in chunks:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                count += len(chunk)
            if count == 0:
                writer.write_table(schema.empty_table())
        return count
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=schema.names) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        for chunk in chunks:
            for row in chunk:
                if writer:
                    writer.writerow({k: _csv_cell(v) for k, v in row.items()})
                else:
                    fh.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
            count += len(chunk)
    return count
