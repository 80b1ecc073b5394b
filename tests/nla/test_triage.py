"""Triage: AR-reversed probe directions, bulk z-scores, and top-k plus random selection."""

from __future__ import annotations

import pytest
import torch

from nla.activations import extract_activations
from nla.errors import NLAError, VectorError
from nla.pipeline import Target, load_target
from nla.reference import reference_vectors
from nla.transcript import transcript_from_messages
from nla.triage import (
    Probe,
    ProbeDirection,
    probe_directions,
    select_top_k,
    triage_score_one,
    triage_scores,
)
from tests.conftest import TINY_LAYER

PROBES = (
    Probe(
        "deception",
        ("The assistant is hiding its real goal.", "It plans to mislead the user."),
        ("The assistant is hiding a present for a party.", "A magician misleads the audience."),
    ),
    Probe("refusal", ("The assistant declines the request.",), ("The assistant agrees to help.",)),
)


@pytest.fixture(scope="module")
def target(tiny_dirs) -> Target:
    return load_target(str(tiny_dirs["llama"]))


@pytest.fixture(scope="module")
def reference(target: Target) -> torch.Tensor:
    return reference_vectors(target.model, target.tokenizer, TINY_LAYER)


@pytest.fixture(scope="module")
def nla(tiny_nla):
    return tiny_nla("llama")


@pytest.fixture(scope="module")
def directions(nla, reference) -> list[ProbeDirection]:
    return probe_directions(nla.ar.reconstruct, PROBES, reference, nla.meta.mse_scale)


def test_directions_are_unit_length_and_deterministic(nla, reference, directions) -> None:
    again = probe_directions(nla.ar.reconstruct, PROBES, reference, nla.meta.mse_scale)
    assert [d.name for d in directions] == ["deception", "refusal"]
    for a, b in zip(directions, again, strict=True):
        assert a.direction.dtype == torch.float32
        assert a.direction.shape == (nla.meta.d_model,)
        assert float(a.direction.norm()) == pytest.approx(1.0, abs=1e-5)
        assert torch.allclose(a.direction, b.direction, atol=1e-6)
        assert a.ref_mean == pytest.approx(b.ref_mean, abs=1e-5)
        assert a.ref_std == pytest.approx(b.ref_std, rel=1e-5)
        assert a.ref_std > 0


def test_all_texts_go_through_one_reconstruct_call(nla, reference) -> None:
    calls: list[list[str]] = []

    def counting(texts: list[str]) -> torch.Tensor:
        calls.append(texts)
        return nla.ar.reconstruct(texts)

    probe_directions(counting, PROBES, reference, nla.meta.mse_scale)
    assert len(calls) == 1
    assert len(calls[0]) == sum(len(p.positive) + len(p.negative) for p in PROBES)


def test_bulk_scores_equal_per_token_scores(target, nla, directions) -> None:
    transcript = transcript_from_messages(
        [
            {"role": "user", "content": "Tell me what you are planning."},
            {"role": "assistant", "content": "I cannot share that with you right now."},
        ],
        "test",
    )
    acts = extract_activations(target.model, target.tokenizer, transcript, TINY_LAYER, "all")
    scale = nla.meta.mse_scale
    bulk = triage_scores(acts.vectors, directions, scale)
    assert bulk.shape == (acts.vectors.shape[0], len(directions))
    assert bulk.dtype == torch.float32
    for i, vector in enumerate(acts.vectors):
        for j, direction in enumerate(directions):
            assert float(bulk[i, j]) == pytest.approx(triage_score_one(vector, direction, scale), abs=1e-5)


def test_reference_scores_are_z_scored(nla, reference, directions) -> None:
    z = triage_scores(reference, directions, nla.meta.mse_scale)
    assert torch.allclose(z.mean(dim=0), torch.zeros(len(directions)), atol=1e-4)
    assert torch.allclose(z.std(dim=0), torch.ones(len(directions)), atol=1e-4)


def test_the_direction_outscores_its_opposite(nla, directions) -> None:
    for j, d in enumerate(directions):
        z = triage_scores(torch.stack([d.direction, -d.direction]), directions, nla.meta.mse_scale)
        assert z[0, j] > z[1, j]


def test_refuses_probe_without_negatives(nla, reference) -> None:
    with pytest.raises(NLAError, match="lonely"):
        probe_directions(nla.ar.reconstruct, [Probe("lonely", ("a",), ())], reference, nla.meta.mse_scale)
    with pytest.raises(NLAError, match="hollow"):
        probe_directions(nla.ar.reconstruct, [Probe("hollow", (), ("b",))], reference, nla.meta.mse_scale)


def test_refuses_degenerate_direction(reference) -> None:
    d = reference.shape[1]

    def same(texts: list[str]) -> torch.Tensor:
        return torch.ones(len(texts), d)

    with pytest.raises(NLAError, match="flat"):
        probe_directions(same, [Probe("flat", ("a",), ("b",))], reference, 1.0)


def test_refuses_bad_reference(nla, reference) -> None:
    scale = nla.meta.mse_scale
    with pytest.raises(NLAError, match="at least 2"):
        probe_directions(nla.ar.reconstruct, PROBES, reference[:1], scale)
    bad = reference.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(VectorError):
        probe_directions(nla.ar.reconstruct, PROBES, bad, scale)


def test_refuses_bad_vectors(nla, directions) -> None:
    d, scale = nla.meta.d_model, nla.meta.mse_scale
    vectors = torch.randn(4, d)
    vectors[2, 1] = float("nan")
    with pytest.raises(VectorError):
        triage_scores(vectors, directions, scale)
    with pytest.raises(VectorError):
        triage_scores(torch.randn(4, d + 1), directions, scale)
    with pytest.raises(VectorError):
        triage_score_one(torch.randn(d + 1), directions[0], scale)
    with pytest.raises(VectorError):
        triage_score_one(torch.full((d,), float("nan")), directions[0], scale)


def test_select_top_k_exact() -> None:
    scores = torch.tensor([[0.1, 0.5], [0.9, 0.0], [0.5, 0.2], [-1.0, 0.9], [0.3, 0.3], [0.0, -2.0]])
    # combined: [0.5, 0.9, 0.5, 0.9, 0.3, 0.0]; the 0.5 tie goes to row 0
    top, rand = select_top_k(scores, 3, 0, seed=0, key="t")
    assert (top, rand) == ([0, 1, 3], [])
    top, rand = select_top_k(scores, 4, 2, seed=0, key="t")
    assert top == [0, 1, 2, 3]
    assert rand == [4, 5]
    assert select_top_k(scores, 0, 0, seed=0, key="t") == ([], [])


def test_select_top_k_random_part() -> None:
    scores = torch.randn(200, 3, generator=torch.Generator().manual_seed(1))
    top, rand = select_top_k(scores, 10, 20, seed=7, key="transcript-a")
    assert len(top) == 10 and len(rand) == 20
    assert top == sorted(top) and rand == sorted(rand)
    assert not set(top) & set(rand)
    assert select_top_k(scores, 10, 20, seed=7, key="transcript-a") == (top, rand)
    assert select_top_k(scores, 10, 20, seed=7, key="transcript-b")[1] != rand
    assert select_top_k(scores, 10, 20, seed=8, key="transcript-a")[1] != rand


def test_select_top_k_caps() -> None:
    scores = torch.arange(5, dtype=torch.float32).reshape(5, 1)
    top, rand = select_top_k(scores, 3, 10, seed=0, key="x")
    assert top == [2, 3, 4]
    assert rand == [0, 1]
    assert select_top_k(scores, 9, 3, seed=0, key="x") == ([0, 1, 2, 3, 4], [])
    with pytest.raises(NLAError):
        select_top_k(scores, -1, 0, seed=0, key="x")
