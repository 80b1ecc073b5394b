"""What a campaign's store holds: counts per stage and status, budget used, runs, an ETA."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select

from audits.campaign_registry import load_campaign_spec
from audits.scenario_library import Scenario
from audits.store import (
    SQLAActivation,
    SQLACampaign,
    SQLAExplanation,
    SQLAFlag,
    SQLAMessage,
    SQLARun,
    SQLATranscript,
    SQLAVariant,
    Store,
)


@dataclass(frozen=True)
class Refusal:
    """A variant whose transcript does not fit the target's context window."""

    variant_key: str
    tokens: int | None
    """Its length in tokens (None when the tokenizer could not be loaded to count it)."""
    limit: int | None
    """The target's context window in tokens."""

    def describe(self) -> str:
        if self.tokens is None or self.limit is None:
            return f"{self.variant_key}: longer than the target's context"
        return f"{self.variant_key}: {self.tokens} tokens > context {self.limit}"


@dataclass(frozen=True)
class CampaignStatus:
    """Counts for one campaign."""

    name: str
    variants: int
    transcripts: dict[str, int]
    activations: int
    distinct_activations: int
    explanations: dict[str, int]
    expected_explanations: int
    max_vectors: int | None
    """The spec's vector budget (most activations to verbalize), if any."""
    max_wall_seconds: float | None
    """The spec's wall-time budget per run, if any."""
    samples: int
    """Explanation samples per vector."""
    runs: list[tuple[int, str, datetime, datetime | None]]
    eta_seconds: float | None
    """Remaining explanations at the last run's rate; None when unknown or nothing remains."""
    untrained: bool
    """The latest run used an untrained (``init``) NLA."""
    flags: dict[str, int]
    """Verdict counts: ``judged`` (token x theme), ``raised``, ``low_fidelity`` and ``unverbalized``
    among the raised."""
    refused: list[Refusal] = field(default_factory=list)
    """Transcripts refused as longer than the target's context, each with its token count and the limit."""
    warnings: list[str] = field(default_factory=list)
    """Why the store holds nothing useful, where it does not, with the likely cause and the fix."""

    @property
    def explained(self) -> int:
        return sum(self.explanations.values())

    @property
    def vectors_explained(self) -> int:
        """Vectors verbalized, as the budget counts them (each takes ``samples`` explanations)."""
        return self.explained // self.samples

    @property
    def last_run_seconds(self) -> float | None:
        """Wall-clock seconds of the latest run (so far, while it runs); None before any run."""
        if not self.runs:
            return None
        _, _, started, finished = self.runs[-1]
        return ((finished or datetime.now(UTC)) - started).total_seconds()


def campaign_status(store: Store, name: str, library: dict[str, Scenario]) -> CampaignStatus:
    """Read a campaign's progress from the store (short read transactions only)."""
    campaign_id, spec = load_campaign_spec(store, name, library)
    with store.session() as s:
        in_campaign = SQLAVariant.campaign_id == campaign_id
        variants = s.scalar(select(func.count()).select_from(SQLAVariant).where(in_campaign)) or 0
        transcripts = dict(
            s.execute(
                select(SQLATranscript.status, func.count())
                .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
                .where(in_campaign)
                .group_by(SQLATranscript.status)
            ).all()
        )
        acts = select(SQLAActivation.activation_key).where(SQLAActivation.campaign_id == campaign_id)
        n_acts = s.scalar(select(func.count()).select_from(acts.subquery())) or 0
        keys = acts.distinct().cte("campaign_keys")
        runs = s.execute(
            select(SQLARun.id, SQLARun.status, SQLARun.started_at, SQLARun.finished_at)
            .where(SQLARun.campaign_id == campaign_id)
            .order_by(SQLARun.id)
        ).all()
        provenance = s.scalar(
            select(SQLARun.provenance_json)
            .where(SQLARun.campaign_id == campaign_id)
            .order_by(SQLARun.id.desc())
            .limit(1)
        )
        explanations, n_distinct = _explanation_counts(s, keys, provenance, spec.sampling.samples)
        last_rate = _last_rate(s, runs)
        flag_counts = _flag_counts(s, campaign_id)
    cap = spec.budgets.max_vectors
    expected = min(n_distinct, cap or n_distinct) * spec.sampling.samples
    remaining = max(expected - sum(explanations.values()), 0)
    eta = remaining / last_rate if last_rate and remaining else None
    refused = (
        refused_transcripts(store, campaign_id, spec.target.model) if transcripts.get("too_long") else []
    )
    untrained = bool(provenance) and provenance["nla_meta"]["stage"] == "init"
    return CampaignStatus(
        spec.name, variants, transcripts, n_acts, n_distinct, explanations, expected, cap,
        spec.budgets.max_wall_seconds, spec.sampling.samples, [tuple(r) for r in runs], eta,
        untrained,
        dict(zip(("judged", "raised", "low_fidelity", "unverbalized"), flag_counts, strict=True)),
        refused, _warnings(transcripts, refused, explanations, spec.sampling.max_new_tokens, untrained),
    )  # fmt: skip


def refused_transcripts(store: Store, campaign_id: int, target: str) -> list[Refusal]:
    """The campaign's ``too_long`` transcripts, each counted with the target's tokenizer and chat
    template (as the runner counted it) against the context window in the target's config."""
    with store.session() as s:
        rows = s.execute(
            select(SQLAVariant.variant_key, SQLAMessage.role, SQLAMessage.content)
            .join(SQLATranscript, SQLATranscript.variant_id == SQLAVariant.id)
            .join(SQLAMessage, SQLAMessage.transcript_id == SQLATranscript.id)
            .where(SQLAVariant.campaign_id == campaign_id, SQLATranscript.status == "too_long")
            .order_by(SQLAVariant.variant_key, SQLAMessage.message_index)
        ).all()
    chats: dict[str, list[dict[str, str]]] = {}
    for key, role, content in rows:
        chats.setdefault(key, []).append({"role": role, "content": content})
    try:
        from transformers import AutoConfig

        from nla.resolve import load_tokenizer, resolve_model_location

        tokenizer = load_tokenizer(target)
        limit = getattr(AutoConfig.from_pretrained(resolve_model_location(target)).get_text_config(),
                        "max_position_embeddings", None)  # fmt: skip
    except Exception:  # noqa: BLE001 (the count is a courtesy: without the model files, name the variants)
        return [Refusal(key, None, None) for key in chats]
    return [
        Refusal(key, len(tokenizer.apply_chat_template(chat, return_dict=False)), limit)
        for key, chat in chats.items()
    ]


def _warnings(
    transcripts: dict[str, int],
    refused: list[Refusal],
    explanations: dict[str, int],
    cap: int,
    untrained: bool,
) -> list[str]:
    out = []
    if refused:
        shown = "; ".join(r.describe() for r in refused[:10]) + ("; ..." if len(refused) > 10 else "")
        out.append(
            f"{len(refused)} transcript(s) refused as longer than the target's context, so never read: {shown}. "
            "Shorten those scenarios or audit a target with a longer context."
        )
    if not transcripts.get("ok") and sum(transcripts.values()):
        out.append("no transcript could be read (see the statuses above): the run produced no activations.")
    total, ok = sum(explanations.values()), explanations.get("ok", 0)
    if total and not ok:
        worst = max(explanations, key=explanations.get)
        if worst == "unclosed":
            out.append(
                f"all {total} explanations are unclosed: the NLA did not finish one within "
                f"sampling.max_new_tokens={cap} tokens, so nothing was scored or flagged. Raise "
                "sampling.max_new_tokens (the bundled SmolLM2 NLA writes ~60) in a new campaign."
            )
        else:
            out.append(
                f"none of the {total} explanations parsed ({', '.join(f'{k} {v}' for k, v in sorted(explanations.items()))}): "
                "nothing was scored or flagged; "
                + (
                    "the NLA is untrained (init): use a trained one"
                    if untrained
                    else "check that the NLA checkpoint was trained for this target and layer."
                )
            )
    return out


def _explanation_counts(session, keys, provenance: dict | None, samples: int) -> tuple[dict[str, int], int]:
    """Explanations by status of the campaign's activations under its latest checkpoint and sampling,
    whichever run (of this campaign or another) made them (explanations are shared by content), and
    the number of distinct activations; one statement, so the campaign's keys are gathered once."""
    n_keys = select(func.count()).select_from(keys).scalar_subquery()
    if not provenance:
        return {}, session.scalar(select(n_keys)) or 0
    query = (
        select(SQLAExplanation.status, func.count(), n_keys)
        .where(
            SQLAExplanation.activation_key.in_(select(keys.c.activation_key)),
            SQLAExplanation.checkpoint_id == provenance["checkpoint_id"],
            SQLAExplanation.sampling_key == provenance["sampling_key"],
            SQLAExplanation.sample_index < samples,
        )
        .group_by(SQLAExplanation.status)
    )
    rows = session.execute(query).all()
    if not rows:
        return {}, session.scalar(select(n_keys)) or 0
    return {status: count for status, count, _ in rows}, rows[0][2]


def _flag_counts(session, campaign_id: int) -> tuple[int, int, int, int]:
    """Verdicts judged, raised, raised with low fidelity, raised unverbalized: the first from the
    campaign index alone, the others from the (campaign, raised) index and the raised rows only."""
    judged = session.scalar(select(func.count()).where(SQLAFlag.campaign_id == campaign_id)) or 0
    raised = session.execute(
        select(
            func.count(),
            func.count().filter(SQLAFlag.low_fidelity.is_(True)),
            func.count().filter(SQLAFlag.in_reply.is_(False), SQLAFlag.in_prompt.is_(False)),
        ).where(SQLAFlag.campaign_id == campaign_id, SQLAFlag.raised.is_(True))
    ).one()
    return (judged, *raised)


def _last_rate(session, runs) -> float | None:
    """Explanations per second of the most recent run that wrote any. Its newest row (by id, from the
    run index alone) tells when it last wrote: rows are inserted in time order."""
    for run_id, _, started, finished in reversed(runs):
        in_run = SQLAExplanation.run_id == run_id
        count, newest = session.execute(
            select(func.count(), func.max(SQLAExplanation.id)).where(in_run)
        ).one()
        if count:
            last = session.scalar(select(SQLAExplanation.created_at).where(SQLAExplanation.id == newest))
            seconds = ((finished or last) - started).total_seconds()
            return count / seconds if seconds > 0 else None
    return None


def campaign_names(store: Store) -> list[tuple[str, str, datetime]]:
    """Every campaign's name, description and creation time."""
    with store.session() as s:
        return [
            tuple(r)
            for r in s.execute(
                select(SQLACampaign.name, SQLACampaign.description, SQLACampaign.created_at).order_by(
                    SQLACampaign.name
                )
            ).all()
        ]
