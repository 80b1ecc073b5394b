"""Everything a report shows, read from the store in short transactions: scope and provenance,
flag rates and condition-vs-control differences (the same frames the dashboard reads), the evidence
behind confirmed and unreviewed flags, and what was not run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from audits.campaign_status import CampaignStatus, campaign_status
from audits.review import OPEN, review_history, with_review_state
from audits.scenario_library import Scenario
from audits.store import (
    SQLAActivation,
    SQLACampaign,
    SQLAExplanation,
    SQLAFlag,
    SQLARun,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    Store,
)
from audits.themes.definitions import Theme, load_themes
from audits.themes.rates import condition_vs_control, flag_frame, flag_rates, verdict_counts

EXCERPT_BEFORE, EXCERPT_AFTER = 40, 20
"""Tokens of context shown before and after a flagged token."""


@dataclass(frozen=True)
class Sample:
    """One explanation sample of a flagged token's activation."""

    index: int
    status: str
    text: str
    cos: float | None
    fve: float | None


@dataclass(frozen=True)
class Evidence:
    """A flag with its transcript excerpt, every explanation sample and the review state."""

    flag: dict[str, Any]
    before: str
    token: str
    after: str
    samples: list[Sample]


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
    fidelity: dict[str, float | int | None]
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
    """Verdicts left out of the rates for low fidelity (0 when they are included)."""
    review_counts: dict[str, int] = field(default_factory=dict)

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
    frame = flag_frame(store, campaign)
    history = review_history(store, campaign)
    flags = with_review_state(frame, history)
    raised = flags[flags["raised"].astype(bool)]
    rates = flag_rates(verdict_counts(store, campaign), include_low_fidelity=include_low_fidelity)
    open_ = raised[raised["review_state"].isin([OPEN, "follow_up"])]
    return ReportData(
        campaign=campaign, description=row.description, created_at=row.created_at, generated_at=datetime.now(UTC),
        spec=row.spec_json, spec_hash=row.spec_hash, runs=runs, provenance=provenance, status=status,
        themes={t: load_themes()[t] for t in row.spec_json.get("themes", []) if t in load_themes()},
        fidelity=_fidelity(store, row.id, provenance, row.spec_json["sampling"]["samples"]), rates=rates, comparison=condition_vs_control(rates),
        confirmed=evidence(store, raised[raised["review_state"] == "confirm"]),
        unreviewed=evidence(store, open_) if include_unreviewed else [], unreviewed_count=len(open_),
        dismissed_count=int((raised["review_state"] == "dismiss").sum()), reviewers=sorted(set(history["author"])),
        include_unreviewed=include_unreviewed, include_low_fidelity=include_low_fidelity,
        excluded_low_fidelity=0 if include_low_fidelity else int(frame["low_fidelity"].astype(bool).sum()),
        review_counts=history["decision"].value_counts().to_dict(),
    )  # fmt: skip


def _fidelity(
    store: Store, campaign_id: int, provenance: dict[str, Any], samples: int
) -> dict[str, float | int | None]:
    """FVE and cos of the parsed explanations of this campaign's activations under its latest run's
    checkpoint and sampling (whichever run made them: explanations are shared by content)."""
    keys = (
        select(SQLAActivation.activation_key)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAActivation.token_position_id)
        .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
        .where(SQLAVariant.campaign_id == campaign_id)
    )
    with store.session() as s:
        rows = s.execute(
            select(SQLAExplanation.fve, SQLAExplanation.cos).where(
                SQLAExplanation.activation_key.in_(keys),
                SQLAExplanation.checkpoint_id == provenance.get("checkpoint_id"),
                SQLAExplanation.sampling_key == provenance.get("sampling_key"),
                SQLAExplanation.sample_index < samples,
                SQLAExplanation.status == "ok",
            )
        ).all()
    fve = np.array([r[0] for r in rows if r[0] is not None], dtype=float)
    cos = np.array([r[1] for r in rows if r[1] is not None], dtype=float)
    stats: dict[str, float | int | None] = {"n": len(rows), "fve_known": len(fve)}
    for name, values in (("fve", fve), ("cos", cos)):
        for label, q in (("p10", 10), ("median", 50), ("p90", 90)):
            stats[f"{name}_{label}"] = float(np.percentile(values, q)) if len(values) else None
        stats[f"{name}_mean"] = float(values.mean()) if len(values) else None
    stats["fve_below_zero"] = int((fve < 0).sum())
    return stats


def evidence(store: Store, flags: pd.DataFrame) -> list[Evidence]:
    """Excerpt and every explanation sample (the flag's checkpoint and sampling) for each flag, strongest
    first."""
    out = []
    for flag in flags.sort_values(["score", "agreement"], ascending=False).to_dict("records"):
        with store.session() as s:
            tokens = s.execute(
                select(SQLATokenPosition.position, SQLATokenPosition.token_text)
                .where(
                    SQLATokenPosition.transcript_id == flag["transcript_id"],
                    SQLATokenPosition.message_index == flag["message_index"],
                )
                .order_by(SQLATokenPosition.position)
            ).all()
            samples = (
                s.execute(
                    select(SQLAExplanation)
                    .where(
                        SQLAExplanation.activation_key == flag["activation_key"],
                        SQLAExplanation.checkpoint_id == flag["checkpoint_id"],
                        SQLAExplanation.sampling_key
                        == select(SQLAFlag.sampling_key)
                        .where(SQLAFlag.id == flag["flag_id"])
                        .scalar_subquery(),
                    )
                    .order_by(SQLAExplanation.sample_index)
                )
                .scalars()
                .all()
            )
            rows = [Sample(e.sample_index, e.status, e.text or e.raw_output, e.cos, e.fve) for e in samples]
        at = next(i for i, (p, _) in enumerate(tokens) if p == flag["position"])
        texts = [t for _, t in tokens]
        out.append(
            Evidence(
                flag, "".join(texts[max(0, at - EXCERPT_BEFORE) : at]), texts[at],
                "".join(texts[at + 1 : at + 1 + EXCERPT_AFTER]), rows,
            )
        )  # fmt: skip
    return out
