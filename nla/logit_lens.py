"""The logit lens: what a residual-stream vector would predict if the model stopped there.

A layer-K residual is passed through the target's own final norm and unembedding (``lm_head``), and the
top tokens of the resulting distribution are read (nostalgebraist 2020; the method Cywiński et al. 2025
use to recover a Taboo model's secret word). It is one matmul per token, needs no NLA, and so gives the
auditor an independent second reading of every activation an NLA explains. Gemma-style final logit
soft-capping is applied when the config has it (it does not change the ranking, only the probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nla.errors import ModelResolutionError


@dataclass(frozen=True)
class LensReading:
    """The top tokens one residual vector decodes to at one layer."""

    layer: int
    token_ids: list[int]
    tokens: list[str]
    logprobs: list[float]
    """Natural-log probabilities of ``token_ids`` under the lens distribution, best first."""


def _final_norm(model: PreTrainedModel) -> torch.nn.Module:
    decoder = model.get_decoder()
    norm = getattr(decoder, "norm", None) or getattr(decoder, "final_layernorm", None)
    if norm is None:
        raise ModelResolutionError(f"{type(model).__name__}: no final norm found for the logit lens")
    return norm


@torch.inference_mode()
def lens_logprobs(model: PreTrainedModel, residual: torch.Tensor) -> torch.Tensor:
    """Log-probabilities ``[n, vocab]`` of residual vectors ``[n, d]`` read through the final norm and
    the unembedding."""
    param = next(model.parameters())
    hidden = _final_norm(model)(residual.to(device=param.device, dtype=param.dtype))
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1).cpu()


def logit_lens(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    residual: torch.Tensor,
    layer: int,
    top_k: int = 10,
) -> list[LensReading]:
    """The ``top_k`` tokens of each residual vector (rows of ``residual``) read at ``layer``."""
    if residual.shape[0] == 0:
        return []
    logprobs = lens_logprobs(model, residual)
    values, indices = logprobs.topk(min(top_k, logprobs.shape[-1]), dim=-1)
    return [
        LensReading(layer, ids, [tokenizer.decode([i]) for i in ids], [round(v, 4) for v in vals])
        for ids, vals in zip(indices.tolist(), values.tolist(), strict=True)
    ]
