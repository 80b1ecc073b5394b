"""On-disk layout shared by loading and saving: directory names, file names, truncation."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

from transformers import PretrainedConfig

AV_DIR, AR_DIR = "av", "ar"
VALUE_HEAD = "value_head.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
COMPACT = "compact"
# Per-layer config lists that must be cut with the layer count (transformers validates their length).
_PER_LAYER_KEYS = ("layer_types", "no_rope_layers")


def truncated_config(config: PretrainedConfig, n_layers: int) -> PretrainedConfig:
    """A copy of ``config`` with only the first ``n_layers`` decoder blocks."""
    config = copy.deepcopy(config)
    text = config.get_text_config()
    text.num_hidden_layers = n_layers
    for key in _PER_LAYER_KEYS:
        value = getattr(text, key, None)
        if isinstance(value, list):
            setattr(text, key, value[:n_layers])
    return config


def fingerprint(*dirs: Path) -> str:
    """A short content hash of a checkpoint: its small files (sidecars, configs, heads, adapters) whole,
    other files (full weights, GBs) by name, size and ``SAMPLED_BLOCKS`` blocks spread over them, so
    two retrained weight files of one size get different ids without reading them in full."""
    h = hashlib.sha256()
    for d in dirs:
        for path in sorted(d.iterdir()):
            if path.suffix in {".yaml", ".json"} or path.name in {VALUE_HEAD, "adapter_model.safetensors"}:
                h.update(path.name.encode())
                h.update(path.read_bytes())
            elif path.is_file():
                h.update(f"{path.name}:{path.stat().st_size}".encode())
                h.update(_sampled(path))
    return h.hexdigest()[:12]


SAMPLED_BLOCKS, BLOCK = 64, 1 << 16


def _sampled(path: Path) -> bytes:
    """A file's bytes if small, else ``SAMPLED_BLOCKS`` evenly spaced blocks, first and last included
    (a safetensors file's header, with every tensor's name and shape, is in the first)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= SAMPLED_BLOCKS * BLOCK:
            return f.read()
        blocks = []
        for i in range(SAMPLED_BLOCKS):
            f.seek(i * (size - BLOCK) // (SAMPLED_BLOCKS - 1))
            blocks.append(f.read(BLOCK))
        return b"".join(blocks)
