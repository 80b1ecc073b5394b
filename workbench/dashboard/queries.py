"""Read-only queries behind the dashboard pages. SQL does the filtering, counting and paging, each
query in one short read transaction (a running campaign is never blocked); rates come from the same
``audits.themes.rates`` functions the reports use, so both show the same numbers."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Select, func, select

from audits.review import OPEN, review_history, with_review_state
from audits.store import (
    SQLAActivation,
    SQLACampaign,
    SQLAExplanation,
    SQLAFlag,
    SQLAMessage,
    SQLAReview,
    SQLARun,
    SQLAThemeScore,
    SQLATokenPosition,
    SQLATranscript,
    SQLATriageScore,
    SQLAVariant,
    Store,
)
from audits.themes.intervals import wilson_interval
from audits.themes.rates import (
    campaign_id_of,
    condition_label,
    current_rules,
    flag_frame,
    flag_rates,
    is_current,
    verdict_counts,
)


def _frame(store: Store, query: Select) -> pd.DataFrame:
    with store.session() as session:
        return pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))


def campaign_table(store: Store) -> pd.DataFrame:
    """One row per campaign: latest run and its status, NLA checkpoint, transcripts, explanations,
    raised and still-open flags."""
    latest = select(SQLARun.campaign_id, func.max(SQLARun.id).label("run_id")).group_by(SQLARun.campaign_id)
    latest = latest.subquery()
    transcripts = (
        select(SQLAVariant.campaign_id, func.count(SQLATranscript.id).label("transcripts"))
        .join(SQLATranscript, SQLATranscript.variant_id == SQLAVariant.id)
        .group_by(SQLAVariant.campaign_id)
        .subquery()
    )
    explanations = (
        select(SQLARun.campaign_id, func.count(SQLAExplanation.id).label("explanations"))
        .join(SQLAExplanation, SQLAExplanation.run_id == SQLARun.id)
        .group_by(SQLARun.campaign_id)
        .subquery()
    )
    reviewed = select(SQLAReview.flag_id).distinct()
    flags = (
        select(
            SQLAFlag.campaign_id, func.count().label("raised"),
            func.count().filter(SQLAFlag.id.not_in(reviewed)).label("unreviewed"),
        )
        .where(SQLAFlag.raised.is_(True))
        .group_by(SQLAFlag.campaign_id)
        .subquery()
    )  # fmt: skip
    run = SQLARun.__table__.alias("latest_run")
    query = (
        select(
            SQLACampaign.id.label("campaign_id"), SQLACampaign.name.label("campaign"), SQLACampaign.description,
            SQLACampaign.created_at, SQLACampaign.spec_json, run.c.status.label("last_run"),
            run.c.started_at.label("last_run_started"), run.c.provenance_json,
            func.coalesce(transcripts.c.transcripts, 0).label("transcripts"),
            func.coalesce(explanations.c.explanations, 0).label("explanations"),
            func.coalesce(flags.c.raised, 0).label("raised_flags"),
            func.coalesce(flags.c.unreviewed, 0).label("unreviewed_flags"),
        )
        .outerjoin(latest, latest.c.campaign_id == SQLACampaign.id)
        .outerjoin(run, run.c.id == latest.c.run_id)
        .outerjoin(transcripts, transcripts.c.campaign_id == SQLACampaign.id)
        .outerjoin(explanations, explanations.c.campaign_id == SQLACampaign.id)
        .outerjoin(flags, flags.c.campaign_id == SQLACampaign.id)
        .order_by(SQLACampaign.created_at.desc(), SQLACampaign.name)
    )  # fmt: skip
    frame = _frame(store, query)
    spec, provenance = frame.pop("spec_json"), frame.pop("provenance_json")
    frame["target"] = [s["target"]["model"] for s in spec]
    frame["checkpoint"] = [
        (p or {}).get("checkpoint_id") or s["nla"]["checkpoint"]
        for s, p in zip(spec, provenance, strict=True)
    ]
    frame["untrained"] = [((p or {}).get("nla_meta") or {}).get("stage") == "init" for p in provenance]
    frame["themes"] = [", ".join(s.get("themes", [])) for s in spec]
    frame["budget_vectors"] = [s.get("budgets", {}).get("max_vectors") for s in spec]
    frame["last_run"] = frame["last_run"].fillna("not run")
    return frame


def campaign_names(store: Store) -> list[str]:
    """Campaign names, newest first."""
    query = select(SQLACampaign.name).order_by(SQLACampaign.created_at.desc(), SQLACampaign.name)
    with store.session() as session:
        return list(session.scalars(query))


def raised_flags(store: Store, campaign: str) -> pd.DataFrame:
    """The campaign's raised flags (current rules) with their review state, strongest first."""
    frame = flag_frame(store, campaign, raised_only=True)
    flags = with_review_state(frame, review_history(store, campaign))
    return flags.sort_values(
        ["score", "agreement", "flag_id"], ascending=[False, False, True], ignore_index=True
    )


@dataclass(frozen=True)
class FlagFilter:
    """What the triage table shows; ``None`` or an empty list means no restriction."""

    themes: list[str]
    scenarios: list[str]
    conditions: list[str]
    visibility: str | None = None
    """``verbalized``, ``unverbalized`` or None."""
    min_fve: float | None = None
    include_low_fidelity: bool = True
    review_states: list[str] | None = None


def filter_flags(flags: pd.DataFrame, f: FlagFilter) -> pd.DataFrame:
    """The rows of ``raised_flags`` that pass the filter."""
    keep = pd.Series(True, index=flags.index)
    for column, allowed in (("theme_id", f.themes), ("scenario_id", f.scenarios), ("condition", f.conditions),
                            ("review_state", f.review_states)):  # fmt: skip
        if allowed:
            keep &= flags[column].isin(allowed)
    if f.visibility is not None:
        keep &= flags["verbalized"] == (f.visibility == "verbalized")
    if f.min_fve is not None:
        keep &= flags["fve"].fillna(float("-inf")) >= f.min_fve
    if not f.include_low_fidelity:
        keep &= ~flags["low_fidelity"]
    return flags[keep]


def campaign_rates(
    store: Store, campaign: str, *, include_low_fidelity: bool, unit: str = "token"
) -> pd.DataFrame:
    """Flag rates per (scenario, theme, variant) with Wilson intervals (the reports' numbers)."""
    return flag_rates(verdict_counts(store, campaign), include_low_fidelity=include_low_fidelity, unit=unit)


def pooled_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """Rates pooled over the variants of each (scenario, theme), with Wilson intervals."""
    pooled = rates.groupby(["scenario_id", "theme_id"], as_index=False)[["k", "n"]].sum()
    pooled["rate"] = pooled["k"] / pooled["n"].where(pooled["n"] > 0)
    pooled["low"], pooled["high"] = wilson_interval(pooled["k"].to_numpy(), pooled["n"].to_numpy(), 0.95)
    return pooled


def transcript_list(store: Store, campaign: str) -> pd.DataFrame:
    """The campaign's transcripts with scenario, condition, status and raised-flag count."""
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
    frame = _frame(store, query)
    frame["condition"] = frame.pop("conditions_json").map(condition_label)
    return frame


def messages(store: Store, transcript_id: int) -> pd.DataFrame:
    """A transcript's messages in order."""
    query = (
        select(SQLAMessage.message_index, SQLAMessage.role, SQLAMessage.content)
        .where(SQLAMessage.transcript_id == transcript_id)
        .order_by(SQLAMessage.message_index)
    )
    return _frame(store, query)


def token_scores(store: Store, campaign: str, transcript_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A transcript's tokens (with their activation and why it was verbalized), and their scores in
    long format: one row per token, theme and ``kind`` (``triage`` z-score or ``flag`` score)."""
    campaign_id = campaign_id_of(store, campaign)
    rules = current_rules(store, campaign_id)
    tokens = _frame(
        store,
        select(
            SQLATokenPosition.id.label("token_position_id"), SQLATokenPosition.position,
            SQLATokenPosition.token_text, SQLATokenPosition.role, SQLATokenPosition.message_index,
            SQLATokenPosition.in_content, SQLATokenPosition.is_special, SQLAActivation.selection,
            SQLAActivation.activation_key,
        )
        .outerjoin(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
        .where(SQLATokenPosition.transcript_id == transcript_id)
        .order_by(SQLATokenPosition.position),
    )  # fmt: skip
    in_transcript = SQLATokenPosition.transcript_id == transcript_id
    triage = _frame(
        store,
        select(SQLATriageScore.token_position_id, SQLATriageScore.theme_id, SQLATriageScore.score)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLATriageScore.token_position_id)
        .where(in_transcript),
    ).assign(kind="triage", raised=False)
    flags = _frame(
        store,
        select(SQLAFlag.token_position_id, SQLAFlag.theme_id, SQLAFlag.score, SQLAFlag.raised)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        .where(in_transcript, SQLAFlag.campaign_id == campaign_id, is_current(rules)),
    ).assign(kind="flag")
    scores = pd.concat([triage, flags], ignore_index=True)
    return tokens.drop_duplicates("token_position_id"), scores


def token_explanations(store: Store, activation_key: str, checkpoint_id: str | None) -> pd.DataFrame:
    """Every explanation sample of one activation (for one checkpoint when given), with fidelity."""
    query = (
        select(
            SQLAExplanation.id.label("explanation_id"), SQLAExplanation.checkpoint_id, SQLAExplanation.sample_index,
            SQLAExplanation.status, SQLAExplanation.text, SQLAExplanation.raw_output, SQLAExplanation.cos,
            SQLAExplanation.fve, SQLAExplanation.n_tokens, SQLAExplanation.finish,
        )
        .where(SQLAExplanation.activation_key == activation_key)
        .order_by(SQLAExplanation.checkpoint_id, SQLAExplanation.sampling_key, SQLAExplanation.sample_index)
    )  # fmt: skip
    if checkpoint_id is not None:
        query = query.where(SQLAExplanation.checkpoint_id == checkpoint_id)
    return _frame(store, query)


def explanation_theme_scores(store: Store, explanation_ids: list[int]) -> pd.DataFrame:
    """Detector scores and evidence spans of the given explanations (newest theme version first)."""
    query = (
        select(
            SQLAThemeScore.explanation_id, SQLAThemeScore.theme_id, SQLAThemeScore.theme_version,
            SQLAThemeScore.detector, SQLAThemeScore.score, SQLAThemeScore.evidence_start,
            SQLAThemeScore.evidence_end, SQLAThemeScore.evidence_text,
        )
        .where(SQLAThemeScore.explanation_id.in_(explanation_ids))
        .order_by(SQLAThemeScore.explanation_id, SQLAThemeScore.theme_id, SQLAThemeScore.theme_version.desc())
    )  # fmt: skip
    return _frame(store, query).drop_duplicates(["explanation_id", "theme_id", "detector"])


def token_flags(store: Store, campaign: str, token_position_id: int) -> pd.DataFrame:
    """The current verdicts on one token, per theme, with the visible-text check."""
    campaign_id = campaign_id_of(store, campaign)
    query = (
        select(
            SQLAFlag.id.label("flag_id"), SQLAFlag.theme_id, SQLAFlag.raised, SQLAFlag.score, SQLAFlag.n_hits,
            SQLAFlag.n_samples, SQLAFlag.low_fidelity, SQLAFlag.fve, SQLAFlag.in_reply, SQLAFlag.in_prompt,
            SQLAFlag.visible_message_index, SQLAFlag.visible_evidence, SQLAFlag.evidence_text,
        )
        .where(SQLAFlag.token_position_id == token_position_id, SQLAFlag.campaign_id == campaign_id,
               is_current(current_rules(store, campaign_id)))
        .order_by(SQLAFlag.theme_id)
    )  # fmt: skip
    return _frame(store, query)


def flag_location(store: Store, flag_id: int) -> tuple[str, int, int] | None:
    """(campaign, transcript id, token position) of a flag, for links to its transcript."""
    query = (
        select(SQLACampaign.name, SQLATokenPosition.transcript_id, SQLATokenPosition.position)
        .join(SQLAFlag, SQLAFlag.campaign_id == SQLACampaign.id)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        .where(SQLAFlag.id == flag_id)
    )
    with store.session() as session:
        row = session.execute(query).first()
    return tuple(row) if row else None


def open_queue(flags: pd.DataFrame, *, include_follow_up: bool) -> pd.DataFrame:
    """Flags awaiting a decision, strongest first: open ones, and follow-ups when asked."""
    states = [OPEN, "follow_up"] if include_follow_up else [OPEN]
    return flags[flags["review_state"].isin(states)]


def fidelity_summary(
    store: Store, campaign: str, checkpoint: str | None = None
) -> dict[str, float | int | str | None]:
    """The NLA checkpoint of a campaign's latest run (its latest run with ``checkpoint`` when given) and
    the fidelity (FVE, cos) of the explanations its runs wrote with that checkpoint."""
    campaign_id = campaign_id_of(store, campaign)
    with store.session() as session:
        runs = session.execute(
            select(SQLARun.id, SQLARun.provenance_json)
            .where(SQLARun.campaign_id == campaign_id)
            .order_by(SQLARun.id.desc())
        ).all()  # fmt: skip
        provenance = next((p for _, p in runs if checkpoint in (None, p.get("checkpoint_id"))), {})
        query = select(
            func.count(), func.count().filter(SQLAExplanation.status == "ok"), func.avg(SQLAExplanation.fve),
            func.avg(SQLAExplanation.cos),
        ).where(SQLAExplanation.run_id.in_([run_id for run_id, _ in runs]))  # fmt: skip
        if checkpoint is not None:
            query = query.where(SQLAExplanation.checkpoint_id == checkpoint)
        row = session.execute(query).one()
    return {
        "checkpoint": provenance.get("checkpoint_id"), "stage": (provenance.get("nla_meta") or {}).get("stage"),
        "layer": (provenance.get("nla_meta") or {}).get("layer"), "explanations": row[0], "parsed": row[1],
        "mean_fve": row[2], "mean_cos": row[3],
    }  # fmt: skip


def comparison_arms(store: Store) -> pd.DataFrame:
    """Every (campaign, NLA checkpoint) pair its runs used, newest run first: ``campaign``,
    ``checkpoint``, its ``stage``, and ``arm`` (``campaign:checkpoint``, a campaign name has no colon)."""
    query = (
        select(SQLACampaign.name.label("campaign"), SQLARun.provenance_json)
        .join(SQLARun, SQLARun.campaign_id == SQLACampaign.id)
        .order_by(SQLARun.id.desc())
    )
    frame = _frame(store, query)
    provenance = frame.pop("provenance_json")
    frame["checkpoint"] = [p.get("checkpoint_id") for p in provenance]
    frame["stage"] = [(p.get("nla_meta") or {}).get("stage") for p in provenance]
    frame["arm"] = frame["campaign"] + ":" + frame["checkpoint"]
    return frame.drop_duplicates("arm", ignore_index=True)


def checkpoint_rates(
    store: Store, campaign: str, checkpoint: str, *, include_low_fidelity: bool, unit: str = "token"
) -> pd.DataFrame:
    """Flag rates of a campaign's verdicts made with one NLA checkpoint (for a campaign whose runs used
    several), by the same ``flag_rates`` as :func:`campaign_rates`."""
    counts = verdict_counts(store, campaign, checkpoint)
    return flag_rates(counts, include_low_fidelity=include_low_fidelity, unit=unit)


def arm_intervals(compared: pd.DataFrame, rates: pd.DataFrame) -> pd.DataFrame:
    """``condition_vs_control`` rows with each arm's own Wilson interval, taken from the ``rates`` they
    compare: ``low`` / ``high`` of the condition cell, ``control_low`` / ``control_high`` of its control."""
    cells = rates[["scenario_id", "theme_id", "condition", "low", "high"]]
    control = rates["is_control"].astype(bool)
    controls = cells[control].rename(
        columns={"condition": "control_condition", "low": "control_low", "high": "control_high"}
    )
    with_main = compared.merge(cells[~control], on=["scenario_id", "theme_id", "condition"], how="left",
                               validate="many_to_one")  # fmt: skip
    return with_main.merge(controls, on=["scenario_id", "theme_id", "control_condition"], how="left",
                           validate="many_to_one")  # fmt: skip


def theme_score_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`explanation_theme_scores` as one row per explanation id and one column per
    ``(theme_id, detector)``."""
    return scores.pivot(index="explanation_id", columns=["theme_id", "detector"], values="score")
