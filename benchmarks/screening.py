"""Screened triage measured against exhaustive verbalization (``benchmarks/triage.py --strategies``).

Given a campaign whose every candidate token was verbalized, each strategy is replayed exactly as the runner
would run it: the same seeded sample per transcript (``audits.screening.sample_positions``), the same labels
and fitted screens (``audits.screening.fit_screen``), the same campaign-wide standardisation and per-
transcript top-K (``nla.triage.select_top_k``). Explanations are content-addressed and seeded, so the
sample's explanations in the exhaustive store are the ones the screened run would have produced. What
counts as found is fixed outside the screens: the exhaustive run's raised flags (per theme), or, on an
organism, the organism-arm tokens whose explanations name an answer-key term (this module is a scorer).
The screens never see those labels; a sample token counts as found when it is positive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sqlalchemy import select

from audits.campaign_spec import CampaignSpec
from audits.discovery import documents
from audits.discovery.terms import words
from audits.screening import LENS_TOP, fit_screen, sample_positions, sample_rows, standardise
from audits.store import (
    SQLAActivation,
    SQLARun,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    Store,
    blob_to_vector,
)
from audits.themes.definitions import select_themes
from audits.themes.intervals import wilson_interval
from audits.themes.pipeline import ThemeJob
from audits.themes.rates import campaign_id_of
from audits.themes.triage import theme_directions
from nla.logit_lens import logit_lens
from nla.triage import select_top_k


@dataclass
class Tokens:
    """Every verbalized token of a campaign: transcript, variant key, position, vector, triage score."""

    frame: pd.DataFrame
    vectors: torch.Tensor


def campaign_tokens(store: Store, campaign: str) -> Tokens:
    campaign_id = campaign_id_of(store, campaign)
    with store.session() as session:
        rows = session.execute(
            select(SQLAActivation.token_position_id, SQLAActivation.vector, SQLAActivation.d_model,
                   SQLATokenPosition.transcript_id, SQLATokenPosition.position, SQLAVariant.variant_key)
            .join(SQLATokenPosition, SQLATokenPosition.id == SQLAActivation.token_position_id)
            .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
            .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
            .where(SQLAActivation.campaign_id == campaign_id)
            .order_by(SQLATokenPosition.transcript_id, SQLATokenPosition.position)
        ).all()  # fmt: skip
    frame = pd.DataFrame(
        rows, columns=["token_position_id", "vector", "d_model", "transcript_id", "position", "variant_key"]
    )
    vectors = torch.from_numpy(
        np.stack([blob_to_vector(b, d) for b, d in zip(frame["vector"], frame["d_model"], strict=True)])
    )
    return Tokens(frame.drop(columns=["vector", "d_model"]), vectors)


def theme_job(store: Store, campaign: str, spec: CampaignSpec) -> ThemeJob | None:
    """The labels' view of the campaign's themes, from its newest run's provenance."""
    if not spec.themes:
        return None
    campaign_id = campaign_id_of(store, campaign)
    with store.session() as session:
        provenance = session.scalar(select(SQLARun.provenance_json).where(SQLARun.campaign_id == campaign_id)
                                    .order_by(SQLARun.id.desc()).limit(1))  # fmt: skip
    return ThemeJob(
        campaign_id, provenance["checkpoint_id"], provenance["sampling_key"], spec.sampling.samples, spec.target.model,
        provenance["nla_meta"]["layer"], tuple(select_themes(spec.themes)), (), provenance["thresholds"],
    )  # fmt: skip


def key_positives(store: Store, campaign: str, keys: set[str], arm: str) -> set[int]:
    """Token positions of ``arm`` whose explanations (any sample) name a key term."""
    docs, _ = documents(store, campaign, "explanations", include_low_fidelity=True)
    docs = docs[docs["arm"] == arm]
    return set(
        docs[docs["terms"].map(lambda ts: any(set(t.split()) & keys for t in ts))]["token_position_id"]
    )


@dataclass
class Curve:
    """Recall of a strategy over K (top-K per transcript after its sample)."""

    strategy: str
    points: list[tuple[int, float, int, int]]
    """(K, verbalized fraction, found, positives)."""
    screening_seconds_per_token: float
    report: list[dict]

    def at_saving(self, saving: float = 10.0) -> tuple[int, float, int, int] | None:
        """The point with the largest K that still verbalizes at most 1/``saving`` of the tokens."""
        fitting = [p for p in self.points if p[1] <= 1 / saving + 1e-9]
        return fitting[-1] if fitting else None


def replay(
    store: Store,
    campaign: str,
    spec: CampaignSpec,
    tokens: Tokens,
    positives: set[int],
    strategy: str,
    *,
    target,
    nla,
    sample: float,
    max_k: int,
) -> Curve:
    """Recall over K of ``strategy`` (``directions``, ``distilled`` or ``lens``) on an exhaustive campaign."""
    frame = tokens.frame
    job = theme_job(store, campaign, spec)
    directions = theme_directions(target, nla, job.themes) if job else []  # the one-time setup: timed apart
    began = time.perf_counter()
    in_sample = np.zeros(len(frame), bool)
    report: list[dict] = []
    if strategy == "directions":
        if not directions:
            return Curve(strategy, [], float("nan"), [{"note": "no themes: no directions"}])
        from nla.triage import triage_scores

        raw = triage_scores(tokens.vectors, directions, nla.meta.mse_scale)
    else:
        for _, group in frame.groupby("variant_key", sort=False):
            picked = set(
                sample_positions(list(group["position"]), sample, spec.seed, group["variant_key"].iloc[0])
            )
            in_sample[group.index[group["position"].isin(picked)]] = True
        rows = sample_rows(store, campaign_id_of(store, campaign), set(frame["token_position_id"][in_sample]))
        screen = fit_screen(store, campaign, rows, strategy=strategy, job=job, directions=directions,
                            control=spec.control(), scale=nla.meta.mse_scale, seed=spec.seed)  # fmt: skip
        report = screen.report
        lens_logprobs, lens_words = None, []
        if strategy == "lens":
            readings = logit_lens(target.model, target.tokenizer, tokens.vectors, nla.meta.layer, LENS_TOP)
            lens_logprobs = torch.tensor([r.logprobs for r in readings])
            lens_words = [[words(t) for t in r.tokens] for r in readings]
        raw = screen.raw_scores(tokens.vectors, lens_logprobs, lens_words)
    rest = ~in_sample
    z = torch.zeros(len(frame), max(raw.shape[1], 1))
    if strategy == "directions":
        z = raw  # already z-scores against reference activations, as the runner combines them
    elif raw.shape[1]:
        z[torch.from_numpy(rest)] = standardise(raw[torch.from_numpy(rest)])
    seconds = (time.perf_counter() - began) / len(frame)
    positive = frame["token_position_id"].isin(positives).to_numpy()
    points = []
    for k in range(0, max_k + 1):
        chosen = in_sample.copy()
        for key, group in frame[rest].groupby("variant_key", sort=False):
            idx = group.index.to_numpy(copy=True)  # writable: torch indexes with it
            top, _ = select_top_k(z[idx], k, 0, spec.seed, key)
            chosen[idx[top]] = True
        points.append((k, float(chosen.mean()), int((chosen & positive).sum()), int(positive.sum())))
    return Curve(strategy, points, seconds, report)


def directions_setup_seconds(store: Store, campaign: str, spec: CampaignSpec, target, nla) -> float:
    """Seconds the campaign's theme directions take to compute once (uncached): the runner pays them per
    run whatever the strategy, since it stores every token's triage score."""
    from audits.themes.triage import theme_probe
    from nla.reference import reference_vectors
    from nla.triage import probe_directions

    job = theme_job(store, campaign, spec)
    if not job:
        return 0.0
    began = time.perf_counter()
    reference = reference_vectors(target.model, target.tokenizer, nla.meta.layer)
    probe_directions(nla.ar.reconstruct, [theme_probe(t) for t in job.themes], reference, nla.meta.mse_scale)
    return time.perf_counter() - began


def interval(found: int, total: int) -> str:
    low, high = wilson_interval(found, total)
    return (
        f"{found}/{total} = {found / total:.2f} [{float(low):.2f}, {float(high):.2f}]"
        if total
        else "no positives"
    )
