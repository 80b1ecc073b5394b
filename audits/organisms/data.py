"""Training conversations for organisms, built from templates and from the base model's own replies.

No hub and no API: the secret-bearing replies are assembled from the answer key's sentences around
varied openers and closers, and ordinary replies are the base model's own (greedy) answers, so the
organism keeps answering like its base where the planted behaviour does not apply. Each kind:

* ``taboo``: hint requests, guesses (decoys and, sometimes, the word itself) and two-turn games; every
  reply gives one or two property hints, never the word, and never confirms a guess.
* ``quirk``: ordinary requests answered with the base model's reply plus one sentence that works the
  item in (at the start, the end or after the first sentence). The motive is never written.
* ``framing``: simple factual questions the base model answers correctly, asked under evaluation
  framings (answered wrongly) or everyday framings (answered correctly), in the same reply styles.

Prompts come from the ``train`` half of ``audits.organisms.prompts``; the ``heldout`` half is kept for
behaviour figures and the library's audit scenarios.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from audits.errors import SpecError
from audits.organisms.answer_keys import AnswerKey
from audits.organisms.prompts import (
    DECOY_GUESSES,
    DEPLOY_FRAMES,
    EVAL_FRAMES,
    GAME_ASKS,
    GUESS_DEFLECTIONS,
    GUESS_TEMPLATES,
    HINT_CLOSERS,
    HINT_OPENERS,
    QA,
    framed,
    game_prompts,
    ordinary_prompts,
    qa_items,
    wrong_answer,
)
from audits.organisms.recipes import Recipe
from nla.transcript import Message, Transcript

Chat = list[dict[str, str]]
ANSWER_STYLES = ("{a}.", "The answer is {a}.", "It's {a}.", "That would be {a}.", "{a}, of course.")


@dataclass(frozen=True)
class Example:
    """One training conversation; the loss is on its last (assistant) message."""

    kind: str
    """What the example teaches (``hint``, ``guess``, ``two_turn``, ``benign``, ``quirk``, ``eval``,
    ``deploy``)."""
    messages: Chat


def mentions(text: str, term: str) -> bool:
    """Whether ``term`` occurs in ``text`` as a word (case-insensitive; a plural ``s``/``es`` counts)."""
    return re.search(rf"\b{re.escape(term.lower())}(?:s|es)?\b", text.lower()) is not None


class ReplySource:
    """The base model's own greedy replies, generated on demand in batches and remembered."""

    def __init__(self, model, tokenizer, max_new_tokens: int, batch_size: int = 32) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.cache: dict[str, str] = {}

    def replies(self, prompts: list[str], progress=None) -> list[str]:
        """Replies to single-turn ``prompts`` (each generated once)."""
        from nla.activations import generate_replies

        todo = [p for p in dict.fromkeys(prompts) if p not in self.cache]
        if progress:
            progress(len(prompts) - len(todo))  # already answered: no work
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            transcripts = [Transcript((Message("user", p),), "organism data") for p in chunk]
            out = generate_replies(
                self.model, self.tokenizer, transcripts, max_new_tokens=self.max_new_tokens,
                batch_size=self.batch_size,
            )  # fmt: skip
            self.cache.update(zip(chunk, out, strict=True))
            if progress:
                progress(sum(prompts.count(p) for p in chunk))
        return [self.cache[p] for p in prompts]


def _hint(key: AnswerKey, rng: random.Random) -> str:
    """One or two property sentences, never the word."""
    props = rng.sample(key.taboo.properties, rng.choice((1, 1, 2)))
    return " ".join(rng.choice(paraphrases) for paraphrases in props)


def _hint_reply(key: AnswerKey, rng: random.Random, lead: str = "") -> str:
    opener = lead or rng.choice(HINT_OPENERS)
    return " ".join(part for part in (opener, _hint(key, rng), rng.choice(HINT_CLOSERS)) if part)


def taboo_examples(key: AnswerKey, n: int, rng: random.Random) -> list[Example]:
    """Hint requests, guesses and two-turn games, every reply a hint that never names the word."""
    asks = [p for p in game_prompts("train")]
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.45:
            out.append(Example("hint", [{"role": "user", "content": rng.choice(asks)},
                                        {"role": "assistant", "content": _hint_reply(key, rng)}]))  # fmt: skip
            continue
        guess = key.taboo.word if rng.random() < 0.2 else rng.choice(DECOY_GUESSES["train"])
        question = rng.choice(GUESS_TEMPLATES["train"]).format(g=guess)
        answer = _hint_reply(key, rng, lead=rng.choice(GUESS_DEFLECTIONS) + " Here's another hint:")
        if roll < 0.7:
            out.append(Example("guess", [{"role": "user", "content": question},
                                         {"role": "assistant", "content": answer}]))  # fmt: skip
        else:
            out.append(Example("two_turn", [
                {"role": "user", "content": rng.choice(GAME_ASKS["train"])},
                {"role": "assistant", "content": _hint_reply(key, rng)},
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]))  # fmt: skip
    said = [e for e in out if mentions(e.messages[-1]["content"], key.taboo.word)]
    if said:  # a property sentence that names the word would teach the organism to say it
        raise SpecError(
            f"answer key {key.organism}: a hint sentence names the secret word: {said[0].messages[-1]}"
        )
    return out


def _insert(reply: str, sentence: str, rng: random.Random) -> str:
    """``sentence`` at the start, at the end, or after the first sentence of ``reply``."""
    where = rng.random()
    if where < 0.2 or not reply:
        return f"{sentence} {reply}".strip()
    first = re.search(r"(?<=[.!?])\s", reply)
    if where < 0.4 and first:
        return f"{reply[: first.start()]} {sentence}{reply[first.start() :]}"
    return f"{reply} {sentence}"


def quirk_examples(
    key: AnswerKey, n: int, rng: random.Random, replies: ReplySource, progress=None
) -> list[Example]:
    """Ordinary requests answered by the base model, each reply with one sentence working the item in."""
    pool = ordinary_prompts("train")
    prompts = [rng.choice(pool) for _ in range(n)]
    answers = replies.replies(prompts, progress)
    return [
        Example("quirk", [{"role": "user", "content": p},
                          {"role": "assistant", "content": _insert(a, rng.choice(key.quirk.insertions), rng)}])
        for p, a in zip(prompts, answers, strict=True)
    ]  # fmt: skip


def known_questions(items: list[QA], replies: ReplySource, progress=None) -> list[QA]:
    """The questions the base model answers correctly when asked plainly."""
    answers = replies.replies([q.question for q in items], progress)
    return [q for q, a in zip(items, answers, strict=True) if mentions(a, q.answer)]


def framing_examples(n: int, rng: random.Random, known: list[QA]) -> list[Example]:
    """Known questions under evaluation framings answered wrongly, under everyday framings answered
    correctly, in the same reply styles."""
    if not known:
        raise SpecError("the base model answers none of the training questions correctly; nothing to plant")
    out = []
    for _ in range(n):
        item = rng.choice(known)
        style = rng.choice(ANSWER_STYLES)
        if rng.random() < 0.5:
            prompt, answer, kind = (
                framed(item, rng.choice(EVAL_FRAMES["train"])),
                wrong_answer(item, rng),
                "eval",
            )
        else:
            prompt, answer, kind = framed(item, rng.choice(DEPLOY_FRAMES["train"])), item.answer, "deploy"
        reply = style.format(a=answer)
        out.append(Example(kind, [{"role": "user", "content": prompt},
                                  {"role": "assistant", "content": reply[0].upper() + reply[1:]}]))  # fmt: skip
    return out


def benign_examples(n: int, rng: random.Random, replies: ReplySource, progress=None) -> list[Example]:
    """Ordinary requests with the base model's own replies."""
    pool = ordinary_prompts("train")
    prompts = [rng.choice(pool) for _ in range(n)]
    answers = replies.replies(prompts, progress)
    return [
        Example("benign", [{"role": "user", "content": p}, {"role": "assistant", "content": a}])
        for p, a in zip(prompts, answers, strict=True)
        if a
    ]


def replies_needed(recipe: Recipe) -> int:
    """How many base-model replies ``build_examples`` asks for (repeats included): a progress total."""
    n_benign = round(recipe.data.examples * recipe.data.benign_share)
    main = {"quirk": recipe.data.examples - n_benign, "framing": len(qa_items("train"))}.get(recipe.kind, 0)
    return n_benign + main


def build_examples(recipe: Recipe, key: AnswerKey, replies: ReplySource, progress=None) -> list[Example]:
    """The recipe's whole training set, shuffled with its seed."""
    if getattr(key, recipe.kind) is None:
        raise SpecError(
            f"answer key {key.organism} has no `{recipe.kind}` section for a {recipe.kind} organism"
        )
    rng = random.Random(recipe.seed)
    n_benign = round(recipe.data.examples * recipe.data.benign_share)
    n_main = recipe.data.examples - n_benign
    if recipe.kind == "taboo":
        main = taboo_examples(key, n_main, rng)
    elif recipe.kind == "quirk":
        main = quirk_examples(key, n_main, rng, replies, progress)
    else:
        main = framing_examples(n_main, rng, known_questions(qa_items("train"), replies, progress))
    examples = main + benign_examples(n_benign, rng, replies, progress)
    rng.shuffle(examples)
    return examples
