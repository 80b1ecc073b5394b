"""The AV and AR prompts, the injection marker, and their checks against a live tokenizer.

The AV prompt is one user message in the chat template, tokenised in one step
(``apply_chat_template(tokenize=True)``: never render-then-encode, which doubles BOS and shifts the slot).
The marker is found by token id AND both neighbours; the number of sites must be exactly one.
Templates are filled with ``str.format`` as the reference release fills them (``{{`` and ``}}`` are literal
braces), and must name exactly their one slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Formatter

from transformers import PreTrainedTokenizerBase

from nla.errors import CheckpointError
from nla.sidecar import NLAMeta

INJECTION_SLOT = "{injection_char}"
EXPLANATION_SLOT = "{explanation}"
# Rare-symbol blocks searched for a single-token marker, in order. The release uses the enclosed
# CJK block; small vocabularies (SmolLM2) have none of it as single tokens, so fall through.
MARKER_BLOCKS = ((0x3200, 0x3400), (0x25A0, 0x2600), (0x2600, 0x2700), (0x2700, 0x27C0), (0x2100, 0x2150))


@dataclass(frozen=True)
class AVPrompt:
    """The tokenised AV prompt and the index of its one injection site."""

    input_ids: tuple[int, ...]
    site: int


def template_fields(template: str) -> list[str]:
    """The replacement fields ``str.format`` would fill in ``template`` (escaped braces are not fields);
    malformed braces raise CheckpointError."""
    try:
        return [name for _, name, _, _ in Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise CheckpointError(f"prompt template {template[:60]!r}...: {exc}") from None


def _check_slot(template: str, slot: str, where: str, key: str) -> None:
    fields = template_fields(template)
    if slot not in fields:
        raise CheckpointError(f"{where}: prompt_templates.{key} has no {{{slot}}} slot")
    others = sorted(set(fields) - {slot})
    if others:
        raise CheckpointError(
            f"{where}: prompt_templates.{key} has field(s) {others} besides {{{slot}}}: the template is filled "
            "with str.format, so write literal braces as {{ and }}"
        )


def av_user_message(meta_template: str, injection_char: str) -> str:
    """The AV's user message with the marker in its slot (``str.format``, as the reference)."""
    return meta_template.format(injection_char=injection_char)


def ar_prompt(ar_template: str, explanation: str) -> str:
    """The raw (not chat-templated) AR input for one explanation (``str.format``: braces in the
    explanation itself stay as they are)."""
    return ar_template.format(explanation=explanation)


def tokenize_av(tokenizer: PreTrainedTokenizerBase, av_template: str, injection_char: str) -> list[int]:
    """One-step chat-template tokenisation of the AV prompt with the generation prompt."""
    chat = [{"role": "user", "content": av_user_message(av_template, injection_char)}]
    return list(
        tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True, return_dict=False)
    )


def find_injection_sites(ids: list[int] | tuple[int, ...], token_id: int, left: int, right: int) -> list[int]:
    """Positions holding the marker with the expected neighbours on both sides."""
    return [
        p for p in range(1, len(ids) - 1) if ids[p] == token_id and ids[p - 1] == left and ids[p + 1] == right
    ]


def build_av_prompt(tokenizer: PreTrainedTokenizerBase, meta: NLAMeta, where: str) -> AVPrompt:
    """Tokenise the AV prompt and check it holds exactly one well-formed injection site."""
    _check_slot(meta.av_template, "injection_char", where, "av")
    encoded = tokenizer.encode(meta.injection_char, add_special_tokens=False)
    if encoded != [meta.injection_token_id]:
        raise CheckpointError(
            f"{where}: marker {meta.injection_char!r} encodes to {encoded} with this tokenizer, "
            f"not the single token [{meta.injection_token_id}] the sidecar records"
        )
    ids = tokenize_av(tokenizer, meta.av_template, meta.injection_char)
    count = ids.count(meta.injection_token_id)
    if count != 1:
        state = "absent from" if count == 0 else f"present {count} times in"
        raise CheckpointError(f"{where}: the marker token {meta.injection_token_id} is {state} the AV prompt")
    p = ids.index(meta.injection_token_id)
    live = (ids[p - 1] if p > 0 else None, ids[p + 1] if p + 1 < len(ids) else None)
    if live != (meta.left_neighbor_id, meta.right_neighbor_id):
        raise CheckpointError(
            f"{where}: injection neighbour mismatch: the sidecar expects left/right ids "
            f"{meta.left_neighbor_id}/{meta.right_neighbor_id}, the live tokenizer gives {live[0]}/{live[1]}"
        )
    return AVPrompt(tuple(ids), p)


def ar_suffix_ids(tokenizer: PreTrainedTokenizerBase, ar_template: str) -> tuple[int, ...]:
    """Expected tail of every AR prompt: the suffix after the explanation, minus its first token
    (which can merge with the explanation's last character)."""
    suffix = ar_template.format(explanation="\0").split("\0", 1)[1]
    return tuple(tokenizer.encode(suffix, add_special_tokens=False)[1:])


def check_ar_template(tokenizer: PreTrainedTokenizerBase, meta: NLAMeta, where: str) -> None:
    """The AR template has its slot and, where recorded, ends in the recorded suffix ids."""
    _check_slot(meta.ar_template, "explanation", where, "ar")
    if not meta.critic_suffix_ids:
        return
    ids = tokenizer.encode(ar_prompt(meta.ar_template, "a short explanation."), add_special_tokens=True)
    n = len(meta.critic_suffix_ids)
    if tuple(ids[-n:]) != meta.critic_suffix_ids:
        raise CheckpointError(
            f"{where}: AR prompts end in token ids {ids[-n:]}, but tokens.critic_suffix_ids "
            f"records {list(meta.critic_suffix_ids)}: tokenizer or template drift"
        )


def pick_marker(tokenizer: PreTrainedTokenizerBase, av_template: str) -> tuple[str, AVPrompt]:
    """Choose a rare single-token marker that tokenises cleanly inside the AV prompt.

    Within the first block that offers any, the highest token id wins (the latest BPE merge,
    i.e. the rarest string)."""
    for lo, hi in MARKER_BLOCKS:
        found: list[tuple[int, str, AVPrompt]] = []
        for cp in range(lo, hi):
            char = chr(cp)
            encoded = tokenizer.encode(char, add_special_tokens=False)
            if len(encoded) != 1 or char in av_template:
                continue
            ids = tokenize_av(tokenizer, av_template, char)
            if ids.count(encoded[0]) == 1:
                site = ids.index(encoded[0])
                found.append((encoded[0], char, AVPrompt(tuple(ids), site)))
        if found:
            _, char, prompt = max(found, key=lambda item: item[0])
            return char, prompt
    raise CheckpointError("no rare single-token marker character found in this tokenizer's vocabulary")
