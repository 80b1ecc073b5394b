"""Screened triage (``tokens.triage.strategy: distilled``): a probe trained on a sample ranks planted tokens
first, the sample and the probe are seeded, and a campaign resumes after kill -9 without re-verbalizing its
sample, ending where an uninterrupted run ends. The ``delta`` screen and ``allocation: campaign`` pick exactly the
campaign's largest fine-tune-against-base distances, recomputed from the two models."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sqlalchemy import select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.runner import CampaignRunner, stored_transcript
from audits.screening import campaign_counts, delta_scores, sample_positions
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLARun,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    open_store,
    upgrade,
)
from audits.token_selection import candidate_positions
from nla.activations import residual_stream, tokenize_transcript
from nla.distill import fit_probe, probe_scores
from nla.pipeline import load_target
from nla.transcript import Message, Transcript
from nla.triage import select_top_k
from tests.audits.test_arms import arms_campaign
from tests.audits.test_runner import GIVEN, _cli, campaign
from tests.conftest import EVAL_AWARE, TINY_LAYER
from tests.nla.test_adapters import make_adapter


def _tiny_vectors(tiny_dirs) -> torch.Tensor:
    target = load_target(str(tiny_dirs["llama"]))
    texts = [
        "the cat sat on the mat",
        "the quick brown fox jumps over the lazy dog",
        "hello world system user",
    ]
    rows = []
    for i in range(12):
        chat = Transcript(
            (Message("user", texts[i % 3] + f" {i}"), Message("assistant", texts[(i + 1) % 3])), "t"
        )
        rows.append(
            residual_stream(target.model, tokenize_transcript(target.tokenizer, chat).input_ids, TINY_LAYER)
        )
    return torch.cat(rows)


def test_distilled_probe_ranks_planted_tokens_first(tiny_dirs):
    vectors = _tiny_vectors(tiny_dirs)
    n = vectors.shape[0]
    rng = np.random.default_rng(0)
    planted = np.zeros(n, bool)
    planted[rng.choice(n, n // 10, replace=False)] = True
    direction = torch.from_numpy(rng.normal(size=vectors.shape[1])).float()
    vectors = vectors.clone()
    vectors[torch.from_numpy(planted)] += 0.8 * vectors.norm(dim=1).mean() * direction / direction.norm()
    sample = np.zeros(n, bool)
    sample[rng.choice(n, n // 3, replace=False)] = True
    scale = vectors.shape[1] ** 0.5
    probe = fit_probe("planted", vectors[torch.from_numpy(sample)], planted[sample], scale=scale, seed=0)
    assert probe is not None and probe.auroc > 0.9
    rest = np.flatnonzero(~sample)
    scores = probe_scores(vectors[torch.from_numpy(rest)], [probe], scale)[:, 0]
    k = int(planted[rest].sum())
    top = rest[scores.topk(k).indices.numpy()]
    assert planted[top].mean() >= 0.9  # the planted tokens come first
    again = fit_probe("planted", vectors[torch.from_numpy(sample)], planted[sample], scale=scale, seed=0)
    assert np.array_equal(again.weight, probe.weight) and again.bias == probe.bias  # seeded, reproducible
    assert fit_probe("none", vectors[:20], np.zeros(20, bool), scale=scale) is None  # nothing to learn


def test_sample_is_seeded_per_transcript():
    candidates = list(range(5, 105))
    one = sample_positions(candidates, 0.05, 0, "variant-a")
    assert len(one) == 5 and one == sample_positions(candidates, 0.05, 0, "variant-a")
    assert (
        one
        != sample_positions(candidates, 0.05, 1, "variant-a")
        != sample_positions(candidates, 0.05, 0, "b")
    )
    assert sample_positions([7], 0.01, 0, "x") == [7] and sample_positions([], 0.5, 0, "x") == []


def distilled(tiny_dirs, taught_dir) -> dict:
    return campaign(
        tiny_dirs, {"llama": taught_dir}, scenarios={"inline": [GIVEN]}, themes=["evaluation_awareness"],
        tokens={"roles": ["user", "assistant"], "triage": {"strategy": "distilled", "sample": 0.3, "top_k": 2, "random": 1}},
        nla={"batch_size": 1}, sampling={"samples": 2, "temperature": 0.0, "max_new_tokens": 40},
    )  # fmt: skip


def _state(db: str) -> tuple[list, list]:
    with open_store(db) as store, store.session() as s:
        acts = s.execute(
            select(SQLAActivation.activation_key, SQLAActivation.selection).order_by(
                SQLAActivation.activation_key
            )
        ).all()
        expl = s.execute(
            select(SQLAExplanation.activation_key, SQLAExplanation.sample_index, SQLAExplanation.text)
            .order_by(SQLAExplanation.activation_key, SQLAExplanation.sample_index)
        ).all()  # fmt: skip
    return [tuple(a) for a in acts], [tuple(e) for e in expl]


def test_distilled_campaign_resumes_without_reverbalizing_its_sample(
    tiny_dirs, tiny_taught_dir, tmp_path: Path
):
    spec = distilled(tiny_dirs, tiny_taught_dir)
    (tmp_path / "probe.yaml").write_text(yaml.safe_dump(spec))
    reference, crashed = str(tmp_path / "reference.db"), str(tmp_path / "crashed.db")
    upgrade(reference)
    with open_store(reference) as store:
        register_campaign(store, campaign_from_dict(spec, {}))
        assert CampaignRunner(store, "probe", {}).run().status == "completed"
        with store.session() as s:
            provenance = s.scalar(select(SQLARun.provenance_json))
    acts, expl = _state(reference)
    selections = [sel for _, sel in acts]
    assert selections.count("triage_sample") >= 3 and "triage_top" in selections
    # every sample explanation is evaluation-aware: no negative to train a probe, so the theme's direction screens
    assert [r["method"] for r in provenance["screening"]] == [
        "directions (too few sample positives for a probe)"
    ]
    assert all(EVAL_AWARE.split("\n")[1] in text for _, _, text in expl)

    upgrade(crashed)
    assert _cli("campaign", "create", "probe.yaml", "--db", crashed, cwd=tmp_path).wait() == 0
    proc = _cli("campaign", "run", "probe", "--db", crashed, cwd=tmp_path)
    deadline = time.monotonic() + 180
    while len(_state(crashed)[1]) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with open_store(crashed) as store, store.session() as s:
        before = s.execute(
            select(SQLAExplanation.id, SQLAExplanation.activation_key, SQLAExplanation.created_at)
        ).all()
    resumed = _cli("campaign", "run", "probe", "--db", crashed, cwd=tmp_path)
    assert resumed.wait() == 0, resumed.stderr.read()
    assert _state(crashed) == (acts, expl)  # the same selections and explanations as the uninterrupted run
    with open_store(crashed) as store, store.session() as s:
        after = set(
            s.execute(
                select(SQLAExplanation.id, SQLAExplanation.activation_key, SQLAExplanation.created_at)
            ).all()
        )
    assert set(before) <= after  # what the killed run verbalized is kept as it was, never redone


def test_campaign_counts_pick_the_campaign_wide_top():
    parts = [
        torch.tensor([[0.1], [3.0], [2.0]]),
        torch.zeros(0, 1),
        torch.tensor([[2.0], [5.0]]),
        torch.tensor([[-1.0]]),
    ]
    counts = campaign_counts(parts, 3)
    assert counts == [2, 0, 1, 0]  # 5.0, 3.0, then the tie at 2.0 goes to the earlier token
    picked = {
        (t, i)
        for t, (p, k) in enumerate(zip(parts, counts, strict=True))
        if len(p)
        for i in select_top_k(p, k, 0, 0, str(t))[0]
    }
    assert picked == {(0, 1), (0, 2), (2, 1)}
    assert campaign_counts(parts, 99) == [3, 0, 2, 1] and campaign_counts([torch.zeros(0, 1)], 4) == [0]


def test_delta_scores_rank_the_moved_tokens_first(tiny_dirs):
    base = _tiny_vectors(tiny_dirs)
    moved = base.clone()
    rows = torch.tensor([3, 17, 40])
    moved[rows] += (
        0.5
        * base[rows].norm(dim=1, keepdim=True)
        * torch.randn(3, base.shape[1], generator=torch.Generator().manual_seed(0))
        / base.shape[1] ** 0.5
    )
    scores = delta_scores(moved, base, base.shape[1] ** 0.5)
    assert scores.shape == (len(base), 1) and set(scores[:, 0].topk(3).indices.tolist()) == set(rows.tolist())
    assert torch.all(scores[torch.ones(len(base), dtype=torch.bool).index_fill_(0, rows, False)] < 1e-5)


@pytest.fixture(scope="module")
def lora_dir(tiny_dirs, tmp_path_factory) -> Path:
    return make_adapter(tiny_dirs["llama"], tmp_path_factory.mktemp("delta") / "lora")


def test_delta_triage_spends_a_campaign_budget_where_the_fine_tune_moved(
    tiny_dirs, tiny_init_dirs, lora_dir, tmp_path
):
    """``strategy: delta, allocation: campaign``: no sample; the campaign's top_k x transcripts tokens by the fine-tune's
    distance from its base on the same text, recomputed here from the two models, and none on the base's own or the
    base-reading transcripts (their distance is 0)."""
    data = arms_campaign(tiny_dirs, tiny_init_dirs, lora_dir)
    data["tokens"] = {
        "roles": ["user", "assistant"],
        "triage": {"strategy": "delta", "allocation": "campaign", "top_k": 2, "random": 0},
    }
    spec = campaign_from_dict(data, {})
    db = str(tmp_path / "delta.db")
    upgrade(db)
    with open_store(db) as store:
        register_campaign(store, spec)
        assert CampaignRunner(store, "arms", {}).run().status == "completed"
        with store.session() as s:
            rows = s.execute(
                select(
                    SQLATranscript.id,
                    SQLAVariant.conditions_json,
                    SQLATokenPosition.position,
                    SQLAActivation.selection,
                )
                .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
                .join(SQLATokenPosition, SQLATokenPosition.transcript_id == SQLATranscript.id)
                .outerjoin(SQLAActivation, SQLAActivation.token_position_id == SQLATokenPosition.id)
            ).all()
            transcripts = {t: stored_transcript(s, t) for t in {r[0] for r in rows}}
            provenance = s.scalar(select(SQLARun.provenance_json))
    assert provenance["screening"] == [{"label": "delta", "method": "delta against arm base"}]
    chosen = {(r[0], r[2]) for r in rows if r[3] is not None}
    assert {r[3] for r in rows if r[3] is not None} == {"triage_top"} and len(chosen) == 2 * len(transcripts)
    arm = {r[0]: r[1]["arm"] for r in rows}
    base, tuned = (
        load_target(str(tiny_dirs["llama"])),
        load_target(str(tiny_dirs["llama"]), adapter=str(lora_dir)),
    )
    expected = []
    for t in sorted(transcripts):
        tokenized = tokenize_transcript(base.tokenizer, transcripts[t])
        candidates = candidate_positions(tokenized.tokens, spec.tokens)
        if arm[t] != "tuned":
            continue
        here = residual_stream(tuned.model, tokenized.input_ids, TINY_LAYER)[candidates]
        there = residual_stream(base.model, tokenized.input_ids, TINY_LAYER)[candidates]
        expected += [
            (float(d), t, p)
            for d, p in zip(delta_scores(here, there, here.shape[1] ** 0.5)[:, 0], candidates, strict=True)
        ]
    top = {(t, p) for _, t, p in sorted(expected, key=lambda e: -e[0])[: len(chosen)]}
    assert chosen == top  # exactly the campaign's largest distances, all in the fine-tune's transcripts
