"""Teacher-forced log-probabilities of AV responses with the vector injected at the marker.

The AV prompt is identical for every vector up to the marker, so its KV cache is computed once per
batch without gradients and shared; gradients flow from the marker onwards. The forward values are
exactly those of a full pass (and of generation, which shares the same prefix); only the gradient
through the prefix positions' keys and values is left out, a small part of the adapters' signal for a
several-fold saving on CPU.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from nla.metrics import normalise
from nla.prompts import AVPrompt


def response_logprobs(
    model: torch.nn.Module,
    prompt: AVPrompt,
    injection_scale: float,
    vectors: torch.Tensor,
    responses: list[list[int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities ``[B, L]`` of each response and its mask (responses right-padded)."""
    device = next(model.parameters()).device
    ids = torch.tensor(prompt.input_ids, device=device)
    site, batch = prompt.site, len(responses)
    embed = model.get_input_embeddings()
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(inputs_embeds=embed(ids[:site])[None], past_key_values=cache, use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(batch)
    width = max(len(r) for r in responses)
    resp = torch.zeros((batch, width), dtype=torch.long, device=device)
    mask = torch.zeros((batch, width), device=device)
    for i, r in enumerate(responses):
        resp[i, : len(r)] = torch.tensor(r, device=device)
        mask[i, : len(r)] = 1
    seq = torch.cat([ids[site:].expand(batch, -1), resp], dim=1)
    embeds = embed(seq).clone()
    embeds[:, 0] = normalise(vectors.to(device), injection_scale).to(embeds.dtype)
    logits = model(inputs_embeds=embeds, past_key_values=cache, use_cache=True).logits
    start = len(prompt.input_ids) - site - 1
    logp = torch.log_softmax(logits[:, start : start + width].float(), dim=-1)
    return logp.gather(-1, resp[..., None]).squeeze(-1) * mask, mask
