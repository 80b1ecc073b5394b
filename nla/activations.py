"""Residual-stream extraction: tokens of a chat transcript with their metadata and the
activation after decoder block K ("layer K" = ``hidden_states[K + 1]`` in transformers' numbering)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nla.errors import PositionError, TranscriptError
from nla.transcript import ROLES, Transcript


@dataclass(frozen=True)
class TokenInfo:
    """One token of a templated transcript."""

    position: int
    token_id: int
    text: str
    role: str
    message_index: int
    in_content: bool
    is_special: bool


@dataclass(frozen=True)
class TokenizedTranscript:
    """A transcript as the model sees it, with per-token metadata."""

    transcript: Transcript
    input_ids: list[int]
    tokens: list[TokenInfo]


@dataclass(frozen=True)
class Activations:
    """Residual-stream vectors at ``layer`` for the selected tokens of one transcript."""

    transcript: Transcript
    layer: int
    tokens: list[TokenInfo]
    vectors: torch.Tensor


def _render(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]], gen: bool) -> str:
    return tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=gen)


def tokenize_transcript(
    tokenizer: PreTrainedTokenizerBase, transcript: Transcript, *, add_generation_prompt: bool = False
) -> TokenizedTranscript:
    """Tokenise with the chat template and attribute every token to a message and role; the tokens of a
    system prompt the template adds on its own (SmolLM2's default one) are ``system``, not the first turn's."""
    chat = transcript.as_chat()
    ids = list(
        tokenizer.apply_chat_template(
            chat, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=False
        )
    )
    text = _render(tokenizer, chat, add_generation_prompt)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) != ids:
        raise TranscriptError(
            f"{transcript.source}: the chat template's text does not re-tokenise to its token ids; "
            "tokens cannot be aligned to messages for this tokenizer"
        )
    turn_ends, spans = _turn_layout(tokenizer, transcript, text)
    injected = _template_system_end(tokenizer, chat)
    special = set(tokenizer.all_special_ids)
    tokens = []
    for pos, (tid, (start, end)) in enumerate(zip(ids, enc["offset_mapping"], strict=True)):
        turn = bisect.bisect_right(turn_ends, start)
        if start < injected:  # the template's own system prompt, before the first message's turn
            role, in_content = "system", False
        elif turn < len(transcript.messages):
            role = transcript.messages[turn].role
            c0, c1 = spans[turn]
            in_content = start < c1 and end > c0
        else:  # the generation prompt that opens the reply still to come
            role, in_content = "assistant", False
        tokens.append(TokenInfo(pos, tid, tokenizer.decode([tid]), role, turn, in_content, tid in special))
    return TokenizedTranscript(transcript, ids, tokens)


def _template_system_end(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]]) -> int:
    """Where a system prompt that the chat template adds when the chat has none ends in the rendered text
    (0 when it adds none). A system turn of our own, rendered alone and before the first message, shows
    how a system turn closes and so where the first message's turn starts; whatever the template renders
    before that turn when the chat has no system message, beyond a prefix of ours (a BOS), is its own."""
    if not chat or chat[0]["role"] == "system":
        return 0
    mark = {"role": "system", "content": "\u2063"}
    try:
        alone = _render(tokenizer, chat[:1], False)
        system = _render(tokenizer, [mark], False)
        both = _render(tokenizer, [mark, chat[0]], False)
    except Exception:  # noqa: BLE001 (a template without a system role adds no system prompt either)
        return 0
    at = system.find(mark["content"])
    if at < 0 or not both.startswith(system):
        return 0
    turn = both[len(system) :]  # the first message's whole turn
    if not alone.endswith(turn):
        return 0
    head = alone[: len(alone) - len(turn)]
    return 0 if both.startswith(head) else len(head)


def _turn_layout(
    tokenizer: PreTrainedTokenizerBase, transcript: Transcript, text: str
) -> tuple[list[int], list[tuple[int, int]]]:
    """Character end of each turn and the character span of each message's content."""
    chat = transcript.as_chat()
    ends, spans, start = [], [], 0
    for i, message in enumerate(transcript.messages):
        rendered = _render(tokenizer, chat[: i + 1], False)
        if not text.startswith(rendered):
            raise TranscriptError(
                f"{transcript.source}: the chat template is not prefix-stable at message {i}; "
                "tokens cannot be attributed to messages"
            )
        c0 = rendered.find(message.content, start) if message.content else len(rendered)
        if c0 < 0:
            raise TranscriptError(f"{transcript.source}: message {i} content is altered by the chat template")
        spans.append((c0, c0 + len(message.content)))
        ends.append(len(rendered))
        start = len(rendered)
    return ends, spans


def check_context(model: PreTrainedModel, n_tokens: int, source: str) -> None:
    """Refuse sequences longer than the model's context window."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and n_tokens > limit:
        raise TranscriptError(f"{source}: {n_tokens} tokens exceed the model's context of {limit} tokens")


def check_layer(model: PreTrainedModel, layer: int) -> None:
    """Refuse a layer index the model does not have."""
    n_layers = model.config.get_text_config().num_hidden_layers
    if not 0 <= layer < n_layers:
        raise PositionError(f"layer {layer} is out of range: the model has decoder blocks 0..{n_layers - 1}")


class _StopForward(Exception):
    """Raised by the capture hook: blocks above K are not needed."""


def residual_stream(model: PreTrainedModel, input_ids: list[int], layer: int) -> torch.Tensor:
    """The residual stream after decoder block ``layer`` at every position, as float32 ``[T, d]``.

    Read with a hook on the block itself: ``hidden_states[-1]`` in transformers is taken after the
    final norm, so ``hidden_states[K + 1]`` is only the block output for K below the last block."""
    return residual_streams(model, input_ids, [layer])[layer]


@torch.inference_mode()
def residual_streams(
    model: PreTrainedModel, input_ids: list[int], layers: list[int]
) -> dict[int, torch.Tensor]:
    """``residual_stream`` at several layers from one forward pass, stopped after the deepest one."""
    for layer in layers:
        check_layer(model, layer)
    captured: dict[int, torch.Tensor] = {}
    deepest = max(layers)

    def grabber(layer: int):
        def grab(module: torch.nn.Module, args: object, output: object) -> None:
            captured[layer] = output[0] if isinstance(output, tuple) else output
            if layer == deepest:
                raise _StopForward

        return grab

    blocks = model.get_decoder().layers
    handles = [blocks[layer].register_forward_hook(grabber(layer)) for layer in set(layers)]
    try:
        model(input_ids=torch.tensor([input_ids], device=model.device), use_cache=False)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return {layer: captured[layer][0].float().cpu() for layer in layers}


@torch.inference_mode()
def generate_reply(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    transcript: Transcript,
    *,
    max_new_tokens: int = 96,
    temperature: float = 0.0,
    seed: int = 0,
) -> Transcript:
    """Let the target write the next assistant turn and append it."""
    if not transcript.ends_with_user:
        raise TranscriptError(f"{transcript.source}: a reply can only be generated after a user message")
    ids = tokenizer.apply_chat_template(
        transcript.as_chat(), tokenize=True, add_generation_prompt=True, return_dict=False
    )
    check_context(model, len(ids) + max_new_tokens, transcript.source)
    torch.manual_seed(seed)
    prompt = torch.tensor([list(ids)], device=model.device)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        top_p=None,
        top_k=None,
        **sampling,
    )
    reply = tokenizer.decode(out[0, prompt.shape[1] :], skip_special_tokens=True).strip()
    return transcript.with_reply(reply)


def select_positions(tokens: list[TokenInfo], spec: str) -> list[int]:
    """Positions chosen by ``spec``: a role name (content tokens of that role), ``all``, or
    a comma list of positions and ranges such as ``12,13,40-45``."""
    spec = spec.strip()
    if spec == "all":
        return [t.position for t in tokens]
    if spec in ROLES:
        chosen = [t.position for t in tokens if t.role == spec and t.in_content and not t.is_special]
        if not chosen:
            raise PositionError(f"--positions {spec}: the transcript has no {spec} content tokens")
        return chosen
    return _explicit_positions(spec, len(tokens))


def _explicit_positions(spec: str, n_tokens: int) -> list[int]:
    chosen: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, _, hi = part.partition("-")
        try:
            start, stop = int(lo), int(hi or lo)
        except ValueError:
            raise PositionError(
                f"--positions: {part!r} is not a position; use assistant, user, system, all, or e.g. 12,13,40-45"
            ) from None
        if not 0 <= start <= stop < n_tokens:
            raise PositionError(
                f"--positions: {part} is outside the transcript's positions 0..{n_tokens - 1}"
            )
        chosen.extend(range(start, stop + 1))
    if not chosen:
        raise PositionError("--positions is empty")
    return sorted(set(chosen))


def extract_activations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    transcript: Transcript,
    layer: int,
    positions: str = "assistant",
) -> Activations:
    """Tokenise ``transcript``, run the target once and keep the selected positions at ``layer``."""
    tokenized = tokenize_transcript(tokenizer, transcript)
    check_context(model, len(tokenized.input_ids), transcript.source)
    chosen = select_positions(tokenized.tokens, positions)
    stream = residual_stream(model, tokenized.input_ids, layer)
    return Activations(transcript, layer, [tokenized.tokens[p] for p in chosen], stream[chosen])


@torch.inference_mode()
def generate_replies(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    transcripts: list[Transcript],
    *,
    max_new_tokens: int = 96,
    batch_size: int = 16,
) -> list[str]:
    """Greedy replies to many transcripts that end with a user turn, generated in left-padded batches
    (for building training data; ``generate_reply`` is the exact one-at-a-time path)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    replies: list[str] = []
    for start in range(0, len(transcripts), batch_size):
        chunk = transcripts[start : start + batch_size]
        prompts = []
        for transcript in chunk:
            if not transcript.ends_with_user:
                raise TranscriptError(
                    f"{transcript.source}: a reply can only be generated after a user message"
                )
            ids = list(
                tokenizer.apply_chat_template(
                    transcript.as_chat(), tokenize=True, add_generation_prompt=True, return_dict=False
                )
            )
            check_context(model, len(ids) + max_new_tokens, transcript.source)
            prompts.append(ids)
        width = max(len(p) for p in prompts)
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
        out = model.generate(
            input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
            pad_token_id=pad, top_p=None, top_k=None,
        )  # fmt: skip
        replies.extend(tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out)
    return replies
