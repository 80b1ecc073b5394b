"""Tiny randomly initialised llama- and gemma3-shaped models with a small trained BPE tokenizer,
built from configs in seconds and saved as ordinary Hugging Face directories."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Gemma-style: the template itself writes BOS, and the tokenizer also adds BOS to plain encodes.
GEMMA_TEMPLATE = "{{ bos_token }}" + CHATML
SPECIALS = ["<pad>", "<bos>", "<|im_start|>", "<|im_end|>"]
MARKER = "●"
CORPUS = [
    "You are a meticulous AI researcher conducting an important investigation into activation vectors.",
    "We will pass the vector enclosed in <concept> tags into your context.",
    "You must then produce an explanation for the vector, enclosed within <explanation> tags.",
    "Summary of the following text: <text>the cat sat on the mat</text> <summary>",
    "The quick brown fox jumps over the lazy dog. Please provide an explanation.",
    "What are you hiding? I am an assistant and I help people with questions about cooking and code.",
    "system user assistant hello world the a of and to in is it that for on with as",
] * 20


def build_tokenizer(*, gemma_style: bool) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on a small corpus, with a single-token marker."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_tokens([MARKER])
    if gemma_style:
        bos = tok.token_to_id("<bos>")
        tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        chat_template=GEMMA_TEMPLATE if gemma_style else CHATML,
    )


def _ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def build_llama(out: Path, *, hidden: int = 64, layers: int = 4, seed: int = 0) -> Path:
    """A tiny llama-shaped causal LM (tied embeddings, grouped-query attention)."""
    tokenizer = build_tokenizer(gemma_style=False)
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True, initializer_range=0.3, **_ids(tokenizer),
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_gemma3(out: Path, *, hidden: int = 64, layers: int = 4, seed: int = 0) -> Path:
    """A tiny gemma3-shaped causal LM (scaled embeddings, alternating sliding-window and full
    attention layers, BOS)."""
    tokenizer = build_tokenizer(gemma_style=True)
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, sliding_window=8, max_position_embeddings=512,
        layer_types=["sliding_attention", "full_attention"] * (layers // 2), **_ids(tokenizer),
    )  # fmt: skip
    Gemma3ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def teach_av(nla, response: str, *, steps: int = 60, seed: int = 0) -> None:
    """Fine-tune a tiny AV (in place) to answer ``response`` whatever vector is injected, so tests
    can exercise closed tags, early stopping and AR scoring on real generations."""
    torch.manual_seed(seed)
    target = nla.av_tokenizer.encode(response, add_special_tokens=False) + [nla.av_tokenizer.eos_token_id]
    prompt = torch.tensor(nla.av_prompt.input_ids)
    ids = torch.cat([prompt, torch.tensor(target)])[None]
    optimiser = torch.optim.Adam(nla.av.parameters(), lr=3e-3)
    nla.av.train()
    for _ in range(steps):
        embeds = nla.av.get_input_embeddings()(ids).repeat(4, 1, 1)
        vectors = torch.randn(4, embeds.shape[-1])
        embeds[:, nla.av_prompt.site] = vectors * (
            nla.meta.injection_scale / vectors.norm(dim=-1, keepdim=True)
        )
        logits = nla.av(inputs_embeds=embeds).logits[:, len(prompt) - 1 : -1]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[0, len(prompt) :].repeat(4)
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    nla.av.eval()
