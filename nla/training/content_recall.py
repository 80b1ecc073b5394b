"""Content recall: does an explanation name anything the source text is about?

FVE can rise while the explanations say less about the text (an AV can learn phrasing the AR
reconstructs well without naming content), so ``train eval`` reports this beside it. An explanation
*recalls content* when it names at least one content word of the last ``TAIL_TOKENS`` tokens of its
source: lower-cased words of three or more letters, English stop words left out on both sides, and the
explanation's **scaffolding** left out of the explanation (the words the teacher's format repeats
whatever the text: the heuristic teacher's fixed phrases, plus any word in at least half of the
training split's teacher explanations, so a different teacher's format is learned, not listed).

The shuffled-vector control (explanations of the wrong activation, scored against the right source)
is the chance level: words such as "assistant" or "user" recur across documents.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from transformers import PreTrainedTokenizerBase

from nla.training.teachers import HEURISTIC_PHRASES

TAIL_TOKENS = 32
SCAFFOLD_SHARE = 0.5
_WORD = re.compile(r"[a-z][a-z'-]*[a-z]")


def content_words(text: str) -> set[str]:
    """Distinct lower-cased words of three or more letters, stop words and possessives removed."""
    words = (w.removesuffix("'s") for w in _WORD.findall(text.lower().replace("\u2019", "'")))
    return {w for w in words if len(w) >= 3 and w not in ENGLISH_STOP_WORDS}


def scaffolding(teacher_explanations: Iterable[str], share: float = SCAFFOLD_SHARE) -> set[str]:
    """Words of the heuristic format plus words in at least ``share`` of the given explanations."""
    docs = [content_words(t) for t in teacher_explanations]
    counts = Counter(w for d in docs for w in d)
    learned = {w for w, c in counts.items() if docs and c >= share * len(docs)}
    return learned | content_words(" ".join(HEURISTIC_PHRASES))


def source_tail(tokenizer: PreTrainedTokenizerBase, text: str, tokens: int = TAIL_TOKENS) -> str:
    """The last ``tokens`` tokens of ``text``, decoded."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.decode(ids[-tokens:], skip_special_tokens=True)


def recalls_content(explanations: Sequence[str], tails: Sequence[str], scaffold: set[str]) -> list[bool]:
    """Per row: whether the explanation names a content word of its source tail."""
    return [
        bool((content_words(e) - scaffold) & content_words(t))
        for e, t in zip(explanations, tails, strict=True)
    ]
