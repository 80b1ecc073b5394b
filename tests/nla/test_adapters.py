"""Adapter targets on a tiny random model with a tiny random LoRA: identity and activations differ from the
base, merged and unmerged agree, and only safetensors adapters load."""

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from nla.activations import residual_stream, tokenize_transcript
from nla.adapters import resolve_adapter
from nla.errors import ModelResolutionError
from nla.pipeline import load_target
from nla.resolve import load_causal_lm
from nla.transcript import Message, Transcript
from tests.conftest import TINY_LAYER

CHAT = Transcript(
    (Message("user", "What are you hiding about the cat?"), Message("assistant", "the mat")), "t"
)


def make_adapter(base: Path, out: Path, seed: int = 0) -> Path:
    """A rank-4 LoRA with random (not zero) B matrices on every linear layer, saved as safetensors."""
    torch.manual_seed(seed)
    model = load_causal_lm(str(base))
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_adapter(tiny_dirs, tmp_path_factory) -> Path:
    return make_adapter(tiny_dirs["llama"], tmp_path_factory.mktemp("adapter") / "lora")


def _stream(target) -> torch.Tensor:
    ids = tokenize_transcript(target.tokenizer, CHAT).input_ids
    return residual_stream(target.model, ids, TINY_LAYER)


def test_adapter_changes_identity_and_activations(tiny_dirs, tiny_adapter):
    base = load_target(str(tiny_dirs["llama"]))
    tuned = load_target(str(tiny_dirs["llama"]), adapter=str(tiny_adapter))
    assert base.identity == str(tiny_dirs["llama"])
    assert tuned.identity == f"{tiny_dirs['llama']}+adapter:{tuned.adapter.digest[:16]}"
    assert len(tuned.adapter.digest) == 64
    assert not torch.allclose(_stream(base), _stream(tuned), atol=1e-3)


def test_merged_and_unmerged_adapters_agree(tiny_dirs, tiny_adapter):
    merged = load_target(str(tiny_dirs["llama"]), adapter=str(tiny_adapter))
    separate = load_target(str(tiny_dirs["llama"]), adapter=str(tiny_adapter), merge_adapter=False)
    assert isinstance(separate.model, PeftModel) and not isinstance(merged.model, PeftModel)
    a, b = _stream(merged), _stream(separate)
    assert float((a - b).norm() / a.norm()) < 1e-5  # float32 rounding of W + BA versus W x + B(A x)


def test_digest_follows_content(tiny_dirs, tiny_adapter, tmp_path):
    other = make_adapter(tiny_dirs["llama"], tmp_path / "other", seed=1)
    assert resolve_adapter(str(tiny_adapter)).digest == resolve_adapter(str(tiny_adapter)).digest
    assert resolve_adapter(str(other)).digest != resolve_adapter(str(tiny_adapter)).digest


def test_refuses_pickled_or_incomplete_adapters(tiny_adapter, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "adapter_config.json").write_text((tiny_adapter / "adapter_config.json").read_text())
    (pickled / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelResolutionError, match="only safetensors weights are loaded"):
        resolve_adapter(str(pickled))
    with pytest.raises(ModelResolutionError, match="is not a directory"):
        resolve_adapter(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelResolutionError, match="adapter_config.json is missing"):
        resolve_adapter(str(empty))


def test_adapter_for_another_base_is_refused(tiny_dirs, tmp_path):
    from tests.tiny_models import build_llama

    wide = build_llama(tmp_path / "wide", hidden=96)
    adapter = make_adapter(wide, tmp_path / "wide-lora")
    with pytest.raises(ModelResolutionError, match="does not fit this base model"):
        load_target(str(tiny_dirs["llama"]), adapter=str(adapter))
