"""Reference activations: the set the FVE baseline B and the injection scale are measured on."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nla.activations import residual_stream, tokenize_transcript
from nla.errors import NLAError
from nla.transcript import transcript_from_messages


def load_reference_texts(path: Path | None = None) -> list[dict]:
    """Reference items (``{"text": ...}`` or ``{"messages": [...]}``): the bundled set, or a JSON file."""
    if path is None:
        return json.loads(resources.files("nla.data").joinpath("reference_texts.json").read_text("utf-8"))
    try:
        items = json.loads(Path(path).read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise NLAError(f"reference texts {path}: {exc}") from exc
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and ("text" in i or "messages" in i) for i in items
    ):
        raise NLAError(
            f"reference texts {path}: expected a JSON list of {{'text': ...}} or {{'messages': [...]}}"
        )
    return items


def reference_vectors(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, layer: int, items: list[dict] | None = None
) -> torch.Tensor:
    """Activations at ``layer`` over reference texts: prose with the tokenizer's special tokens,
    chats through the chat template; content tokens only, position 0 and specials skipped."""
    items = load_reference_texts() if items is None else items
    special = set(tokenizer.all_special_ids)
    parts = []
    for i, item in enumerate(items):
        if "messages" in item:
            tokenized = tokenize_transcript(
                tokenizer, transcript_from_messages(item["messages"], f"reference {i}")
            )
            ids = tokenized.input_ids
            keep = [t.position for t in tokenized.tokens if t.in_content and not t.is_special]
        else:
            ids = tokenizer.encode(item["text"], add_special_tokens=True)
            keep = [p for p, t in enumerate(ids) if p > 0 and t not in special]
        parts.append(residual_stream(model, ids, layer)[keep])
    return torch.cat(parts)
