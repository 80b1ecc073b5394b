"""Screens learned from a verbalized sample (``tokens.triage.strategy: distilled | lens``), and one that
needs none (``delta``).

A campaign with such a triage first verbalizes a seeded random ``sample`` of each transcript's candidate
tokens. Their explanations are labelled with what the audit looks for: each theme (any sample of the
token reaches a detector's calibrated threshold) and each term discovery finds in the sample (the top
terms of every arm against the control arm, or of the scenarios against their controls). A screen is
then fitted per label and scores every candidate token for one dot product (or one logit-lens read):

* ``distilled``: a logistic-regression probe on the activations (``nla.distill``); a theme the sample
  gives too few positives falls back to its AR-reversed direction (``nla.triage``), which needs no labels;
* ``lens``: the label's words among the token's logit-lens top tokens (the probability mass they hold);
  a theme's words are the terms its positive sample explanations use more than its negative ones;
* ``delta`` needs no sample or labels: a token of an audited arm scores how far its activation lies from
  the control arm's model's on the same transcript (``delta_scores``), a model diff at the token.

``allocation: campaign`` spends the same budget (``top_k`` x transcripts) on the campaign's highest-scoring
tokens wherever they are (``campaign_counts``) rather than ``top_k`` in every transcript: when what the
audit looks for sits in the audited arm's transcripts, an even split spends half the budget on the control
arm.

Scores of different labels are standardised over the campaign's candidates and combined by their
maximum, as directions' z-scores are. The report (which labels, which method, the probe's cross-validated
AUROC, positives in the sample) is stored in the run's provenance.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sqlalchemy import select

from audits.discovery import documents, rank_terms
from audits.discovery.terms import STOP_WORDS, words
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLAThemeScore,
    SQLATokenPosition,
    Store,
    blob_to_vector,
)
from audits.themes.pipeline import ThemeJob
from nla.distill import DistilledProbe, fit_probe, probe_scores
from nla.metrics import normalise
from nla.triage import ProbeDirection, triage_scores

TERMS_PER_ARM = 5
"""Discovered terms per compared arm that become screening labels."""
LENS_TOP = 50
"""Logit-lens tokens read per candidate when screening by the lens."""
LENS_WORDS = 5
"""Words per theme label when screening by the lens."""


def sample_positions(candidates: list[int], fraction: float, seed: int, key: str) -> list[int]:
    """A seeded random ``fraction`` of ``candidates`` (at least one), reproducible per (seed, key)."""
    if not candidates:
        return []
    n = min(len(candidates), max(1, math.ceil(fraction * len(candidates))))
    digest = hashlib.sha256(f"{seed}|{key}|sample".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1))
    picks = torch.randperm(len(candidates), generator=generator)[:n].tolist()
    return sorted(candidates[i] for i in picks)


@dataclass
class Label:
    """One thing the screen looks for, with the sample tokens that carry it."""

    name: str
    """``theme:<id>`` or ``term:<arm>:<term>``."""
    positive: np.ndarray
    """Per sample row: whether the token carries the label."""
    direction: ProbeDirection | None = None
    words: set[str] = field(default_factory=set)


@dataclass
class Screen:
    """Fitted screens over a campaign's candidates, and what was fitted."""

    scale: float
    probes: list[tuple[Label, DistilledProbe | None]]
    strategy: str
    report: list[dict] = field(default_factory=list)

    def raw_scores(
        self, vectors: torch.Tensor, lens_logprobs: torch.Tensor | None, lens_words: list[list[str]]
    ) -> torch.Tensor:
        """``[n, n_labels]`` unstandardised scores of ``vectors`` (lens: their top-token log-probs and words)."""
        columns = []
        for label, probe in self.probes:
            if self.strategy == "lens":
                probs = lens_logprobs.exp() if lens_logprobs is not None else torch.zeros(len(vectors), 1)
                hits = torch.tensor(
                    [[bool(set(ws) & label.words) for ws in row] for row in lens_words], dtype=torch.float32
                )
                columns.append((probs * hits).sum(dim=1))
            elif probe is not None:
                columns.append(probe_scores(vectors, [probe], self.scale)[:, 0])
            else:
                columns.append(triage_scores(vectors, [label.direction], self.scale)[:, 0])
        return torch.stack(columns, dim=1) if columns else torch.zeros(len(vectors), 0)


def _theme_labels(
    store: Store, job: ThemeJob, rows: pd.DataFrame, directions: Sequence[ProbeDirection]
) -> list[Label]:
    """Per theme: a sample token is positive when any parsed sample of it reaches a detector's threshold."""
    with store.session() as session:
        scores = pd.DataFrame(
            session.execute(
                select(SQLAExplanation.activation_key, SQLAThemeScore.theme_id, SQLAThemeScore.detector,
                       SQLAThemeScore.score)
                .join(SQLAThemeScore, SQLAThemeScore.explanation_id == SQLAExplanation.id)
                .where(SQLAExplanation.checkpoint_id == job.checkpoint_id, SQLAExplanation.sampling_key == job.sampling_key,
                       SQLAExplanation.activation_key.in_(list(rows["activation_key"])))
            ).all(),
            columns=["activation_key", "theme_id", "detector", "score"],
        )  # fmt: skip
    by_theme = {d.name: d for d in directions}
    labels = []
    for theme in job.themes:
        mine = scores[scores["theme_id"] == theme.id]
        thresholds = job.thresholds.get(theme.id, {})
        hit = mine[mine["score"] >= mine["detector"].map(thresholds).astype(float).fillna(math.inf)]
        positive = rows["activation_key"].isin(set(hit["activation_key"])).to_numpy()
        labels.append(Label(f"theme:{theme.id}", positive, by_theme.get(theme.id) or by_theme.get(theme.key)))
    return labels


def _term_labels(store: Store, campaign: str, control: str | None, rows: pd.DataFrame) -> list[Label]:
    """Per compared arm, its top discovered terms in the sample (explanations against the control arm)."""
    docs, runs = documents(store, campaign, "explanations", include_low_fidelity=False)
    docs = docs[docs["token_position_id"].isin(set(rows["token_position_id"]))]
    arms = list(dict.fromkeys(runs["arm"]))
    against = control or ("control" if "control" in arms else None)
    if against is None or docs.empty:
        return []
    labels = []
    for arm in arms:
        if arm == against:
            continue
        ranked, _ = rank_terms(docs[docs["arm"] == arm], docs[docs["arm"] == against])
        for term in ranked["term"].head(TERMS_PER_ARM):
            carriers = set(docs[docs["terms"].map(lambda ts, t=term: t in ts)]["token_position_id"])
            positive = rows["token_position_id"].isin(carriers).to_numpy()
            labels.append(Label(f"term:{arm}:{term}", positive, words=set(term.split())))
    return labels


def sample_rows(store: Store, campaign_id: int, token_position_ids: set[int] | None = None) -> pd.DataFrame:
    """The campaign's sampled activations (or, given ``token_position_ids``, those tokens' activations): ids,
    token, key and vector."""
    where = (
        SQLAActivation.selection == "triage_sample"
        if token_position_ids is None
        else SQLAActivation.token_position_id.in_(sorted(token_position_ids))
    )
    with store.session() as session:
        return pd.DataFrame(
            session.execute(
                select(SQLAActivation.id, SQLAActivation.token_position_id, SQLAActivation.activation_key,
                       SQLAActivation.vector, SQLAActivation.d_model, SQLATokenPosition.transcript_id)
                .join(SQLATokenPosition, SQLATokenPosition.id == SQLAActivation.token_position_id)
                .where(SQLAActivation.campaign_id == campaign_id, where)
                .order_by(SQLAActivation.id)
            ).all(),
            columns=["activation_id", "token_position_id", "activation_key", "vector", "d_model", "transcript_id"],
        )  # fmt: skip


def fit_screen(
    store: Store,
    campaign: str,
    rows: pd.DataFrame,
    *,
    strategy: str,
    job: ThemeJob | None,
    directions: Sequence[ProbeDirection],
    control: str | None,
    scale: float,
    seed: int,
) -> Screen:
    """Label the verbalized sample ``rows`` (``sample_rows``) and fit one screen per label."""
    labels = (_theme_labels(store, job, rows, directions) if job else []) + _term_labels(
        store, campaign, control, rows
    )
    vectors = torch.from_numpy(np.stack([blob_to_vector(b, d) for b, d in zip(rows["vector"], rows["d_model"], strict=True)])) if len(rows) else torch.zeros(0, 1)  # fmt: skip
    screen = Screen(scale, [], strategy)
    texts = _sample_texts(store, job, rows) if strategy == "lens" else {}
    for label in labels:
        entry = {"label": label.name, "positives": int(label.positive.sum()), "sample": len(rows)}
        if strategy == "lens":
            if not label.words:
                label.words = _theme_words(texts, rows, label.positive)
            if not label.words:
                continue
            screen.probes.append((label, None))
            screen.report.append({**entry, "method": "lens", "words": sorted(label.words)})
            continue
        probe = fit_probe(label.name, vectors, label.positive, scale=scale, seed=seed) if len(rows) else None
        if probe is not None:
            screen.probes.append((label, probe))
            screen.report.append(
                {**entry, "method": "distilled", "auroc": round(probe.auroc, 4), "c": probe.c}
            )
        elif label.direction is not None:
            screen.probes.append((label, None))
            screen.report.append({**entry, "method": "directions (too few sample positives for a probe)"})
    return screen


def _sample_texts(store: Store, job: ThemeJob | None, rows: pd.DataFrame) -> dict[str, list[str]]:
    with store.session() as session:
        found = session.execute(
            select(SQLAExplanation.activation_key, SQLAExplanation.text)
            .where(SQLAExplanation.activation_key.in_(list(rows["activation_key"])), SQLAExplanation.status == "ok")
        ).all()  # fmt: skip
    texts: dict[str, list[str]] = {}
    for key, text in found:
        texts.setdefault(key, []).append(text)
    return texts


def _theme_words(texts: dict[str, list[str]], rows: pd.DataFrame, positive: np.ndarray) -> set[str]:
    """The single words a theme's positive sample explanations use most over its negative ones."""
    if positive.sum() < 1:
        return set()
    frame = pd.DataFrame({"transcript_id": rows["transcript_id"],
                          "terms": [{w for t in texts.get(k, []) for w in words(t) if w not in STOP_WORDS}
                                    for k in rows["activation_key"]]})  # fmt: skip
    ranked, _ = rank_terms(frame[positive], frame[~positive], min_transcripts=1)
    return set(ranked["term"].head(LENS_WORDS))


def delta_scores(vectors: torch.Tensor, control_vectors: torch.Tensor, scale: float) -> torch.Tensor:
    """``[n, 1]``: how far each activation lies from the control model's on the same token, both scaled to
    L2 = ``scale`` first (the ``delta`` screen)."""
    return (normalise(vectors.float(), scale) - normalise(control_vectors.float(), scale)).norm(dim=1)[
        :, None
    ]


def campaign_counts(parts: Sequence[torch.Tensor], n: int) -> list[int]:
    """How many of the campaign's ``n`` highest-scoring tokens (max over the columns; ties to the earlier
    token, transcripts in order) fall in each transcript's scores ``parts``: taking each transcript's top
    that many with ``select_top_k`` picks exactly the campaign-wide top ``n``."""
    sizes = [len(p) for p in parts]
    if not sum(sizes):
        return [0] * len(parts)
    combined = torch.cat([p.float().max(dim=1).values for p in parts if len(p)])
    top = torch.sort(-combined, stable=True).indices[:n]
    owner = torch.repeat_interleave(torch.arange(len(parts)), torch.tensor(sizes))
    return torch.bincount(owner[top], minlength=len(parts)).tolist()


def standardise(scores: torch.Tensor) -> torch.Tensor:
    """Each column as z-scores over the rows (a constant column becomes 0)."""
    if scores.shape[0] == 0:
        return scores
    std = scores.std(dim=0, unbiased=False).clamp_min(1e-8)
    return (scores - scores.mean(dim=0)) / std
