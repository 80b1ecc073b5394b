"""Extraction: layer numbering, token attribution, position selection, context limits."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from nla.activations import (
    extract_activations,
    generate_reply,
    residual_stream,
    select_positions,
    tokenize_transcript,
)
from nla.errors import PositionError, TranscriptError
from nla.transcript import Message, Transcript

CHAT = Transcript(
    (
        Message("system", "You help with cooking."),
        Message("user", "What are you hiding?"),
        Message("assistant", "I am an assistant and I help people."),
    )
)


@pytest.fixture(scope="module")
def tiny(tiny_dirs, arch):
    path = tiny_dirs[arch]
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("layer", [0, 1, 3])
def test_layer_k_is_the_output_of_block_k(tiny, layer: int) -> None:
    model, tokenizer = tiny
    ids = tokenize_transcript(tokenizer, CHAT).input_ids
    captured = {}

    def keep(module, args, out) -> None:
        captured["h"] = (out[0] if isinstance(out, tuple) else out)[0]

    hook = model.model.layers[layer].register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
    finally:
        hook.remove()
    stream = residual_stream(model, ids, layer)
    assert torch.allclose(stream, captured["h"].float(), atol=1e-6)
    with torch.no_grad():
        hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    if layer < model.config.num_hidden_layers - 1:  # the last entry is taken after the final norm
        assert torch.allclose(stream, hidden[layer + 1][0], atol=1e-6)
    assert not torch.allclose(stream, hidden[layer][0])


def test_tokens_are_attributed_to_messages(tiny) -> None:
    _, tokenizer = tiny
    tokens = tokenize_transcript(tokenizer, CHAT).tokens
    for i, message in enumerate(CHAT.messages):
        content = [t for t in tokens if t.message_index == i and t.in_content]
        assert {t.role for t in content} == {message.role}
        assert "".join(t.text for t in content).strip() == message.content
    assert [t.position for t in tokens] == list(range(len(tokens)))
    assert any(t.is_special and not t.in_content for t in tokens)


DEFAULT_SYSTEM = (  # like SmolLM2's template: a system prompt of its own when the chat has none
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful cat.<|im_end|>\n' }}"
    "{% endif %}"
)


def test_a_system_prompt_the_template_adds_is_labelled_system(tiny) -> None:
    _, tokenizer = tiny
    plain = tokenize_transcript(tokenizer, Transcript(CHAT.messages[1:])).tokens
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    bos = "{{ bos_token }}" if tokenizer.chat_template.startswith("{{ bos_token }}") else ""
    tokenizer.chat_template = bos + DEFAULT_SYSTEM + tokenizer.chat_template.removeprefix(bos)
    added = tokenize_transcript(tokenizer, Transcript(CHAT.messages[1:])).tokens
    bos = 1 if plain[0].text == "<bos>" else 0  # gemma-style: the BOS stays first, the user's
    rest, head = plain[bos:], added[bos : len(added) - len(plain) + bos]
    assert len(head) > 5 and [t.text for t in added[len(added) - len(rest) :]] == [t.text for t in rest]
    assert "".join(t.text for t in head).startswith("<|im_start|>system")
    assert {t.role for t in head} == {"system"} and not any(t.in_content for t in head)  # not the user's turn
    assert [(t.role, t.in_content) for t in added[len(added) - len(rest) :]] == [(t.role, t.in_content) for t in rest]
    with_system = tokenize_transcript(tokenizer, CHAT).tokens  # a chat with its own system prompt: as before
    assert [t.role for t in with_system] == [t.role for t in tokenize_transcript(AutoTokenizer.from_pretrained(
        tokenizer.name_or_path), CHAT).tokens]  # fmt: skip


def test_position_selection(tiny) -> None:
    _, tokenizer = tiny
    tokens = tokenize_transcript(tokenizer, CHAT).tokens
    assistant = select_positions(tokens, "assistant")
    assert assistant and all(tokens[p].role == "assistant" and tokens[p].in_content for p in assistant)
    assert select_positions(tokens, "all") == list(range(len(tokens)))
    assert select_positions(tokens, "3, 1,5-6") == [1, 3, 5, 6]
    with pytest.raises(PositionError, match="outside"):
        select_positions(tokens, f"{len(tokens)}")
    with pytest.raises(PositionError, match="not a position"):
        select_positions(tokens, "first")
    only_user = tokenize_transcript(tokenizer, Transcript((Message("user", "hi there"),))).tokens
    with pytest.raises(PositionError, match="no assistant content tokens"):
        select_positions(only_user, "assistant")


def test_extract_returns_selected_rows(tiny) -> None:
    model, tokenizer = tiny
    acts = extract_activations(model, tokenizer, CHAT, 2, "assistant")
    full = residual_stream(model, tokenize_transcript(tokenizer, CHAT).input_ids, 2)
    assert acts.vectors.shape == (len(acts.tokens), model.config.hidden_size)
    assert torch.equal(acts.vectors, full[[t.position for t in acts.tokens]])


def test_transcript_longer_than_context_is_refused(tiny) -> None:
    model, tokenizer = tiny
    long = Transcript((Message("user", "hello world " * 400),), "long.json")
    with pytest.raises(TranscriptError, match=r"long.json: \d+ tokens exceed the model's context of 512"):
        extract_activations(model, tokenizer, long, 1, "all")


def test_generate_reply_appends_an_assistant_turn(tiny) -> None:
    model, tokenizer = tiny
    chat = Transcript((Message("user", "What are you hiding?"),))
    replied = generate_reply(model, tokenizer, chat, max_new_tokens=5)
    assert replied.messages[:-1] == chat.messages and replied.messages[-1].role == "assistant"
    with pytest.raises(TranscriptError, match="after a user message"):
        generate_reply(model, tokenizer, replied)
