"""Trainable NLA halves for a run: the AV and the truncated AR with LoRA adapters (peft) or, with
rank 0, fully fine-tuned (for GPUs); and the files a stage saves them as (adapter or full-weight
directories, plus the AR's value head)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig
from transformers.utils import logging as hf_logging

from nla.checkpoint.layout import AR_DIR, AV_DIR, VALUE_HEAD, truncated_config
from nla.errors import TrainingError
from nla.prompts import AVPrompt, build_av_prompt
from nla.reconstructor import Reconstructor, identity_head, strip_head
from nla.resolve import load_causal_lm, load_tokenizer, resolve_model_location
from nla.sidecar import SIDECAR, NLAMeta, meta_from_sidecars, read_sidecar
from nla.training.run import RunDir

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def run_meta(run: RunDir) -> NLAMeta:
    """The NLA metadata (marker, templates, injection scale) fixed by the run's ``init``."""
    av, ar = run.init / AV_DIR / SIDECAR, run.init / AR_DIR / SIDECAR
    return meta_from_sidecars(read_sidecar(av), read_sidecar(ar), av, ar)


def lora(rank: int) -> LoraConfig:
    """Adapters on every linear layer of the decoder blocks; no dropout, so steps are reproducible."""
    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear")


def adapt(model: nn.Module, rank: int, seed: int) -> nn.Module:
    """LoRA adapters initialised from ``seed``; rank 0 trains every weight instead."""
    if rank == 0:
        return model.requires_grad_(True)
    torch.manual_seed(seed)
    return get_peft_model(model, lora(rank))


def trainable_av(
    target: str, meta: NLAMeta, rank: int, device: str = "cpu", seed: int = 0
) -> tuple[nn.Module, object, AVPrompt]:
    """The trainable verbalizer (see ``adapt``), its tokenizer and its checked prompt."""
    tokenizer = load_tokenizer(target)
    model = adapt(load_causal_lm(target, device=device), rank, seed)
    return model, tokenizer, build_av_prompt(tokenizer, meta, target)


def trainable_ar(target: str, meta: NLAMeta, rank: int, device: str = "cpu", seed: int = 0) -> Reconstructor:
    """The reconstructor: blocks 0..K made trainable by ``adapt`` and an identity-initialised
    value head."""
    config = truncated_config(AutoConfig.from_pretrained(resolve_model_location(target)), meta.layer + 1)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the blocks above K are not loaded, by design
    try:
        backbone = strip_head(load_causal_lm(target, device=device, config=config))
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = load_tokenizer(target)
    tokenizer.padding_side = "right"
    backbone = adapt(backbone, rank, seed)
    head = identity_head(meta.d_model, next(backbone.parameters()))
    return Reconstructor(backbone, head, tokenizer, meta.ar_template)


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters being trained, by name."""
    return {n: p.detach().cpu().contiguous() for n, p in module.named_parameters() if p.requires_grad}


def save_trainable(module: nn.Module, path: Path) -> None:
    save_file(trainable_state(module), str(path))


def load_trainable(module: nn.Module, path: Path) -> None:
    """Load saved trainable parameters, refusing a file that does not match the module."""
    saved = load_file(str(path))
    params = dict(module.named_parameters())
    missing = sorted(set(trainable_state(module)) - set(saved))
    if missing or any(n not in params for n in saved):
        raise TrainingError(f"{path} does not match this model (e.g. missing {missing[:3]})")
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value)


def save_halves(out: Path, *, av: nn.Module | None = None, ar: Reconstructor | None = None) -> None:
    """A stage's result: ``av/`` and ``ar/`` as a LoRA adapter or full weights, plus the value head."""
    if av is not None:
        av.save_pretrained(out / AV_DIR)
    if ar is not None:
        ar.backbone.save_pretrained(out / AR_DIR)
        head = {"weight": ar.value_head.weight.detach().cpu().contiguous()}
        save_file(head, str(out / AR_DIR / VALUE_HEAD))


def is_adapter(directory: Path) -> bool:
    """Whether a saved half is a LoRA adapter (else full weights)."""
    return (directory / ADAPTER_WEIGHTS).is_file()


def load_av_half(model: nn.Module, directory: Path) -> None:
    """Load a saved AV into a freshly built trainable AV of the same kind."""
    _load_weights(model, directory / AV_DIR)


def load_ar_half(ar: Reconstructor, directory: Path) -> None:
    """Load a saved AR (adapter or weights, and value head) into a freshly built trainable AR."""
    _load_weights(ar.backbone, directory / AR_DIR)
    with torch.no_grad():
        ar.value_head.weight.copy_(load_file(str(directory / AR_DIR / VALUE_HEAD))["weight"])


def _load_weights(model: nn.Module, directory: Path) -> None:
    if isinstance(model, PeftModel) != is_adapter(directory):
        raise TrainingError(f"{directory}: saved with a different --lora-rank (LoRA vs full fine-tuning)")
    if isinstance(model, PeftModel):
        result = set_peft_model_state_dict(model, load_file(str(directory / ADAPTER_WEIGHTS)))
        unexpected = result.unexpected_keys
    else:
        weights = {
            k: v for f in sorted(directory.glob("model*.safetensors")) for k, v in load_file(str(f)).items()
        }
        unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
    if unexpected:
        raise TrainingError(f"{directory}: saved weights do not fit this model ({unexpected[:3]})")


def frozen_copy(model: nn.Module) -> nn.Module:
    """A frozen copy (adapters merged): the reference policy for the KL term."""
    ref = copy.deepcopy(model)
    ref = (ref.merge_and_unload() if isinstance(ref, PeftModel) else ref).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref
