"""Load an NLA pair from a released-format directory, a compact (LoRA) directory, a Hub id, or
``init`` (an untrained NLA over the target, built once and cached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from nla.adapters import quiet_peft
from nla.checkpoint.bundled import is_default_ref, resolve_default
from nla.checkpoint.layout import (
    ADAPTER_CONFIG,
    AR_DIR,
    AV_DIR,
    COMPACT,
    VALUE_HEAD,
    fingerprint,
    truncated_config,
)
from nla.checkpoint.model import NLA
from nla.errors import CheckpointError, ModelResolutionError
from nla.prompts import build_av_prompt, check_ar_template
from nla.reconstructor import Reconstructor, strip_head
from nla.resolve import load_causal_lm, load_tokenizer, resolve_model_location
from nla.sidecar import SIDECAR, meta_from_sidecars, read_sidecar, sidecar_role

INIT = "init"


def load_nla(
    ref: str,
    *,
    target_ref: str | None = None,
    layer: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> NLA:
    """Load the NLA named by ``ref``; ``init`` builds an untrained one over ``target_ref`` at ``layer``,
    ``default`` is the newest bundled trained NLA for the target where one ships (else ``init``),
    ``default@vN`` one bundled version."""
    if is_default_ref(ref):
        ref = resolve_default(target_ref, layer, ref)
    if ref == INIT or ref.startswith(INIT + ":"):
        from nla.checkpoint.init import cached_init_dir

        if target_ref is None:
            raise CheckpointError("--checkpoint init needs a --target to build the untrained NLA from")
        layer = int(ref.split(":", 1)[1]) if ":" in ref else layer
        ref = str(cached_init_dir(target_ref, layer, dtype=dtype, device=device))
    av_dir, ar_dir = _pair_dirs(ref)
    return load_pair(av_dir, ar_dir, dtype=dtype, device=device, trust_remote_code=trust_remote_code)


def _pair_dirs(ref: str) -> tuple[Path, Path]:
    """The AV and AR directories for a local pair directory or a Hub id prefix."""
    path = Path(ref).expanduser()
    if path.is_dir():
        av, ar = path / AV_DIR, path / AR_DIR
        if not (av.is_dir() and ar.is_dir()):
            raise CheckpointError(
                f"{path}: an NLA directory must contain '{AV_DIR}/' and '{AR_DIR}/' subdirectories"
            )
        return av, ar
    if path.exists():
        raise CheckpointError(f"{path} is not a directory")
    try:
        return Path(resolve_model_location(f"{ref}-av")), Path(resolve_model_location(f"{ref}-ar"))
    except ModelResolutionError as exc:
        raise CheckpointError(
            f"NLA checkpoint {ref!r} is not a directory, 'init', or a Hub id prefix"
        ) from exc


def _hub_snapshot(location: Path) -> Path:
    """A local copy of a Hub repository (a no-op for local directories)."""
    if location.is_dir():
        return location
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(location)))


def load_pair(
    av_dir: Path,
    ar_dir: Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    trust_remote_code: bool = False,
) -> NLA:
    """Load and validate both halves of an NLA."""
    av_dir, ar_dir = _hub_snapshot(av_dir), _hub_snapshot(ar_dir)
    av_raw, ar_raw = _sidecar(av_dir, "av"), _sidecar(ar_dir, "ar")
    meta = meta_from_sidecars(av_raw, ar_raw, av_dir / SIDECAR, ar_dir / SIDECAR)
    opts: dict[str, Any] = {"dtype": dtype, "device": device, "trust_remote_code": trust_remote_code}
    av, av_tok = _load_half(av_dir, av_raw, None, opts)
    ar_backbone, ar_tok = _load_half(ar_dir, ar_raw, meta.layer + 1, opts)
    where = str(av_dir / SIDECAR)
    _check_width(av, meta.d_model, av_dir)
    _check_width(ar_backbone, meta.d_model, ar_dir)
    prompt = build_av_prompt(av_tok, meta, where)
    check_ar_template(ar_tok, meta, str(ar_dir / SIDECAR))
    head = _value_head(ar_dir / VALUE_HEAD, meta.d_model, ar_backbone)
    ar_tok.padding_side = "right"
    reconstructor = Reconstructor(strip_head(ar_backbone), head, ar_tok, meta.ar_template).eval()
    name = av_dir.parent.name if av_dir.name == AV_DIR else av_dir.name
    return NLA(f"{name}@{fingerprint(av_dir, ar_dir)}", meta, av, av_tok, prompt, reconstructor)


def _sidecar(directory: Path, role: str) -> dict[str, Any]:
    raw = read_sidecar(directory / SIDECAR)
    found = sidecar_role(raw, directory / SIDECAR)
    if found != role:
        raise CheckpointError(
            f"{directory / SIDECAR}: role is {found!r}, but this directory is used as the {role}"
        )
    return raw


def _load_half(
    directory: Path, raw: dict[str, Any], n_layers: int | None, opts: dict[str, Any]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load one half: a full HF directory, or (compact form) base model + optional LoRA adapter."""
    compact = raw.get(COMPACT)
    source = (
        str(compact["base_model"])
        if isinstance(compact, dict) and "base_model" in compact
        else str(directory)
    )
    location = resolve_model_location(source)
    config = AutoConfig.from_pretrained(location, trust_remote_code=opts["trust_remote_code"])
    overrides: dict[str, Any] = {}
    if n_layers is not None:
        have = config.get_text_config().num_hidden_layers
        if compact is None and have != n_layers:
            raise CheckpointError(
                f"{directory}/config.json has {have} decoder blocks; an AR for layer {n_layers - 1} needs {n_layers}"
            )
        overrides["config"] = truncated_config(config, n_layers)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the AR has no final norm / lm_head on disk, by design
    try:
        model = load_causal_lm(source, **opts, **overrides)
    finally:
        hf_logging.set_verbosity(verbosity)
    if (directory / ADAPTER_CONFIG).is_file():
        with quiet_peft():
            model = PeftModel.from_pretrained(model, directory).merge_and_unload().eval()
    return model, load_tokenizer(source, trust_remote_code=opts["trust_remote_code"])


def _check_width(model: PreTrainedModel, d_model: int, directory: Path) -> None:
    width = model.config.get_text_config().hidden_size
    if width != d_model:
        raise CheckpointError(
            f"{directory}: model hidden size {width} differs from the sidecar's d_model {d_model}"
        )


def _value_head(path: Path, d_model: int, like: PreTrainedModel) -> nn.Linear:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the AR needs its value head")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable safetensors file: {exc}") from exc
    weight = tensors.get("weight")
    if weight is None or tuple(weight.shape) != (d_model, d_model):
        shape = None if weight is None else list(weight.shape)
        raise CheckpointError(
            f"{path}: expected one tensor 'weight' of shape [{d_model}, {d_model}], got {shape}"
        )
    param = next(like.parameters())
    head = nn.Linear(d_model, d_model, bias=False, device=param.device, dtype=param.dtype)
    with torch.no_grad():
        head.weight.copy_(weight)
    return head
