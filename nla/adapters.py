"""Fine-tuned targets given as a base model plus a peft (LoRA) adapter.

Auditors receive many fine-tunes this way, and model organisms are built this way. An adapter is a
local directory holding ``adapter_config.json`` and ``adapter_model.safetensors`` (a Hub id works where
a hub is reachable; tests never need one). Only safetensors weights are loaded, never pickles.

The adapter's content hash is part of the target's identity (``Target.identity``), so rows of the base
model and of its fine-tune are keyed apart. By default the adapter is merged into the base weights at
load: ``benchmarks/organisms.py`` measures a merged forward pass against peft's separate (unmerged)
path, and both give the same activations to float32 rounding (tested).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nla.errors import ModelResolutionError
from nla.resolve import HUB_ID

if TYPE_CHECKING:
    from transformers import PreTrainedModel

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class Adapter:
    """A resolved adapter: where its files are and the sha256 of their content."""

    ref: str
    """As the user gave it (a path or a Hub id)."""
    path: Path
    """The local directory holding its files."""
    digest: str
    """sha256 over its config and weights: the adapter's identity."""

    @property
    def short(self) -> str:
        """The first 16 hex digits of the digest, as shown in target identities."""
        return self.digest[:16]


def resolve_adapter(ref: str) -> Adapter:
    """Find an adapter's files (a local directory, or a Hub snapshot) and hash them."""
    path = Path(ref).expanduser()
    if not path.exists() and HUB_ID.match(ref):
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(ref, allow_patterns=[ADAPTER_CONFIG, ADAPTER_WEIGHTS]))
        except Exception as exc:  # no hub, unknown repo: one message either way
            raise ModelResolutionError(
                f"adapter {ref!r}: not a local directory and not fetchable: {exc}"
            ) from exc
    if not path.is_dir():
        raise ModelResolutionError(f"adapter {ref!r} is not a directory holding {ADAPTER_CONFIG}")
    config, weights = path / ADAPTER_CONFIG, path / ADAPTER_WEIGHTS
    if not config.is_file():
        raise ModelResolutionError(f"adapter {path}: {ADAPTER_CONFIG} is missing")
    if not weights.is_file():
        other = sorted(p.name for p in path.glob("adapter_model.*"))
        hint = f" (found {', '.join(other)}: only safetensors weights are loaded)" if other else ""
        raise ModelResolutionError(f"adapter {path}: {ADAPTER_WEIGHTS} is missing{hint}")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelResolutionError(f"adapter {config}: not valid JSON: {exc}") from exc
    h = hashlib.sha256()
    for part in (config, weights):
        h.update(part.name.encode())
        h.update(part.read_bytes())
    return Adapter(ref, path, h.hexdigest())


def target_identity(model_ref: str, adapter: Adapter | None) -> str:
    """What identifies a target in stored rows: the model reference, plus the adapter's hash."""
    return model_ref if adapter is None else f"{model_ref}+adapter:{adapter.short}"


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Loading a peft adapter without the FutureWarning peft's own ``PeftModel.__init__`` triggers in
    transformers (``is_gradient_checkpointing``): it is about peft's code, not the user's, and says nothing
    a user can act on. Every other warning still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


def apply_adapter(model: PreTrainedModel, adapter: Adapter, *, merge: bool = True) -> PreTrainedModel:
    """The base ``model`` with ``adapter`` loaded on it: merged into the weights (one plain model, as
    fast as the base), or kept as separate peft modules."""
    from peft import PeftModel

    try:
        with quiet_peft():
            peft_model = PeftModel.from_pretrained(model, str(adapter.path), is_trainable=False)
    except (ValueError, RuntimeError, KeyError) as exc:  # shapes or module names that do not fit
        raise ModelResolutionError(f"adapter {adapter.ref!r} does not fit this base model: {exc}") from exc
    return (peft_model.merge_and_unload() if merge else peft_model).eval()
