"""Discovered terms as leads to review: a discovery table (``audits.discovery``) with, per term, its standing
in the other two channels (is the same term over-represented in the visible replies? in the logit lens?)
and its review state in that comparison. The Discover and Review pages and the report's discovery section
all read it, so what a reviewer decides and what the report says cannot disagree.

A term the NLA's explanations carry while the visible replies do not is what an NLA is for (the model's
text hides it); a term the replies carry as well is read from the text, not discovered; a term the logit
lens carries too has a second, independent reading of the same activations behind it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from audits.discovery import SOURCES, Discovery, discover
from audits.review import OPEN, term_review_history, term_states
from audits.store import Store

SUPPORT_TOP = 200
"""How deep the other channels' rankings are searched for a listed term."""
CHANNEL_LABELS = {
    "explanations": "NLA explanations",
    "replies": "visible replies",
    "logit-lens": "logit lens",
}


@dataclass(frozen=True)
class Leads:
    """One comparison's discovered terms with their support in the other channels and their review state."""

    discovery: Discovery
    table: pd.DataFrame = field(repr=False)
    """``discovery.table`` plus ``z_<source>`` for each other source (None where the term is not
    over-represented there), ``review_state`` (``open`` or the latest decision), ``reviewer``,
    ``review_reason``."""
    other_sources: list[str] = field(default_factory=list)

    def open_terms(self, *, include_follow_up: bool = False) -> pd.DataFrame:
        """The rows no reviewer has decided on (and those marked for follow-up, when asked), strongest first."""
        states = [OPEN, "follow_up"] if include_follow_up else [OPEN]
        return self.table[self.table["review_state"].isin(states)]

    def supported_by(self, term: str) -> list[str]:
        """The other sources in which ``term`` is over-represented too (same arms)."""
        row = self.table[self.table["term"] == term]
        if row.empty:
            return []
        return [src for src in self.other_sources if pd.notna(row.iloc[0][f"z_{src}"])]

    def restated(self, history: pd.DataFrame) -> Leads:
        """The same terms with review states from ``history`` (``term_review_history``): decisions change
        nothing discovery computed, so a cached discovery is re-stated, not recomputed."""
        d = self.discovery
        table = self.table.drop(columns=["review_state", "reviewer", "review_reason"])
        return Leads(
            d, term_states(table, history, source=d.source, arm=d.arm, against=d.against), self.other_sources
        )

    def counts(self) -> dict[str, int]:
        """Listed terms by review state."""
        return {str(k): int(v) for k, v in self.table["review_state"].value_counts().items()}


def leads(
    store: Store,
    campaign: str,
    *,
    arm: str | None = None,
    against: str | None = None,
    source: str = "explanations",
    positions: str = "all",
    top: int = 20,
    include_low_fidelity: bool = False,
    history: pd.DataFrame | None = None,
) -> Leads:
    """The ``top`` terms of ``source`` for ``arm`` against ``against`` (``discover``'s defaults), each with
    its z in the other sources and its review state (from ``history``, else read now)."""
    found = discover(store, campaign, arm=arm, against=against, source=source, positions=positions, top=top,
                     include_low_fidelity=include_low_fidelity)  # type: ignore[arg-type]  # fmt: skip
    table = found.table.copy()
    others = [src for src in SOURCES if src != source]
    for other in others:
        if table.empty:
            table[f"z_{other}"] = pd.Series(dtype=float)
            continue
        check = discover(store, campaign, arm=found.arm, against=found.against, source=other,  # type: ignore[arg-type]
                         positions=positions if other != "replies" else "all", top=SUPPORT_TOP,
                         include_low_fidelity=include_low_fidelity)  # fmt: skip
        z = dict(zip(check.table["term"], check.table["z"], strict=True))
        table[f"z_{other}"] = [z.get(t) for t in table["term"]]
    history = term_review_history(store, campaign) if history is None else history
    table = term_states(table, history, source=source, arm=found.arm, against=found.against)
    return Leads(found, table.reset_index(drop=True), others)
