"""The verbalizer: prefix caching, seeded sampling, stopping and statuses on real generations."""

import pytest
import torch

from nla.backends import TransformersBackend
from nla.checkpoint import load_nla
from nla.engine import NLAEngine
from nla.parsing import Status
from nla.sampling import SamplingParams
from nla.verbalizer import Verbalizer
from tests.tiny_models import teach_av

GREEDY = SamplingParams(temperature=0, max_new_tokens=12)
SAMPLED = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12, seed=7)


def _verbalizer(nla, prefix_cache: bool = True) -> Verbalizer:
    return Verbalizer(
        nla.av, nla.av_tokenizer, nla.av_prompt, nla.meta.injection_scale, prefix_cache=prefix_cache
    )


def _texts(generations) -> list[str]:
    return [g.text for g in generations]


@pytest.fixture(scope="module")
def vectors(tiny_nla, arch) -> torch.Tensor:
    torch.manual_seed(3)
    return torch.randn(5, tiny_nla(arch).meta.d_model)


def test_prefix_cache_matches_uncached_greedy(tiny_nla, arch, vectors) -> None:
    nla = tiny_nla(arch)
    cached = _verbalizer(nla).generate(vectors, GREEDY, batch_size=2)
    uncached = _verbalizer(nla, prefix_cache=False).generate(vectors, GREEDY, batch_size=5)
    assert _texts(cached) == _texts(uncached)
    assert [g.n_tokens for g in cached] == [g.n_tokens for g in uncached]


def test_different_vectors_give_different_outputs(tiny_nla, arch, vectors) -> None:
    texts = _texts(_verbalizer(tiny_nla(arch)).generate(vectors, GREEDY))
    assert len(set(texts)) > 1


def test_sampling_is_seeded_per_vector_and_sample(tiny_nla, arch, vectors) -> None:
    verbalizer = _verbalizer(tiny_nla(arch))
    one = verbalizer.generate(vectors, SAMPLED, samples=2, batch_size=3)
    again = verbalizer.generate(vectors, SAMPLED, samples=2, batch_size=10)
    assert _texts(one) == _texts(again)  # independent of batch composition
    assert [(g.vector_index, g.sample_index) for g in one] == [(v, s) for v in range(5) for s in range(2)]
    assert _texts(one)[0::2] != _texts(one)[1::2]  # the two samples differ
    reseeded = verbalizer.generate(vectors, SamplingParams(1.0, 0.9, 12, seed=8), samples=2)
    assert _texts(reseeded) != _texts(one)
    # a vector's samples do not depend on which other vectors share the call
    alone = verbalizer.generate(vectors[3:4], SAMPLED, samples=2)
    assert _texts(alone) == _texts(one)[6:8]


def test_progress_counts_every_explanation(tiny_nla, vectors) -> None:
    seen: list[int] = []
    _verbalizer(tiny_nla("llama")).generate(vectors, GREEDY, samples=3, batch_size=4, progress=seen.append)
    assert sum(seen) == 15


@pytest.fixture(scope="module")
def taught(tiny_init_dirs):
    """A tiny NLA whose AV has learned to answer with a closed explanation."""
    nla = load_nla(str(tiny_init_dirs["llama"]))
    teach_av(nla, "<explanation>\nred apples\n</explanation>")
    return nla


def test_closed_explanations_stop_early_and_are_scored(taught) -> None:
    engine = NLAEngine(TransformersBackend(taught, batch_size=4))
    vectors = torch.randn(6, taught.meta.d_model)
    results = engine.explain(vectors, SamplingParams(temperature=0, max_new_tokens=40))
    assert {r.status for r in results} == {Status.OK}
    assert {r.text for r in results} == {"red apples"}
    assert {r.finish for r in results} == {"stop"}
    assert all(r.n_tokens < 40 for r in results)
    for r in results:
        assert r.mse == pytest.approx(2 * (1 - r.cos), abs=1e-5)
        assert r.fve == pytest.approx(1 - r.mse / taught.meta.fve_baseline, abs=1e-5)
    assert len({r.vector_digest for r in results}) == 6


def test_truncated_and_tagless_outputs_keep_a_status(taught, tiny_nla) -> None:
    vectors = torch.randn(3, taught.meta.d_model)
    truncated = NLAEngine(TransformersBackend(taught)).explain(vectors, SamplingParams(0, 1, 3))
    assert {(r.status, r.finish) for r in truncated} == {(Status.UNCLOSED, "length")}
    assert all(r.cos is None and r.mse is None and r.fve is None for r in truncated)
    untaught = NLAEngine(TransformersBackend(tiny_nla("llama"))).explain(vectors, SamplingParams(0, 1, 6))
    assert len(untaught) == 3
    assert all(r.status in {Status.NO_TAGS, Status.UNCLOSED, Status.INJECTION_FAILED} for r in untaught)


def _draws(logits: torch.Tensor, top_p: float, n: int = 3000) -> torch.Tensor:
    from nla.verbalizer import _generator, _pick

    sampling = SamplingParams(temperature=1.0, top_p=top_p)
    generators = [_generator(seed, torch.device("cpu")) for seed in range(n)]
    return _pick(logits.expand(n, -1), sampling, generators, list(range(n)))


def test_top_p_draws_follow_the_nucleus() -> None:
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    picks = _draws(logits, top_p=0.7)
    assert set(picks.tolist()) == {0, 1}  # the smallest set holding 70% of the mass
    assert float((picks == 0).float().mean()) == pytest.approx(0.5 / 0.8, abs=0.03)
    assert set(_draws(logits, top_p=1.0).tolist()) == {0, 1, 2, 3}


def test_flat_distributions_fall_back_to_the_full_vocabulary() -> None:
    picks = _draws(torch.zeros(1, 1000), top_p=0.9)
    assert picks.max() > 256 and picks.max() < 1000  # beyond the top-k shortcut, never past the vocabulary


def test_backends_on_one_loaded_nla_share_the_prefix_cache_without_changing_outputs(
    tiny_nla, arch, vectors
) -> None:
    """Explore and other long-lived processes build a backend per run on a kept NLA: the prompt prefix's
    KV cache is computed once, and reusing it gives what a fresh verbalizer gives."""
    nla = tiny_nla(arch)
    first, second = TransformersBackend(nla), TransformersBackend(nla)
    assert first.verbalizer is second.verbalizer
    assert TransformersBackend(nla, prefix_cache=False).verbalizer is not first.verbalizer
    fresh = _texts(_verbalizer(nla).generate(vectors, SAMPLED, samples=2))
    assert _texts(first.verbalize(vectors, SAMPLED, 2)) == fresh
    assert first.verbalizer._prefix is not None  # computed by the first run...
    prefix = first.verbalizer._prefix
    assert _texts(second.verbalize(vectors, SAMPLED, 2)) == fresh  # ...reused, unchanged, by the next
    assert second.verbalizer._prefix is prefix


def test_a_shared_verbalizer_is_renewed_when_the_av_is_trained_in_place(tiny_init_dirs) -> None:
    nla = load_nla(str(tiny_init_dirs["llama"]))
    before = TransformersBackend(nla).verbalizer
    before.generate(torch.randn(1, nla.meta.d_model), GREEDY)  # computes and keeps the prefix cache
    teach_av(nla, "<explanation>\nred apples\n</explanation>", steps=5)
    after = TransformersBackend(nla).verbalizer
    assert after is not before and after._prefix is None
