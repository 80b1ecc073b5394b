"""The activation reconstructor (AR): the target truncated to blocks 0..K with identity final norm
and lm_head, plus a ``Linear(d, d, bias=False)`` value head read at the last real token."""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nla.prompts import ar_prompt


def strip_head(backbone: PreTrainedModel) -> PreTrainedModel:
    """Make ``backbone``'s output the residual stream after its last block: final norm and
    lm_head become identity."""
    backbone.get_decoder().norm = nn.Identity()
    backbone.lm_head = nn.Identity()
    backbone.config.tie_word_embeddings = False
    return backbone


def identity_head(d_model: int, like: torch.Tensor) -> nn.Linear:
    """A value head initialised to the identity."""
    head = nn.Linear(d_model, d_model, bias=False, device=like.device, dtype=like.dtype)
    with torch.no_grad():
        head.weight.copy_(torch.eye(d_model))
    return head


class Reconstructor(nn.Module):
    """Predicts an activation vector from an explanation."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        value_head: nn.Linear,
        tokenizer: PreTrainedTokenizerBase,
        template: str,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.value_head = value_head
        self.tokenizer = tokenizer
        self.template = template

    def encode(self, explanations: list[str]) -> dict[str, torch.Tensor]:
        """Right-padded AR prompts, tokenised with the tokenizer's special tokens (BOS where it has one)."""
        texts = [ar_prompt(self.template, e) for e in explanations]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        encoded = [self.tokenizer.encode(t, add_special_tokens=True) for t in texts]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.tensor(e)
            mask[i, : len(e)] = 1
        device = self.value_head.weight.device
        return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Predicted vectors ``[B, d]`` read at each row's last real token."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        last = attention_mask.cumsum(dim=1).argmax(dim=1)
        return self.value_head(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])

    @torch.inference_mode()
    def reconstruct(self, explanations: list[str], batch_size: int = 32) -> torch.Tensor:
        """Predicted vectors for ``explanations`` as float32 ``[n, d]``."""
        parts = [
            self(**self.encode(explanations[i : i + batch_size])).float().cpu()
            for i in range(0, len(explanations), batch_size)
        ]
        return torch.cat(parts) if parts else torch.empty(0, self.value_head.in_features)
