"""Screened triage (``tokens.triage.strategy: distilled``): a probe trained on a sample ranks planted tokens
first, the sample and the probe are seeded, and a campaign resumes after kill -9 without re-verbalizing its
sample, ending where an uninterrupted run ends."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from sqlalchemy import select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.runner import CampaignRunner
from audits.screening import sample_positions
from audits.store import SQLAActivation, SQLAExplanation, SQLARun, open_store, upgrade
from nla.activations import residual_stream, tokenize_transcript
from nla.distill import fit_probe, probe_scores
from nla.pipeline import load_target
from nla.transcript import Message, Transcript
from tests.audits.test_runner import GIVEN, _cli, campaign
from tests.conftest import EVAL_AWARE, TINY_LAYER


def _tiny_vectors(tiny_dirs) -> torch.Tensor:
    target = load_target(str(tiny_dirs["llama"]))
    texts = ["the cat sat on the mat", "the quick brown fox jumps over the lazy dog", "hello world system user"]
    rows = []
    for i in range(12):
        chat = Transcript((Message("user", texts[i % 3] + f" {i}"), Message("assistant", texts[(i + 1) % 3])), "t")
        rows.append(residual_stream(target.model, tokenize_transcript(target.tokenizer, chat).input_ids, TINY_LAYER))
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
    assert one != sample_positions(candidates, 0.05, 1, "variant-a") != sample_positions(candidates, 0.05, 0, "b")
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
            select(SQLAActivation.activation_key, SQLAActivation.selection).order_by(SQLAActivation.activation_key)
        ).all()
        expl = s.execute(
            select(SQLAExplanation.activation_key, SQLAExplanation.sample_index, SQLAExplanation.text)
            .order_by(SQLAExplanation.activation_key, SQLAExplanation.sample_index)
        ).all()  # fmt: skip
    return [tuple(a) for a in acts], [tuple(e) for e in expl]


def test_distilled_campaign_resumes_without_reverbalizing_its_sample(tiny_dirs, tiny_taught_dir, tmp_path: Path):
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
    assert [r["method"] for r in provenance["screening"]] == ["directions (too few sample positives for a probe)"]
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
        before = s.execute(select(SQLAExplanation.id, SQLAExplanation.activation_key, SQLAExplanation.created_at)).all()
    resumed = _cli("campaign", "run", "probe", "--db", crashed, cwd=tmp_path)
    assert resumed.wait() == 0, resumed.stderr.read()
    assert _state(crashed) == (acts, expl)  # the same selections and explanations as the uninterrupted run
    with open_store(crashed) as store, store.session() as s:
        after = set(s.execute(select(SQLAExplanation.id, SQLAExplanation.activation_key, SQLAExplanation.created_at)).all())
    assert set(before) <= after  # what the killed run verbalized is kept as it was, never redone
