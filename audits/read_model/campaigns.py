"""Campaigns as lists: the campaigns table (one row per campaign with its counts) and every (campaign,
NLA checkpoint) pair the runs used, for side-by-side comparison."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Select, func, select

from audits.read_model.explanations import explanation_count, nla_setting
from audits.store import (
    SQLAActivation,
    SQLACampaign,
    SQLAFlag,
    SQLAReview,
    SQLARun,
    SQLATranscript,
    SQLAVariant,
    Store,
)
from audits.themes.rates import current_rules, is_current


def frame(store: Store, query: Select) -> pd.DataFrame:
    """A query's rows as a data frame with its column names."""
    with store.session() as session:
        return pd.DataFrame(session.execute(query).all(), columns=list(query.selected_columns.keys()))


def campaign_names(store: Store) -> list[str]:
    """Campaign names, newest first."""
    query = select(SQLACampaign.name).order_by(SQLACampaign.created_at.desc(), SQLACampaign.name)
    with store.session() as session:
        return list(session.scalars(query))


def campaign_table(store: Store) -> pd.DataFrame:
    """One row per campaign, newest first: description, latest run and its status, target, NLA checkpoint,
    transcripts, activations read, distinct vectors, samples per vector, explanations (the campaign's own,
    under its newest checkpoint and sampling, whichever run wrote them), raised and unreviewed flags."""
    latest = select(SQLARun.campaign_id, func.max(SQLARun.id).label("run_id")).group_by(SQLARun.campaign_id)
    latest = latest.subquery()
    transcripts = (
        select(SQLAVariant.campaign_id, func.count(SQLATranscript.id).label("transcripts"))
        .join(SQLATranscript, SQLATranscript.variant_id == SQLAVariant.id)
        .group_by(SQLAVariant.campaign_id)
        .subquery()
    )
    activations = (
        select(
            SQLAActivation.campaign_id, func.count().label("activations"),
            func.count(SQLAActivation.activation_key.distinct()).label("vectors"),
        )
        .group_by(SQLAActivation.campaign_id)
        .subquery()
    )  # fmt: skip
    run = SQLARun.__table__.alias("latest_run")
    query = (
        select(
            SQLACampaign.id.label("campaign_id"), SQLACampaign.name.label("campaign"), SQLACampaign.description,
            SQLACampaign.created_at, SQLACampaign.spec_json, run.c.status.label("last_run"),
            run.c.started_at.label("last_run_started"), run.c.provenance_json,
            func.coalesce(transcripts.c.transcripts, 0).label("transcripts"),
            func.coalesce(activations.c.activations, 0).label("activations"),
            func.coalesce(activations.c.vectors, 0).label("vectors"),
        )
        .outerjoin(latest, latest.c.campaign_id == SQLACampaign.id)
        .outerjoin(run, run.c.id == latest.c.run_id)
        .outerjoin(transcripts, transcripts.c.campaign_id == SQLACampaign.id)
        .outerjoin(activations, activations.c.campaign_id == SQLACampaign.id)
        .order_by(SQLACampaign.created_at.desc(), SQLACampaign.name)
    )  # fmt: skip
    table = frame(store, query)
    spec, provenance = table.pop("spec_json"), table.pop("provenance_json")
    table["target"] = [s["target"]["model"] for s in spec]
    table["checkpoint"] = [
        (p or {}).get("checkpoint_id") or s["nla"]["checkpoint"] for s, p in zip(spec, provenance, strict=True)
    ]
    table["untrained"] = [((p or {}).get("nla_meta") or {}).get("stage") == "init" for p in provenance]
    table["themes"] = [", ".join(s.get("themes", [])) for s in spec]
    table["budget_vectors"] = [s.get("budgets", {}).get("max_vectors") for s in spec]
    table["last_run"] = table["last_run"].fillna("not run")
    settings = [nla_setting(store, name) for name in table["campaign"]]
    table["samples"] = [s.samples for s in settings]
    table["explanations"] = [explanation_count(store, s) for s in settings]
    counts = [_flag_counts(store, int(i)) for i in table["campaign_id"]]
    table["raised_flags"] = [raised for raised, _ in counts]
    table["unreviewed_flags"] = [unreviewed for _, unreviewed in counts]
    return table


def _flag_counts(store: Store, campaign_id: int) -> tuple[int, int]:
    """Raised flags under the current rules, and how many of them no reviewer has decided on."""
    rules = current_rules(store, campaign_id)
    reviewed = select(SQLAReview.flag_id).distinct()
    query = select(func.count(), func.count().filter(SQLAFlag.id.not_in(reviewed))).where(
        SQLAFlag.campaign_id == campaign_id, SQLAFlag.raised.is_(True), is_current(rules)
    )
    with store.session() as session:
        raised, unreviewed = session.execute(query).one()
    return int(raised), int(unreviewed)


def comparison_arms(store: Store) -> pd.DataFrame:
    """Every (campaign, NLA checkpoint) pair its runs used, newest run first: ``campaign``, ``checkpoint``,
    its ``stage``, and ``arm`` (``campaign:checkpoint``, a campaign name has no colon)."""
    query = (
        select(SQLACampaign.name.label("campaign"), SQLARun.provenance_json)
        .join(SQLARun, SQLARun.campaign_id == SQLACampaign.id)
        .order_by(SQLARun.id.desc())
    )
    arms = frame(store, query)
    provenance = arms.pop("provenance_json")
    arms["checkpoint"] = [p.get("checkpoint_id") for p in provenance]
    arms["stage"] = [(p.get("nla_meta") or {}).get("stage") for p in provenance]
    arms["arm"] = arms["campaign"] + ":" + arms["checkpoint"]
    return arms.drop_duplicates("arm", ignore_index=True)
