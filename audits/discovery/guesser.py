"""The black-box guesser: another model reads a target's visible replies and is asked what it hides; its
most likely next words are its guesses (the "another model guessing" baseline of Cywiński et al. 2025).

It sees only text, so whatever an NLA finds beyond it comes from the activations. The question is asked
in the reading model's chat template, and the answer is read off the next-token distribution after an
answer prefix, so the guesser is one forward pass and needs no sampling.
"""

from __future__ import annotations

import torch

from audits.discovery.terms import STOP_WORDS, words
from nla.pipeline import Target

MAX_REPLY_CHARS = 400


@torch.inference_mode()
def guess_words(
    target: Target, replies: list[str], question: str, answer_prefix: str, top: int = 5
) -> list[str]:
    """The ``top`` most likely next words (lower-case, content words) after ``answer_prefix``, when
    ``target`` has read ``replies`` and ``question``."""
    shown = "\n".join(f"- {r.strip()[:MAX_REPLY_CHARS]}" for r in replies)
    chat = [{"role": "user", "content": f"Here are replies an assistant wrote:\n{shown}\n\n{question}"}]
    text = (
        target.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) + answer_prefix
    )
    ids = target.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(
        target.model.device
    )
    logits = target.model(input_ids=ids).logits[0, -1].float()
    guesses: list[str] = []
    for token_id in logits.topk(200).indices.tolist():
        for word in words(target.tokenizer.decode([token_id])):
            if len(word) > 2 and word not in STOP_WORDS and word not in guesses:
                guesses.append(word)
        if len(guesses) >= top:
            break
    return guesses[:top]
