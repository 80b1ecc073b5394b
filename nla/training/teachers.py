"""Warm-start teachers: describe what a text prefix makes the model anticipate at its last token,
as 2-3 short features separated by blank lines, the last one about the final token.

* ``heuristic`` needs no model: the kind of text and its topic words, the last words verbatim, and
  the target's own likeliest next tokens (recorded by ``datagen``). At this model size the residual
  stream is dominated by the local text, so the verbatim tail is what makes these reconstructible.
* ``heuristic-lens`` is the same format with the last feature's likely next tokens read from the
  vector itself through the logit lens at layer K (the target's final norm and unembedding), so the
  feature is a linear read-out of exactly what the AV receives rather than of the model's later layers.
* ``local:<model>`` prompts a local instruction model with the reference teacher instruction.
* ``anthropic[:<model>]`` / ``openai[:<model>]`` call the official SDKs, only when a key is set.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from nla.errors import NLAError

INSTRUCTION = (
    "A language model needs to predict what text comes next after the snippet below. Identify the 2-3 "
    "most important features it would use for this prediction. Focus on what the language model must be "
    "'thinking about' at the point where the provided text ends. Do not mention that the text is "
    "truncated. Order the features by importance, about 10-20 words each; short quotes are allowed. The "
    "final feature must describe the very end of the presented sequence: its role, what it is part of, "
    "and immediate constraints on what follows. Answer with the features inside <analysis>...</analysis>, "
    "one per line.\n\n<begin_text>{text}<end_text>"
)
TAIL_WORDS = 8
TOPIC_WORDS = 3
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_ANALYSIS = re.compile(r"<analysis>(.*?)</analysis>", re.S)
HEURISTIC_PHRASES = (
    "Prose about", "A user's request in a chat about", "An assistant's chat reply about", "Recent text:",
    "Final token", "breaks the line", "is whitespace", "ends a sentence", "is punctuation inside a sentence",
    "starts a word", "continues a word", "next likely",
)  # fmt: skip
"""The fixed phrasing of ``heuristic_explanation`` and ``token_role`` (scaffolding, not content)."""
_MARKUP = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*|\*\*")


class Teacher(ABC):
    """Explains rows of a datagen split (``detokenized_text_truncated`` plus metadata)."""

    id: str
    uses_vector: bool = False
    """Whether rows must carry their activation (``row["vector"]``, a float32 array)."""

    @abstractmethod
    def explain(self, rows: list[dict[str, Any]]) -> list[str | None]:
        """One explanation per row; ``None`` drops the row (refusal, unparsable answer)."""


def make_teacher(spec: str, target: str, layer: int | None = None) -> Teacher:
    """The teacher named by ``spec``: heuristic, heuristic-lens, local:<model>, anthropic[:<model>],
    openai[:<model>]; ``heuristic-lens`` reads the run's ``target`` at ``layer``."""
    kind, _, model = spec.partition(":")
    if kind == "heuristic" and not model:
        return HeuristicTeacher()
    if kind == "heuristic-lens" and not model and layer is not None:
        return LensTeacher(target, layer)
    if kind == "local" and model:
        return LocalTeacher(model)
    if kind in ("anthropic", "openai"):
        return ApiTeacher(kind, model or None)
    raise NLAError(
        f"--teacher {spec!r}: use heuristic, heuristic-lens, local:<model>, anthropic[:<model>] or openai[:<model>]"
    )


class HeuristicTeacher(Teacher):
    """Explanations assembled from the prefix and the target's next-token distribution."""

    id = "heuristic-v1"

    def explain(self, rows: list[dict[str, Any]]) -> list[str | None]:
        return [heuristic_explanation(r) for r in rows]


class LensTeacher(Teacher):
    """The heuristic format with the next tokens the layer-K logit lens reads from the vector."""

    uses_vector = True

    def __init__(self, target_ref: str, layer: int) -> None:
        from nla.pipeline import load_target

        self.id = f"heuristic-lens-v1:{target_ref}:L{layer}"
        self.target, self.layer = load_target(target_ref), layer

    def explain(self, rows: list[dict[str, Any]]) -> list[str | None]:
        import numpy as np
        import torch

        from nla.logit_lens import logit_lens

        vectors = torch.from_numpy(np.stack([r["vector"] for r in rows]))
        readings = logit_lens(self.target.model, self.target.tokenizer, vectors, self.layer, top_k=3)
        return [
            heuristic_explanation({**r, "next_tokens": lens.tokens})
            for r, lens in zip(rows, readings, strict=True)
        ]


def heuristic_explanation(row: dict[str, Any]) -> str:
    """Three features: kind and topic, the last words verbatim, the final token and what follows."""
    text = row["detokenized_text_truncated"]
    words = text.split()
    topics = topic_words(text)
    where = {"user": "A user's request in a chat", "assistant": "An assistant's chat reply"}.get(
        row["role"], "Prose"
    )
    topic = f"{where} about {', '.join(topics)}." if topics else f"{where}."
    tail = " ".join(words[-TAIL_WORDS:])
    nexts = ", ".join(f'"{t.strip() or repr(t)}"' for t in list(row["next_tokens"])[:3])
    final = f'Final token "{row["token"].strip() or repr(row["token"])}" {token_role(row["token"], text)}; next likely {nexts}.'
    return f'{topic}\n\nRecent text: "{tail}"\n\n{final}'


def topic_words(text: str, n: int = TOPIC_WORDS) -> list[str]:
    """The prefix's most frequent content words (later occurrences break ties)."""
    words = [w.lower() for w in _WORD.findall(text)]
    counts = Counter(w for w in words if w not in ENGLISH_STOP_WORDS)
    last = {w: i for i, w in enumerate(words)}
    return sorted(counts, key=lambda w: (-counts[w], -last[w]))[:n]


def token_role(token: str, text: str = "") -> str:
    """What the final token does at the end of ``text``, in a few words."""
    stripped = token.strip()
    if not stripped:
        return "breaks the line" if "\n" in token else "is whitespace"
    if stripped in {".", "!", "?"}:
        return "ends a sentence"
    if not stripped[0].isalnum():
        return "is punctuation inside a sentence"
    before = text[: len(text) - len(token)] if text.endswith(token) else " "
    return "starts a word" if token[0].isspace() or not before or before[-1].isspace() else "continues a word"


def parse_analysis(raw: str) -> str | None:
    """Features from a teacher answer as paragraphs, or None with fewer than two / no closed tag."""
    match = _ANALYSIS.search(raw)
    if not match:
        return None
    features = [_MARKUP.sub("", line).strip() for line in match.group(1).splitlines()]
    features = [f for f in features if f]
    return "\n\n".join(features) if len(features) >= 2 else None


class LocalTeacher(Teacher):
    """A local Hugging Face instruction model (loaded from safetensors) answering the instruction."""

    def __init__(self, model_ref: str, max_new_tokens: int = 200) -> None:
        from nla.pipeline import load_target

        self.id = f"local:{model_ref}"
        self.target = load_target(model_ref)
        self.max_new_tokens = max_new_tokens

    def explain(self, rows: list[dict[str, Any]]) -> list[str | None]:
        from nla.training.corpus import Document
        from nla.training.datagen import answer

        chats = [
            Document(
                str(i),
                "chat",
                messages=[
                    {"role": "user", "content": INSTRUCTION.format(text=r["detokenized_text_truncated"])}
                ],
            )
            for i, r in enumerate(rows)
        ]
        replies = answer(self.target.model, self.target.tokenizer, chats, self.max_new_tokens, seed=0)
        return [parse_analysis(r) for r in replies]


class ApiTeacher(Teacher):
    """Anthropic or OpenAI through the official SDK; refuses to start without the API key."""

    _DEFAULTS = {
        "anthropic": ("ANTHROPIC_API_KEY", "claude-haiku-4-5"),
        "openai": ("OPENAI_API_KEY", "gpt-4o-mini"),
    }

    def __init__(self, provider: str, model: str | None) -> None:
        key_var, default = self._DEFAULTS[provider]
        if not os.environ.get(key_var):
            raise NLAError(
                f"--teacher {provider}: set {key_var} to use this teacher (or use --teacher heuristic)"
            )
        try:
            sdk = __import__(provider)
        except ImportError as exc:
            raise NLAError(f"--teacher {provider}: install the SDK with `pip install {provider}`") from exc
        self.provider, self.model = provider, model or default
        self.id = f"{provider}:{self.model}"
        self.client = sdk.Anthropic() if provider == "anthropic" else sdk.OpenAI()

    def explain(self, rows: list[dict[str, Any]]) -> list[str | None]:
        return [
            parse_analysis(self._ask(INSTRUCTION.format(text=r["detokenized_text_truncated"]))) for r in rows
        ]

    def _ask(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        if self.provider == "anthropic":
            reply = self.client.messages.create(model=self.model, max_tokens=300, messages=messages)
            return "".join(block.text for block in reply.content if block.type == "text")
        reply = self.client.chat.completions.create(model=self.model, max_tokens=300, messages=messages)
        return reply.choices[0].message.content or ""
