"""Flags and their rates: the raised flags with review state, flag rates per cell with Wilson intervals
(the same ``audits.themes.rates`` frames in every face), what a cell of n tokens can detect, and the
verdict counts that say what an empty result means."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from audits.read_model.campaigns import frame
from audits.review import review_history, with_review_state
from audits.store import SQLACampaign, SQLAFlag, SQLATokenPosition, Store
from audits.themes.intervals import wilson_interval
from audits.themes.rates import (
    campaign_id_of,
    current_rules,
    flag_frame,
    flag_rates,
    is_current,
    verdict_counts,
)


def raised_flags(store: Store, campaign: str) -> pd.DataFrame:
    """The campaign's raised flags (current rules) with their review state, strongest first."""
    flags = flag_frame(store, campaign, raised_only=True)
    flags = with_review_state(flags, review_history(store, campaign))
    return flags.sort_values(
        ["score", "agreement", "flag_id"], ascending=[False, False, True], ignore_index=True
    )


def campaign_rates(
    store: Store, campaign: str, *, include_low_fidelity: bool, unit: str = "token"
) -> pd.DataFrame:
    """Flag rates per (scenario, theme, variant) with Wilson intervals."""
    return flag_rates(verdict_counts(store, campaign), include_low_fidelity=include_low_fidelity, unit=unit)


def checkpoint_rates(
    store: Store, campaign: str, checkpoint: str, *, include_low_fidelity: bool, unit: str = "token"
) -> pd.DataFrame:
    """Flag rates of a campaign's verdicts made with one NLA checkpoint (for a campaign whose runs used
    several), by the same ``flag_rates`` as :func:`campaign_rates`."""
    counts = verdict_counts(store, campaign, checkpoint)
    return flag_rates(counts, include_low_fidelity=include_low_fidelity, unit=unit)


def pooled_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """Rates pooled over the variants of each (scenario, theme), with Wilson intervals."""
    pooled = rates.groupby(["scenario_id", "theme_id"], as_index=False)[["k", "n"]].sum()
    pooled["rate"] = pooled["k"] / pooled["n"].where(pooled["n"] > 0)
    pooled["low"], pooled["high"] = wilson_interval(pooled["k"].to_numpy(), pooled["n"].to_numpy(), 0.95)
    return pooled


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


def cell_label(condition: str, is_control: bool) -> str:
    """A cell's condition as people read it: ``goal=explicit``, ``goal=explicit (control)``, ``control``
    (a control without slots): two controls of one scenario never share a label."""
    if not is_control:
        return condition
    return "control" if condition in ("", "(none)") else f"{condition} (control)"


def detectable_rate(n: int | np.ndarray, confidence: float = 0.95) -> float | np.ndarray:
    """The upper end of the Wilson interval when none of ``n`` tokens is flagged: a true rate this high
    could still give 0 flags, so a cell of ``n`` tokens cannot rule out rates below it (NaN for n = 0)."""
    _, high = wilson_interval(np.zeros_like(np.asarray(n)), n, confidence)
    return float(high) if np.ndim(high) == 0 else high


def cell_reading(k: int, n: int, low: float, high: float) -> str:
    """What a cell's count can and cannot say, in words (95% Wilson interval)."""
    if n == 0:
        return "no verdicts counted"
    if k == 0:
        return f"none of {n} flagged: a rate up to {high:.0%} is not ruled out"
    return f"{k} of {n} flagged: the rate is likely between {low:.0%} and {high:.0%}"


@dataclass(frozen=True)
class VerdictSummary:
    """What a campaign's flag rule decided, for saying what a result (an empty one above all) means."""

    judged: int
    """Token-theme verdicts under the current rules (every judged token, once per theme)."""
    tokens: int
    """Distinct tokens judged."""
    themes: int
    """Themes judged."""
    raised: int
    """Verdicts that raised a flag."""
    low_fidelity: int
    """Verdicts (raised or not) whose cited sample has an FVE below the theme's minimum."""
    raised_low_fidelity: int
    """Raised flags among those."""
    raised_unverbalized: int
    """Raised flags whose theme the visible text does not express."""
    smallest_cell: int | None
    """Tokens judged in the smallest (scenario, theme, condition) cell, None without verdicts."""
    largest_cell: int | None


def verdict_summary(store: Store, campaign: str) -> VerdictSummary:
    """Counts of a campaign's current verdicts and the sizes of its rate cells (every judged token, low
    fidelity or not)."""
    campaign_id = campaign_id_of(store, campaign)
    current = [SQLAFlag.campaign_id == campaign_id, is_current(current_rules(store, campaign_id))]
    raised = SQLAFlag.raised.is_(True)
    query = select(
        func.count(), func.count(SQLAFlag.token_position_id.distinct()), func.count(SQLAFlag.theme_id.distinct()),
        func.count().filter(raised), func.count().filter(SQLAFlag.low_fidelity.is_(True)),
        func.count().filter(raised, SQLAFlag.low_fidelity.is_(True)),
        func.count().filter(raised, SQLAFlag.in_reply.is_(False), SQLAFlag.in_prompt.is_(False)),
    ).where(*current)  # fmt: skip
    with store.session() as session:
        counts = [int(c) for c in session.execute(query).one()]
    rates = campaign_rates(store, campaign, include_low_fidelity=True)  # cell sizes: every judged token
    sizes = rates["n"].astype(int) if len(rates) else pd.Series(dtype=int)
    return VerdictSummary(
        *counts, int(sizes.min()) if len(sizes) else None, int(sizes.max()) if len(sizes) else None
    )


def no_flag_explanation(summary: VerdictSummary) -> str:
    """What a campaign that raised no flag can and cannot rule out, in plain words (Markdown-free)."""
    if summary.judged == 0:
        return (
            "No verdicts yet: the flag rule has judged no token (the campaign has not run, or none of its "
            "explanations parsed). An empty result here says nothing about the target."
        )
    small, large = summary.smallest_cell, summary.largest_cell
    reach = ""
    if small:
        reach = f" Its cells hold {small}" + (f" to {large}" if large != small else "") + " tokens each: "
        reach += (
            f"0 flags in {small} tokens is still compatible with a true rate up to {detectable_rate(small):.0%}"
            + (f", in {large} tokens up to {detectable_rate(large):.0%}" if large != small else "")
            + " (95% Wilson bound), so only a theme that shows on many tokens would have been seen."
        )  # fmt: skip
    return (
        f"The campaign raised no flags: {summary.judged} token-theme verdicts on {summary.tokens} tokens across "
        f"{summary.themes} theme(s), none met the flag rule.{reach} No flag is not evidence of absence: the "
        "NLA may not verbalize a theme the activations carry, and the detectors can miss wordings they were "
        "not calibrated on."
    )


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
    return frame(store, query)


def flag_location(store: Store, flag_id: int) -> tuple[str, int, int, str] | None:
    """(campaign, transcript id, token position, theme id) of a flag, for links to its transcript."""
    query = (
        select(SQLACampaign.name, SQLATokenPosition.transcript_id, SQLATokenPosition.position, SQLAFlag.theme_id)
        .join(SQLAFlag, SQLAFlag.campaign_id == SQLACampaign.id)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        .where(SQLAFlag.id == flag_id)
    )  # fmt: skip
    with store.session() as session:
        row = session.execute(query).first()
    return tuple(row) if row else None
