"""Transcript -> selected tokens -> activations -> scored explanations."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nla.activations import TokenInfo, extract_activations, generate_reply
from nla.adapters import Adapter, apply_adapter, resolve_adapter, target_identity
from nla.engine import Explanation, NLAEngine
from nla.resolve import load_causal_lm, load_tokenizer
from nla.sampling import SamplingParams
from nla.transcript import Transcript
from nla.verbalizer import Progress


@dataclass(frozen=True)
class Target:
    """The model under audit: a base model, optionally with a fine-tuning adapter on it."""

    ref: str
    """The base model reference."""
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    adapter: Adapter | None = None
    """The peft adapter applied to the base, if any."""

    @property
    def identity(self) -> str:
        """What stored rows name this target by: the reference, plus the adapter's hash when there is one."""
        return target_identity(self.ref, self.adapter)


def load_target(
    ref: str,
    *,
    adapter: str | Adapter | None = None,
    merge_adapter: bool = True,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> Target:
    """Resolve and load the target model and its tokenizer; ``adapter`` (a directory or Hub id) is applied
    on top, merged into the weights unless ``merge_adapter`` is false."""
    opts = {"trust_remote_code": trust_remote_code}
    resolved = resolve_adapter(adapter) if isinstance(adapter, str) else adapter
    model = load_causal_lm(ref, dtype=dtype, device=device, **opts)
    if resolved is not None:
        model = apply_adapter(model, resolved, merge=merge_adapter)
    return Target(ref, model, load_tokenizer(ref, **opts), resolved)


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
