"""Transcript -> selected tokens -> activations -> scored explanations."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nla.activations import TokenInfo, extract_activations, generate_reply
from nla.engine import Explanation, NLAEngine
from nla.resolve import load_causal_lm, load_tokenizer
from nla.sampling import SamplingParams
from nla.transcript import Transcript
from nla.verbalizer import Progress


@dataclass(frozen=True)
class Target:
    """The model under audit."""

    ref: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def load_target(
    ref: str, *, dtype: torch.dtype = torch.float32, device: str = "cpu", trust_remote_code: bool = False
) -> Target:
    """Resolve and load the target model and its tokenizer."""
    opts = {"trust_remote_code": trust_remote_code}
    return Target(ref, load_causal_lm(ref, dtype=dtype, device=device, **opts), load_tokenizer(ref, **opts))


@dataclass(frozen=True)
class TokenResult:
    """Every explanation sample for one token, with the token's metadata and activation norm."""

    token: TokenInfo
    norm: float
    explanations: list[Explanation]


def verbalize_transcript(
    target: Target,
    engine: NLAEngine,
    transcript: Transcript,
    *,
    positions: str = "assistant",
    samples: int = 1,
    sampling: SamplingParams | None = None,
    reply_tokens: int = 0,
    progress: Progress | None = None,
    on_total: Progress | None = None,
) -> tuple[Transcript, list[TokenResult]]:
    """Optionally let the target reply (``reply_tokens`` > 0), then explain the selected tokens.

    ``on_total`` is told how many explanations will be produced before work starts."""
    sampling = sampling or SamplingParams()
    if reply_tokens > 0:
        transcript = generate_reply(
            target.model, target.tokenizer, transcript, max_new_tokens=reply_tokens, seed=sampling.seed
        )
    acts = extract_activations(target.model, target.tokenizer, transcript, engine.meta.layer, positions)
    if on_total:
        on_total(len(acts.tokens) * samples)
    explained = engine.explain(
        acts.vectors, sampling, samples=samples, progress=progress, source=transcript.source
    )
    by_vector: list[list[Explanation]] = [[] for _ in acts.tokens]
    for e in explained:
        by_vector[e.vector_index].append(e)
    norms = acts.vectors.norm(dim=1).tolist()
    return transcript, [TokenResult(t, n, ex) for t, n, ex in zip(acts.tokens, norms, by_vector, strict=True)]
