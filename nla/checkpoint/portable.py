"""Released-format directories that load the same under transformers 4.5x and 5.x, and in the reference
release's own code.

transformers 5 writes a model's rotary settings only as ``rope_parameters`` and names the tokenizer class
``TokenizersBackend``. transformers 4.x reads neither: its tokenizer lookup fails, and its config falls
back to the class default ``rope_theta`` (10,000 for llama where SmolLM2 uses 100,000), silently changing
every AR prediction and the AV's text. So every exported ``config.json`` also carries the 4.x keys
(``rope_theta``, ``rope_scaling``, and for Gemma 3 ``rope_local_base_freq``) with the same values, and the
tokenizer class is ``PreTrainedTokenizerFast`` (one class in both: 5.x aliases it to its backend).

A tokenizer whose special tokens declare a BOS it never prepends (SmolLM2: ``<|im_start|>``) trips the
reference critic's BOS check; its exported config drops that BOS, so the files say what the tokenizer does.
Tokenisation is unchanged either way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
_LAYER_TYPES = ("full_attention", "sliding_attention")


def legacy_rope(config: dict[str, Any]) -> dict[str, Any]:
    """The transformers-4.x keys for one (text) config's ``rope_parameters``; {} when it has none."""
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict):
        return {}
    if any(kind in rope for kind in _LAYER_TYPES):  # per layer type (Gemma 3): global and local bases
        full, local = rope.get("full_attention") or {}, rope.get("sliding_attention") or {}
        out = legacy_rope({"rope_parameters": full})
        if "rope_theta" in local:
            out["rope_local_base_freq"] = local["rope_theta"]
        return out
    out: dict[str, Any] = {}
    if "rope_theta" in rope:
        out["rope_theta"] = rope["rope_theta"]
    kind = rope.get("rope_type", "default")
    scaling = {k: v for k, v in rope.items() if k not in ("rope_theta", "rope_type")}
    out["rope_scaling"] = None if kind == "default" else {"rope_type": kind, "type": kind, **scaling}
    return out


def portable_config(directory: Path) -> None:
    """Add the 4.x rotary keys to ``directory/config.json`` (and its ``text_config``), same values."""
    path = directory / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    for part in (config, config.get("text_config")):
        if isinstance(part, dict):
            part.update(legacy_rope(part))
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def portable_tokenizer(directory: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """Name the tokenizer class both major versions know; drop a declared BOS the tokenizer never adds."""
    path = directory / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
    bos = tokenizer.bos_token_id
    if bos is not None and tokenizer("x")["input_ids"][:1] != [bos]:
        config["bos_token"] = None
        config["add_bos_token"] = False
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    special = directory / "special_tokens_map.json"
    if special.is_file() and config.get("bos_token") is None:
        tokens = json.loads(special.read_text(encoding="utf-8"))
        tokens.pop("bos_token", None)
        special.write_text(json.dumps(tokens, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_portable(directory: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """Both: the config and the tokenizer files of one saved half (``av/`` or ``ar/``)."""
    portable_config(directory)
    portable_tokenizer(directory, tokenizer)
