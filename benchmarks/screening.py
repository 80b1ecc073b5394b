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

import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sqlalchemy import select

from audits.campaign_spec import CampaignSpec
from audits.discovery import documents
from audits.discovery.terms import words
from audits.screening import (
    LENS_TOP,
    campaign_counts,
    delta_scores,
    fit_screen,
    sample_positions,
    sample_rows,
    standardise,
)
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
    points: list[tuple[float, float, int, int]]
    """(K (tokens per transcript, on average when allocated campaign-wide), verbalized fraction, found, positives)."""
    screening_seconds_per_token: float
    report: list[dict]

    def at_saving(self, saving: float = 10.0) -> tuple[float, float, int, int] | None:
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
    rounds: int = 1,
    allocation: str = "transcript",
    control_target=None,
) -> Curve:
    """Recall over K of ``strategy`` (``directions``, ``distilled``, ``lens`` or ``delta``) on an exhaustive
    campaign, K per transcript or (``allocation="campaign"``) K x transcripts over the campaign.

    ``rounds=2`` is an experiment the runner does not run (it fits its screens once): each K is spent in two halves: the first ``ceil(K/2)`` per
    transcript by the screen fitted on the sample, then the screens are fitted again on the sample and
    those tokens' explanations (new labels, new discovered terms) and pick the rest among the tokens left."""
    frame = tokens.frame
    job = theme_job(store, campaign, spec)
    directions = theme_directions(target, nla, job.themes) if job else []  # the one-time setup: timed apart
    began = time.perf_counter()
    in_sample = np.zeros(len(frame), bool)
    report: list[dict] = []
    if strategy == "delta":
        if not spec.arms:
            return Curve(
                strategy, [], float("nan"), [{"note": "no target arms: no delta (the runner refuses it)"}]
            )
        raw = delta_screen(store, campaign, spec, tokens, control_target, nla)
    elif strategy == "directions":
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
    if strategy in ("directions", "delta"):
        z = raw  # directions: z-scores against reference activations; delta: over the campaign, as the runner
    elif raw.shape[1]:
        z[torch.from_numpy(rest)] = standardise(raw[torch.from_numpy(rest)])
    seconds = (time.perf_counter() - began) / len(frame)
    positive = frame["token_position_id"].isin(positives).to_numpy()
    points = []
    for k in range(0, max_k + 1):
        first = k
        if rounds == 2 and strategy in ("distilled", "lens"):  # the others learn nothing from labels
            first = math.ceil(k / 2) if allocation == "transcript" else k / 2
        chosen = _top_k(frame, z, in_sample, first, spec.seed, allocation)
        if first < k:
            rows = sample_rows(
                store, campaign_id_of(store, campaign), set(frame["token_position_id"][chosen])
            )
            again = fit_screen(store, campaign, rows, strategy=strategy, job=job, directions=directions,
                               control=spec.control(), scale=nla.meta.mse_scale, seed=spec.seed)  # fmt: skip
            raw = again.raw_scores(tokens.vectors, lens_logprobs, lens_words)
            z2 = torch.zeros(len(frame), max(raw.shape[1], 1))
            if raw.shape[1]:
                left = torch.from_numpy(~chosen)
                z2[left] = standardise(raw[left])
            chosen = _top_k(frame, z2, chosen, k - first, spec.seed, allocation)
        points.append((k, float(chosen.mean()), int((chosen & positive).sum()), int(positive.sum())))
    return Curve(strategy, points, seconds, report)


def _top_k(
    frame: pd.DataFrame, z: torch.Tensor, chosen: np.ndarray, k: float, seed: int, allocation: str
) -> np.ndarray:
    """``chosen`` plus each transcript's top ``k`` tokens by ``z`` among those not chosen yet, or with
    ``allocation="campaign"`` the campaign's top ``k`` x transcripts wherever they are (as the runner picks)."""
    chosen = chosen.copy()
    groups = [
        (key, group.index.to_numpy(copy=True))
        for key, group in frame[~chosen].groupby("variant_key", sort=False)
    ]
    counts = [k] * len(groups)
    if allocation == "campaign":
        counts = campaign_counts(
            [z[idx] for _, idx in groups], math.floor(k * frame["variant_key"].nunique())
        )
    for (key, idx), count in zip(groups, counts, strict=True):
        top, _ = select_top_k(z[idx], count, 0, seed, key)
        chosen[idx[top]] = True
    return chosen


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


def delta_screen(
    store: Store, campaign: str, spec: CampaignSpec, tokens: Tokens, control_target, nla
) -> torch.Tensor:
    """``[n, 1]`` z-scored ``delta`` screen (``audits.screening.delta_scores``): each audited arm's token
    against the control arm's model reading the same transcript; 0 on the control arm's own transcripts."""
    from audits.discovery.corpus import transcripts
    from audits.runner import stored_transcript
    from nla.activations import residual_streams, tokenize_transcript

    frame = tokens.frame
    runs = transcripts(store, campaign)
    arms = dict(zip(runs["transcript_id"], runs["arm"], strict=True))
    out = torch.zeros(len(frame), 1)
    audited = frame[frame["transcript_id"].map(arms) != spec.control()]
    for transcript_id, group in audited.groupby("transcript_id"):
        with store.session() as session:
            transcript = stored_transcript(session, int(transcript_id))
        ids = tokenize_transcript(control_target.tokenizer, transcript).input_ids
        stream = residual_streams(control_target.model, ids, [nla.meta.layer])[nla.meta.layer]
        rows = group.index.to_numpy(copy=True)
        out[rows] = delta_scores(
            tokens.vectors[rows], stream[group["position"].to_numpy(copy=True)], nla.meta.mse_scale
        )
    return standardise(out)
