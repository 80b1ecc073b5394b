"""SQL tables of the audit store (SQLAlchemy 2 typed ORM; the pydantic domain models live elsewhere).

Activation vectors are stored in ``activations.vector`` as float32 little-endian blobs, written in
the same transaction as their rows. The database is then one consistency domain: an explanation's
``activation_key`` always resolves to the exact vector it was made from, so any explanation can be
re-verbalized or re-scored from the store alone. A blob is small (~2.3 KB at d_model=576,
~14 KB at d_model=3584); a Parquet side file would need its own content-hash bookkeeping and could
drift from the database (a crash between the two writes, a copied DB without its side file).

Every constraint is named by ``NAMING_CONVENTION`` so Alembic migrations refer to stable names.
Timestamps are timezone-aware UTC on every backend (SQLite stores no offset; ``UTCDateTime`` adds it
back on read). Explanations point at their vector by content (``activation_key``), not by row: the
same vector at several token positions is explained once per (checkpoint, sampling, sample).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_N_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
RUN_STATUSES = ("running", "completed", "interrupted", "failed", "budget_exhausted")
SELECTIONS = ("cap", "triage_top", "triage_random", "triage_sample")
REVIEW_DECISIONS = ("confirm", "dismiss", "follow_up")
DISCOVERY_SOURCES = ("explanations", "replies", "logit-lens")
TRANSCRIPT_SOURCES = ("given", "generated", "read")
"""``read``: an arm's model teacher-forced on another arm's transcript (the same-text control)."""
SHA256_HEX = String(64)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; naive datetimes are refused on write."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC before storing."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give a timezone-aware (UTC) datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime whatever the backend gives back."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ModelText(TypeDecorator[str]):
    """Text a model wrote (or a tokenizer decoded): NUL characters, which PostgreSQL text cannot hold, are
    stored as U+FFFD on every backend, so both store the same string."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        """Replace NUL before writing."""
        return None if value is None else value.replace("\x00", "\ufffd")


class ModelTokens(TypeDecorator[list]):
    """A JSON list of decoded tokens, NUL characters replaced as in ``ModelText``."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: list | None, dialect: Dialect) -> list | None:
        """Replace NUL in each string before writing."""
        return (
            None
            if value is None
            else [v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in value]
        )


class Base(DeclarativeBase):
    """Declarative base: named constraints, aware UTC timestamps, JSON for dict columns."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class SQLACampaign(Base):
    """A campaign, with its validated spec as JSON and the spec's sha256."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    spec_json: Mapped[dict[str, Any]]
    spec_hash: Mapped[str] = mapped_column(SHA256_HEX)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SQLARun(Base):
    """One execution of a campaign, with everything needed to reproduce it."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(_in("status", RUN_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String, default="running")
    provenance_json: Mapped[dict[str, Any]]
    executor: Mapped[str] = mapped_column(String)


class SQLARunLease(Base):
    """The live runner of a campaign: at most one row per campaign, taken atomically when a run opens
    (an ``INSERT ... ON CONFLICT DO NOTHING`` on the primary key), refreshed while it works and deleted
    when it closes. A row whose holder died (its pid is gone on this host, or no heartbeat for
    ``audits.store.leases.STALE_AFTER``) may be taken over; see ``audits.store.leases``."""

    __tablename__ = "run_leases"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(32))
    """A random id of the holding runner (one per run attempt)."""
    host: Mapped[str] = mapped_column(String)
    pid: Mapped[int]
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    """The holder's run, once its row exists."""
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    """Last sign of life, by the database server's clock (so hosts with skewed clocks agree)."""


class SQLAVariant(Base):
    """One expanded scenario variant of a campaign (a cell of its factorial design)."""

    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("campaign_id", "variant_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    variant_key: Mapped[str] = mapped_column(String)
    scenario_id: Mapped[str] = mapped_column(String)
    scenario_version: Mapped[int]
    is_control: Mapped[bool] = mapped_column(default=False)
    conditions_json: Mapped[dict[str, Any]]


class SQLATranscript(Base):
    """The chat a variant produced or was given (one per variant), with its status."""

    __tablename__ = "transcripts"
    __table_args__ = (CheckConstraint(_in("source", TRANSCRIPT_SOURCES), name="source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("variants.id"), unique=True)
    source: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SQLAMessage(Base):
    """One message of a transcript, in order."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("transcript_id", "message_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    message_index: Mapped[int]
    role: Mapped[str] = mapped_column(String)
    content: Mapped[str] = mapped_column(ModelText)


class SQLATokenPosition(Base):
    """One token of a templated transcript, attributed to its message and role."""

    __tablename__ = "token_positions"
    __table_args__ = (UniqueConstraint("transcript_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    position: Mapped[int]
    token_id: Mapped[int]
    token_text: Mapped[str] = mapped_column(ModelText)
    role: Mapped[str] = mapped_column(String)
    message_index: Mapped[int]
    in_content: Mapped[bool]
    is_special: Mapped[bool]


class SQLAActivation(Base):
    """A residual-stream vector at one token position, model and layer, keyed by its content."""

    __tablename__ = "activations"
    __table_args__ = (
        UniqueConstraint("token_position_id", "model_ref", "layer"),
        CheckConstraint(_in("selection", SELECTIONS), name="selection"),
        Index(None, "campaign_id", "layer", "activation_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    """The campaign of the token's transcript, stored again here so a campaign's distinct vectors are
    one index range (the status and the runner read them without joining every token)."""
    token_position_id: Mapped[int] = mapped_column(ForeignKey("token_positions.id"))
    model_ref: Mapped[str] = mapped_column(String)
    layer: Mapped[int]
    activation_key: Mapped[str] = mapped_column(SHA256_HEX, index=True)
    d_model: Mapped[int]
    norm: Mapped[float]
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    selection: Mapped[str] = mapped_column(String, server_default="cap")
    """Why the token is verbalized: ``cap`` (token selection), ``triage_top`` or ``triage_random`` (triage), or
    ``triage_sample`` (the random sample a distilled triage verbalizes first to train its probes)."""


class SQLALogitLens(Base):
    """The logit lens of one activation: its top tokens read through the target's own final norm and
    unembedding at ``layer`` (the activation's layer, or another layer of the same token)."""

    __tablename__ = "logit_lens"
    __table_args__ = (UniqueConstraint("activation_id", "layer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    activation_id: Mapped[int] = mapped_column(ForeignKey("activations.id"))
    layer: Mapped[int]
    token_ids: Mapped[list[int]] = mapped_column(JSON)
    tokens: Mapped[list[str]] = mapped_column(ModelTokens)
    """The decoded top tokens, best first."""
    logprobs: Mapped[list[float]] = mapped_column(JSON)
    """Their log-probabilities under the lens distribution."""


class SQLAExplanation(Base):
    """One NLA explanation, content-addressed by (checkpoint, activation, sampling, sample index)."""

    __tablename__ = "explanations"
    __table_args__ = (
        UniqueConstraint(
            "checkpoint_id",
            "activation_key",
            "sampling_key",
            "sample_index",
            name="uq_explanations__content_address",
        ),
        Index(
            "ix_explanations__status_by_address",
            "checkpoint_id", "sampling_key", "activation_key", "sample_index", "status",
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    checkpoint_id: Mapped[str] = mapped_column(String)
    activation_key: Mapped[str] = mapped_column(SHA256_HEX, index=True)
    sampling_key: Mapped[str] = mapped_column(SHA256_HEX)
    sample_index: Mapped[int]
    text: Mapped[str] = mapped_column(ModelText)
    raw_output: Mapped[str] = mapped_column(ModelText)
    status: Mapped[str] = mapped_column(String)
    finish: Mapped[str] = mapped_column(String)
    n_tokens: Mapped[int]
    cos: Mapped[float | None]
    mse: Mapped[float | None]
    fve: Mapped[float | None]
    generation_seconds: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SQLAThemeDefinition(Base):
    """A theme definition as it was used: (id, version) must always mean the same content."""

    __tablename__ = "theme_definitions"
    __table_args__ = (UniqueConstraint("theme_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    theme_id: Mapped[str] = mapped_column(String)
    version: Mapped[int]
    content_hash: Mapped[str] = mapped_column(SHA256_HEX)
    definition_json: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SQLAThemeScore(Base):
    """One detector's score of one explanation for one theme version, with its evidence span."""

    __tablename__ = "theme_scores"
    __table_args__ = (UniqueConstraint("explanation_id", "theme_id", "theme_version", "detector"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    explanation_id: Mapped[int] = mapped_column(ForeignKey("explanations.id"), index=True)
    theme_id: Mapped[str] = mapped_column(String)
    theme_version: Mapped[int]
    detector: Mapped[str] = mapped_column(String)
    score: Mapped[float]
    evidence_start: Mapped[int | None]
    evidence_end: Mapped[int | None]
    evidence_text: Mapped[str | None] = mapped_column(ModelText)


class SQLATriageScore(Base):
    """A token's triage score for a theme: its activation projected on the theme's direction, as a
    z-score against reference activations (no generation involved)."""

    __tablename__ = "triage_scores"
    __table_args__ = (UniqueConstraint("token_position_id", "checkpoint_id", "theme_id", "theme_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_position_id: Mapped[int] = mapped_column(ForeignKey("token_positions.id"))
    checkpoint_id: Mapped[str] = mapped_column(String)
    theme_id: Mapped[str] = mapped_column(String)
    theme_version: Mapped[int]
    score: Mapped[float]


class SQLAFlag(Base):
    """A flag rule's verdict on one token for one theme: raised or not, with the evidence that decided
    it (cited explanation, sample agreement, fidelity, neighbours) and whether the target's visible
    text expresses the theme too."""

    __tablename__ = "flags"
    __table_args__ = (
        Index(None, "campaign_id", "theme_id"),
        Index(None, "campaign_id", "raised"),
        UniqueConstraint(
            "campaign_id", "token_position_id", "theme_id", "theme_version", "checkpoint_id", "sampling_key",
            "rule_key", name="uq_flags__verdict",
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    token_position_id: Mapped[int] = mapped_column(ForeignKey("token_positions.id"), index=True)
    activation_key: Mapped[str] = mapped_column(SHA256_HEX)
    checkpoint_id: Mapped[str] = mapped_column(String)
    sampling_key: Mapped[str] = mapped_column(SHA256_HEX)
    theme_id: Mapped[str] = mapped_column(String)
    theme_version: Mapped[int]
    rule_key: Mapped[str] = mapped_column(SHA256_HEX)
    """sha256 of the flag rule, detector versions and thresholds that produced the verdict."""
    raised: Mapped[bool]
    score: Mapped[float]
    """Mean detector score over the token's hitting samples (0 when none hit)."""
    agreement: Mapped[float]
    n_samples: Mapped[int]
    """Parsed (``ok``) explanation samples of the token."""
    n_hits: Mapped[int]
    neighbours: Mapped[int]
    """Tokens within the rule's window that hit the theme too."""
    low_fidelity: Mapped[bool]
    fve: Mapped[float | None]
    cos: Mapped[float | None]
    explanation_id: Mapped[int | None] = mapped_column(ForeignKey("explanations.id"))
    """The cited explanation: the best-scoring hitting sample."""
    evidence_text: Mapped[str | None] = mapped_column(ModelText)
    in_reply: Mapped[bool]
    """The target's reply expresses the theme (by the same detectors)."""
    in_prompt: Mapped[bool]
    """The prompt (system and user messages) expresses the theme."""
    visible_message_index: Mapped[int | None]
    visible_evidence: Mapped[str | None] = mapped_column(ModelText)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SQLAFlagTally(Base):
    """How many of a campaign's verdicts on one transcript share a rule (theme version, rule key), a
    checkpoint and an outcome. Written in the same transaction as the verdicts it counts (only the
    rows actually inserted), so flag rates read a few hundred tallies instead of every verdict."""

    __tablename__ = "flag_tallies"
    __table_args__ = (
        UniqueConstraint(
            "campaign_id", "transcript_id", "theme_id", "theme_version", "rule_key", "checkpoint_id", "raised",
            "low_fidelity", "in_reply", "in_prompt", name="uq_flag_tallies__cell",
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    transcript_id: Mapped[int] = mapped_column(ForeignKey("transcripts.id"))
    theme_id: Mapped[str] = mapped_column(String)
    theme_version: Mapped[int]
    rule_key: Mapped[str] = mapped_column(SHA256_HEX)
    checkpoint_id: Mapped[str] = mapped_column(String)
    raised: Mapped[bool]
    low_fidelity: Mapped[bool]
    in_reply: Mapped[bool]
    in_prompt: Mapped[bool]
    count: Mapped[int]
    """Verdicts with exactly these values."""


class SQLAReview(Base):
    """An append-only human decision on a flag; the current state is derived, never updated."""

    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("trim(reason) <> ''", name="reason_given"),
        CheckConstraint("trim(author) <> ''", name="author_given"),
        CheckConstraint(_in("decision", REVIEW_DECISIONS), name="decision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id"), index=True)
    author: Mapped[str] = mapped_column(String)
    decision: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SQLATermReview(Base):
    """An append-only human decision on a discovered term: a lead found without a theme, kept by the
    comparison it was found in (campaign, source, arm against arm). The current state is derived."""

    __tablename__ = "term_reviews"
    __table_args__ = (
        CheckConstraint("trim(reason) <> ''", name="reason_given"),
        CheckConstraint("trim(author) <> ''", name="author_given"),
        CheckConstraint("trim(term) <> ''", name="term_given"),
        CheckConstraint(_in("decision", REVIEW_DECISIONS), name="decision"),
        CheckConstraint(_in("source", DISCOVERY_SOURCES), name="source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"), index=True)
    source: Mapped[str] = mapped_column(String)
    """The documents the term was discovered in: explanations, replies or logit-lens."""
    arm: Mapped[str] = mapped_column(String)
    """The focal arm (the term is over-represented in its documents)."""
    against: Mapped[str] = mapped_column(String)
    """The comparison arm."""
    term: Mapped[str] = mapped_column(String)
    author: Mapped[str] = mapped_column(String)
    decision: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
