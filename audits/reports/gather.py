"""Everything a report shows, read through the read model (``audits.read_model``, the queries the
dashboard reads too): scope and provenance, the fidelity of the campaign's explanations, flag rates and
condition-vs-control differences, the verdict counts, the evidence behind confirmed and unreviewed flags,
and what was not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select

from audits.campaign_spec import CampaignSpec
from audits.campaign_status import CampaignStatus, campaign_status
from audits.discovery import Discovery
from audits.errors import SpecError
from audits.read_model.explanations import Fidelity, fidelity_summary
from audits.read_model.flags import VerdictSummary, campaign_rates, raised_flags, verdict_summary
from audits.read_model.leads import Leads, leads
from audits.read_model.transcripts import Evidence, Sample, evidence
from audits.review import OPEN, review_history
from audits.scenario_library import Scenario
from audits.store import SQLACampaign, SQLARun, Store
from audits.themes.definitions import Theme, load_themes
from audits.themes.rates import condition_vs_control

__all__ = ["Evidence", "ReportData", "Sample", "gather"]


@dataclass
class ReportData:
    """The content of one campaign report."""

    campaign: str
    description: str
    created_at: datetime
    generated_at: datetime
    spec: dict[str, Any]
    spec_hash: str
    runs: list[dict[str, Any]]
    provenance: dict[str, Any]
    status: CampaignStatus
    themes: dict[str, Theme]
    fidelity: Fidelity
    """Status counts and FVE / cos of the campaign's explanations (its activations under its NLA setting)."""
    rates: pd.DataFrame
    comparison: pd.DataFrame
    confirmed: list[Evidence]
    unreviewed: list[Evidence]
    unreviewed_count: int
    dismissed_count: int
    reviewers: list[str]
    include_unreviewed: bool
    include_low_fidelity: bool
    excluded_low_fidelity: int
    """Verdicts (raised or not) left out of the rates for low fidelity (0 when they are included)."""
    verdicts: VerdictSummary
    """What the flag rule judged: verdicts, tokens, raised, low-fidelity, cell sizes."""
    review_counts: dict[str, int] = field(default_factory=dict)
    leads: list[Leads] = field(default_factory=list)
    """For a campaign with target arms: each arm's explanations against the control arm's (discovery), with
    each term's standing in the other channels and its review state."""

    @property
    def discoveries(self) -> list[Discovery]:
        """The discovery tables behind ``leads``."""
        return [lead.discovery for lead in self.leads]

    @property
    def untrained(self) -> bool:
        """The campaign's NLA is an untrained ``init`` one."""
        return self.status.untrained


def gather(
    store: Store,
    campaign: str,
    library: dict[str, Scenario],
    *,
    include_unreviewed: bool = False,
    include_low_fidelity: bool = False,
) -> ReportData:
    """Read one campaign's report content from the store."""
    status = campaign_status(store, campaign, library)
    with store.session() as s:
        row = s.scalar(select(SQLACampaign).where(SQLACampaign.name == campaign))
        runs = [
            {"id": r.id, "status": r.status, "started_at": r.started_at, "finished_at": r.finished_at,
             "executor": r.executor}
            for r in s.scalars(select(SQLARun).where(SQLARun.campaign_id == row.id).order_by(SQLARun.id))
        ]  # fmt: skip
        provenance = (
            s.scalar(
                select(SQLARun.provenance_json)
                .where(SQLARun.campaign_id == row.id)
                .order_by(SQLARun.id.desc())
                .limit(1)
            )
            or {}
        )
    history = review_history(store, campaign)
    raised = raised_flags(store, campaign)
    rates = campaign_rates(store, campaign, include_low_fidelity=include_low_fidelity)
    verdicts = verdict_summary(store, campaign)
    open_ = raised[raised["review_state"].isin([OPEN, "follow_up"])]
    return ReportData(
        campaign=campaign, description=row.description, created_at=row.created_at, generated_at=datetime.now(UTC),
        spec=row.spec_json, spec_hash=row.spec_hash, runs=runs, provenance=provenance, status=status,
        themes={t: load_themes()[t] for t in row.spec_json.get("themes", []) if t in load_themes()},
        fidelity=fidelity_summary(store, campaign), rates=rates, comparison=condition_vs_control(rates),
        confirmed=evidence(store, raised[raised["review_state"] == "confirm"]),
        unreviewed=evidence(store, open_) if include_unreviewed else [], unreviewed_count=len(open_),
        dismissed_count=int((raised["review_state"] == "dismiss").sum()), reviewers=sorted(set(history["author"])),
        include_unreviewed=include_unreviewed, include_low_fidelity=include_low_fidelity,
        excluded_low_fidelity=0 if include_low_fidelity else verdicts.low_fidelity, verdicts=verdicts,
        review_counts={str(k): int(v) for k, v in history["decision"].value_counts().items()},
        leads=discovered(store, campaign, row.spec_json, include_low_fidelity=include_low_fidelity),
    )  # fmt: skip


DISCOVERY_TOP = 15
"""Terms listed per arm in the report's discovery table."""


def discovered(
    store: Store, campaign: str, spec: dict[str, Any], *, include_low_fidelity: bool
) -> list[Leads]:
    """Each non-control arm's explanations against the control arm's (``campaign discover``'s numbers, with
    the other channels and the reviewers' decisions); none for a single-target campaign or one whose arms
    have not run."""
    parsed = CampaignSpec.model_validate(spec)
    control = parsed.control()
    if control is None:
        return []
    out = []
    for arm in parsed.arms:
        if arm == control:
            continue
        try:
            out.append(leads(store, campaign, arm=arm, against=control, top=DISCOVERY_TOP,
                             include_low_fidelity=include_low_fidelity))  # fmt: skip
        except SpecError:  # an arm that has not run yet has no documents to compare
            continue
    return out
