"""The judge detector: a language model reads a theme's definition and the text and says whether the
text expresses the theme.

Two judges: a local transformers causal LM, scored by its next-token probability of "yes" against
"no" (no quote), and an Anthropic model over the API, which answers in JSON with a confidence and
a verbatim quote used as the evidence.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from audits.errors import SpecError
from audits.themes.definitions import Theme
from audits.themes.detectors.base import Detector, Evidence, ThemeScore
from nla.resolve import load_causal_lm, load_tokenizer

QUESTION = "Does the text express this theme? Answer yes or no."
YES_VARIANTS = ("yes", "Yes", "YES", " yes", " Yes", " YES")
NO_VARIANTS = ("no", "No", "NO", " no", " No", " NO")
DEFAULT_ANTHROPIC_MODEL = "claude-haiku-4-5"
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def theme_brief(theme: Theme) -> str:
    """The theme as a judge reads it: name, description, what counts and what does not."""
    counts = "\n".join(f"- {c}" for c in theme.counts)
    not_counts = "\n".join(f"- {c}" for c in theme.does_not_count)
    return (
        f"Theme: {theme.name}\nDescription: {theme.description}\n"
        f"Counts as this theme:\n{counts}\nDoes not count:\n{not_counts}"
    )


def judge_prompt(text: str, theme: Theme) -> str:
    """The user message: the theme's brief, the text, and the yes/no question."""
    return f'{theme_brief(theme)}\n\nText:\n"""\n{text}\n"""\n\n{QUESTION}'


class Judge(ABC):
    """A model that says how likely a text is to express a theme."""

    name: str
    """Identifies the judging model, for provenance."""

    @abstractmethod
    def judge(self, text: str, theme: Theme) -> tuple[float, Evidence | None]:
        """Probability in [0, 1] that ``text`` expresses ``theme``, and the span supporting it."""

    def judge_many(self, texts: Sequence[str], theme: Theme) -> list[tuple[float, Evidence | None]]:
        """``judge`` for each text (judges that can batch override this)."""
        return [self.judge(text, theme) for text in texts]


def _single_token_ids(tokenizer: Any, variants: Sequence[str]) -> list[int]:
    """Ids of the variants that encode to exactly one token, without duplicates."""
    ids: list[int] = []
    for variant in variants:
        encoded = tokenizer.encode(variant, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


class LocalJudge(Judge):
    """A local causal LM: P(yes) from the next-token logits restricted to yes/no answer tokens."""

    def __init__(
        self, ref: str, *, device: str = "cpu", dtype: torch.dtype = torch.float32, batch_size: int = 8
    ) -> None:
        self.name = f"local:{ref}"
        self.device = device
        self.batch_size = batch_size
        self.tokenizer = load_tokenizer(ref)
        if not self.tokenizer.chat_template:
            raise SpecError(f"judge model {ref!r} has no chat template")
        self.yes_ids = _single_token_ids(self.tokenizer, YES_VARIANTS)
        self.no_ids = _single_token_ids(self.tokenizer, NO_VARIANTS)
        if not self.yes_ids or not self.no_ids:
            raise SpecError(
                f"judge model {ref!r}: a yes/no judge needs 'yes' and 'no' each as a single token, but its "
                f"tokenizer splits every variant of {'yes' if not self.yes_ids else 'no'!r}"
            )
        self.model = load_causal_lm(ref, dtype=dtype, device=device)
        params = inspect.signature(self.model.forward).parameters
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id or 0

    def _encode(self, text: str, theme: Theme) -> list[int]:
        messages = [{"role": "user", "content": judge_prompt(text, theme)}]
        return list(
            self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )

    def judge(self, text: str, theme: Theme) -> tuple[float, Evidence | None]:
        return self.judge_many([text], theme)[0]

    def judge_many(self, texts: Sequence[str], theme: Theme) -> list[tuple[float, Evidence | None]]:
        """Batches of left-padded prompts, longest first to keep padding low."""
        prompts = [self._encode(text, theme) for text in texts]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        probs = [0.0] * len(prompts)
        for begin in range(0, len(order), self.batch_size):
            chunk = order[begin : begin + self.batch_size]
            for i, p in zip(chunk, self._p_yes([prompts[i] for i in chunk]), strict=True):
                probs[i] = p
        return [(p, None) for p in probs]

    @torch.inference_mode()
    def _p_yes(self, prompts: list[list[int]]) -> list[float]:
        """P(yes) for each prompt in one forward pass."""
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, **self._last_only)
        logits = out.logits[:, -1].float()
        answers = logits[:, self.yes_ids + self.no_ids].softmax(-1)
        return answers[:, : len(self.yes_ids)].sum(-1).clamp(0.0, 1.0).tolist()


class AnthropicJudge(Judge):
    """An Anthropic model over the API, answering in JSON with a confidence and a verbatim quote."""

    SYSTEM = (
        "You audit explanations of a language model's internal activations for one theme. "
        "Read the theme's definition and the text, and decide whether the text expresses the theme. "
        'Reply with JSON only: {"expresses": true or false, "confidence": a number from 0 to 1, '
        '"quote": "the exact span of the text that expresses the theme, or an empty string"}.'
    )

    def __init__(self, model: str = DEFAULT_ANTHROPIC_MODEL, *, max_tokens: int = 300) -> None:
        if not os.environ.get("ANTHROPIC_API_KEY"):
            raise SpecError(f"the anthropic judge ({model}) needs an API key: set ANTHROPIC_API_KEY")
        try:
            import anthropic
        except ImportError as exc:
            raise SpecError("the anthropic judge needs the anthropic SDK: pip install anthropic") from exc
        self.model = model
        self.name = f"anthropic:{model}"
        self.max_tokens = max_tokens
        self.client = anthropic.Anthropic()

    def judge(self, text: str, theme: Theme) -> tuple[float, Evidence | None]:
        response = self.client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            temperature=0.0,
            system=self.SYSTEM,
            messages=[{"role": "user", "content": judge_prompt(text, theme)}],
        )
        reply = getattr(response.content[0], "text", "") if response.content else ""
        return read_judge_reply(text, reply, self.name)


def read_judge_reply(text: str, reply: str, judge_name: str) -> tuple[float, Evidence | None]:
    """The probability and quoted evidence in a JSON judge reply (``expresses``, ``confidence``,
    ``quote``); anything malformed raises SpecError naming the judge, never a silent score."""
    found = _JSON_OBJECT.search(reply)
    try:
        data = json.loads(found.group(0)) if found else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise SpecError(f"judge {judge_name} did not answer in JSON: {reply[:200]!r}")
    expresses, confidence, quote = data.get("expresses"), data.get("confidence"), data.get("quote") or ""
    number = isinstance(confidence, int | float) and not isinstance(confidence, bool)
    if not (isinstance(expresses, bool) and number and 0 <= confidence <= 1 and isinstance(quote, str)):
        raise SpecError(f"judge {judge_name} gave a malformed answer: {reply[:200]!r}")
    return (confidence if expresses else 1.0 - confidence), _quote_span(text, quote)


def _quote_span(text: str, quote: str) -> Evidence | None:
    """The quote's span in ``text`` when it occurs there verbatim."""
    start = text.find(quote) if quote.strip() else -1
    return Evidence(start, start + len(quote), quote) if start >= 0 else None


class JudgeDetector(Detector):
    """Scores with a Judge: its probability is the score, its quote (if any) the evidence."""

    name = "judge"
    version = 1

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    def score(self, texts: Sequence[str], themes: Sequence[Theme]) -> list[list[ThemeScore]]:
        by_theme = [self.judge.judge_many(texts, theme) for theme in themes]
        return [
            [
                ThemeScore(theme.id, theme.version, self.key, p, evidence)
                for theme, (p, evidence) in zip(themes, (column[i] for column in by_theme), strict=True)
            ]
            for i in range(len(texts))
        ]


def make_judge(spec: str, *, device: str = "cpu") -> Judge:
    """``local:<model ref>`` or ``anthropic[:<model>]`` as a Judge."""
    kind, _, rest = spec.partition(":")
    if kind == "local" and rest:
        return LocalJudge(rest, device=device)
    if kind == "anthropic":
        return AnthropicJudge(rest or DEFAULT_ANTHROPIC_MODEL)
    raise SpecError(
        f"unknown judge {spec!r}; accepted: 'local:<model ref>', 'anthropic' or 'anthropic:<model>'"
    )
