"""What the Triage and Review pages show of a campaign's raised flags: sidebar filters over the frame the
read model returns (``audits.read_model.flags.raised_flags``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from audits.review import OPEN


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


def open_queue(flags: pd.DataFrame, *, include_follow_up: bool) -> pd.DataFrame:
    """Flags awaiting a decision, strongest first: open ones, and follow-ups when asked."""
    states = [OPEN, "follow_up"] if include_follow_up else [OPEN]
    return flags[flags["review_state"].isin(states)]
