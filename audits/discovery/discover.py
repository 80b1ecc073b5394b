"""Open-ended discovery: the terms one arm's documents use far more than another arm's.

Theme flags only find what someone wrote a theme for. Discovery asks instead "what do the explanations
say on this arm that they do not say on its control?": terms (``audits.discovery.terms``: words and
two-word phrases, counted once per document, stop words and the comparison arm's scaffolding removed)
ranked by the weighted log-odds ratio with an informative Dirichlet prior, z-scored (Monroe, Colaresi &
Quinn 2008; ``audits.discovery.keyness``). Only terms carried by at least ``min_transcripts`` transcripts
of the focal arm rank, so one odd transcript cannot lead the list. The same statistic runs over the
visible replies and over the logit lens, the channels an explanation's term should be checked against.

Each ranked term comes with its counts per arm, how many transcripts carry it, in how many of those the
visible text (prompt or reply) contains it, in how many of its tokens the logit lens shows it, and the
ids of the explanations that carry it: the evidence to open beside it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from audits.discovery.corpus import Positions, Source, documents
from audits.discovery.keyness import log_odds_z
from audits.discovery.terms import document_frequencies, mentions_term, scaffolding
from audits.errors import SpecError
from audits.store import Store

GROUPS = {"all": ("before_reply", "in_reply"), "before-reply": ("before_reply",), "in-reply": ("in_reply",)}
TABLE = ["term", "z", "delta", "count", "count_other", "share", "share_other", "transcripts", "visible", "lens",
         "explanation_ids"]  # fmt: skip


@dataclass(frozen=True)
class Discovery:
    """The ranked terms of one arm against another, with what they were computed from."""

    campaign: str
    source: str
    positions: str
    arm: str
    against: str
    n_docs: int
    """Documents of the focal arm in the comparison."""
    n_docs_other: int
    n_transcripts: int
    n_transcripts_other: int
    scaffolding: list[str]
    """Terms dropped as the comparison arm's fixed phrasing."""
    table: pd.DataFrame = field(repr=False)
    """Columns ``TABLE``, strongest first; ``visible`` and ``lens`` count carrying transcripts / tokens."""
    evidence: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    """The focal arm's documents that carry each listed term: ``term``, ``doc_id``, ``transcript_id``,
    ``position``, ``text``, ``fve`` (what to open beside a term)."""
    arms: list[str] = field(default_factory=list)
    """Every arm of the campaign."""
    low_fidelity_excluded: dict[str, int] = field(default_factory=dict)
    """Arm -> explanations left out because their FVE is below the minimum (empty when they were kept)."""

    def standing(self, term: str) -> dict | None:
        """A listed term's row, as a dict (None when the term is not listed)."""
        rows = self.table[self.table["term"] == term]
        return None if rows.empty else rows.iloc[0].to_dict()

    @property
    def empty_reason(self) -> str | None:
        """Why the table is empty, in words; None when it is not."""
        if not self.table.empty:
            return None
        if self.n_docs == 0 or self.n_docs_other == 0:
            which = self.arm if self.n_docs == 0 else self.against
            low = self.low_fidelity_excluded.get(which, 0)
            if low:
                return (f"arm {which!r} has no {self.source} documents in positions {self.positions} above the "
                        f"fidelity gate: {low} explanations were left out as low-fidelity (FVE below the minimum); "
                        "include them to read them anyway")  # fmt: skip
            return (f"arm {which!r} has no {self.source} documents in positions {self.positions} "
                    "(not run yet, every explanation unparsed, or no such tokens)")  # fmt: skip
        return "no term is over-represented in at least two transcripts of the focal arm"


def arm_choice(arms: list[str], control: str | None, arm: str | None, against: str | None) -> tuple[str, str]:
    """The focal and comparison arms: as given, else the first arm that is not the control against it."""
    against = against or control or ("control" if "control" in arms else None)
    if against is None or against not in arms:
        raise SpecError(
            f"--against {against!r} is not an arm of the campaign; arms: {', '.join(arms) or 'none'}"
        )
    arm = arm or next((a for a in arms if a != against), None)
    if arm is None or arm not in arms:
        raise SpecError(f"--arm {arm!r} is not an arm of the campaign; arms: {', '.join(arms)}")
    if arm == against:
        raise SpecError(f"--arm and --against are both {arm!r}; compare two different arms")
    return arm, against


def rank_terms(
    focal: pd.DataFrame, other: pd.DataFrame, *, min_transcripts: int = 2, prior_scale: float = 1.0
) -> tuple[pd.DataFrame, set[str]]:
    """Keyness of ``focal`` documents' terms against ``other``'s (frames with ``terms`` and
    ``transcript_id``), scaffolding removed, only terms in ``min_transcripts`` focal transcripts; and the
    scaffolding."""
    scaffold = scaffolding(list(other["terms"]))
    count_focal = Counter(
        {t: c for t, c in document_frequencies(focal["terms"]).items() if t not in scaffold}
    )
    count_other = Counter(
        {t: c for t, c in document_frequencies(other["terms"]).items() if t not in scaffold}
    )
    ranked = log_odds_z(count_focal, count_other, prior_scale=prior_scale)
    carriers: dict[str, set[int]] = {}
    for transcript_id, terms in zip(focal["transcript_id"], focal["terms"], strict=True):
        for t in terms:
            carriers.setdefault(t, set()).add(transcript_id)
    ranked["transcripts"] = ranked["term"].map(lambda t: len(carriers.get(t, ())))
    ranked = ranked[(ranked["transcripts"] >= min_transcripts) & (ranked["count"] > 0) & (ranked["z"] > 0)]
    return ranked.reset_index(drop=True), scaffold


def discover(
    store: Store,
    campaign: str,
    *,
    arm: str | None = None,
    against: str | None = None,
    source: Source = "explanations",
    positions: Positions = "all",
    top: int = 20,
    include_low_fidelity: bool = False,
    min_fve: float = 0.0,
    min_transcripts: int = 2,
) -> Discovery:
    """The ``top`` terms most over-represented in arm ``arm``'s documents against arm ``against``'s."""
    if positions not in GROUPS:
        raise SpecError(f"--positions {positions!r}: use one of {', '.join(GROUPS)}")
    docs, runs = documents(store, campaign, source, include_low_fidelity=True)
    arms = list(dict.fromkeys(runs["arm"]))
    control = _control_arm(store, campaign)
    arm, against = arm_choice(arms, control, arm, against)
    docs = docs[docs["group"].isin(GROUPS[positions])] if source != "replies" else docs
    low = pd.to_numeric(docs["fve"], errors="coerce") < min_fve  # no FVE (replies, lens, unscored): kept
    excluded = {a: int(low[docs["arm"] == a].sum()) for a in (arm, against)}
    if not include_low_fidelity:
        docs = docs[~low]
    focal, other = docs[docs["arm"] == arm], docs[docs["arm"] == against]
    ranked, scaffold = rank_terms(focal, other, min_transcripts=min_transcripts)
    ranked = ranked.head(top).copy()
    visible = dict(zip(runs["transcript_id"], runs["visible"], strict=True))
    lens = _lens_terms_by_token(store, campaign) if source == "explanations" else {}
    ranked["share"] = ranked["count"] / max(len(focal), 1)
    ranked["share_other"] = ranked["count_other"] / max(len(other), 1)
    carrying = {t: focal[focal["terms"].map(lambda ts, t=t: t in ts)] for t in ranked["term"]}
    ranked["visible"] = [
        sum(mentions_term(visible.get(tid, ""), t) for tid in set(carrying[t]["transcript_id"]))
        for t in ranked["term"]
    ]
    ranked["lens"] = [
        sum(any(w in lens.get(tp, set()) for w in t.split()) for tp in carrying[t]["token_position_id"]) if lens else 0
        for t in ranked["term"]
    ]  # fmt: skip
    ranked["explanation_ids"] = [
        sorted(int(i) for i in carrying[t]["explanation_id"].dropna()) if source == "explanations" else []
        for t in ranked["term"]
    ]
    evidence = pd.concat(
        [carrying[t].assign(term=t) for t in ranked["term"]]
        or [pd.DataFrame(columns=[*focal.columns, "term"])],
        ignore_index=True,
    )[["term", "doc_id", "transcript_id", "position", "group", "text", "fve"]]
    return Discovery(
        campaign, source, positions, arm, against, len(focal), len(other), focal["transcript_id"].nunique(),
        other["transcript_id"].nunique(), sorted(scaffold), ranked[TABLE].reset_index(drop=True),
        evidence.reset_index(drop=True), arms, excluded if not include_low_fidelity else {},
    )  # fmt: skip


def _control_arm(store: Store, campaign: str) -> str | None:
    """The campaign spec's control arm (None without arms)."""
    from sqlalchemy import select

    from audits.campaign_spec import CampaignSpec
    from audits.store import SQLACampaign

    with store.session() as session:
        spec = session.scalar(select(SQLACampaign.spec_json).where(SQLACampaign.name == campaign))
    return CampaignSpec.model_validate(spec).control() if spec else None


def _lens_terms_by_token(store: Store, campaign: str) -> dict[int, set[str]]:
    """Token position id -> the words of its logit lens at the NLA's layer."""
    docs, _ = documents(store, campaign, "logit-lens")
    return dict(zip(docs["token_position_id"], docs["terms"], strict=True))
