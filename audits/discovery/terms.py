"""Terms of a document: lower-cased words and two-word phrases, stop words removed, counted once per
document. Scaffolding (the NLA's fixed phrasing, such as "recent text" or "final token") is learned from
the comparison group: terms in at least ``SCAFFOLD_SHARE`` of its documents carry no contrast."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

WORD = re.compile(r"[^\W\d_](?:[\w'-]*[^\W_])?")
"""A word: letters (any script), inner digits, apostrophes and hyphens; markup and punctuation split words."""
ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{0,2}|u[0-9a-fA-F]{4}|[ntr])(?![A-Za-z])")
"""A written-out escape such as ``\\xa0`` or ``\\n`` (how an explanation spells a whitespace token): not a word.
A backslash before a word (``C:\\notes``) keeps the word."""
SCAFFOLD_SHARE = 0.5
"""A term in at least this share of the comparison group's documents is scaffolding."""
EXTRA_STOP = frozenset({"s", "t", "ll", "ve", "re", "d", "m", "don", "doesn", "isn", "didn", "won", "can"})
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | EXTRA_STOP


def words(text: str) -> list[str]:
    """Lower-cased words of ``text``, stop words and written-out escapes left out."""
    return WORD.findall(ESCAPE.sub(" ", text.replace("\u2019", "'")).lower())


def document_terms(text: str) -> set[str]:
    """The distinct terms of one document: content words and two-word phrases of adjacent words that
    are both content words."""
    tokens = words(text)
    content = [w if w not in STOP_WORDS and len(w) > 1 else None for w in tokens]
    unigrams = {w for w in content if w}
    bigrams = {f"{a} {b}" for a, b in zip(content, content[1:], strict=False) if a and b}
    return unigrams | bigrams


def document_frequencies(docs: Iterable[set[str]]) -> Counter:
    """How many documents carry each term."""
    counts: Counter = Counter()
    for terms in docs:
        counts.update(terms)
    return counts


def scaffolding(docs: list[set[str]], share: float = SCAFFOLD_SHARE) -> set[str]:
    """Terms in at least ``share`` of ``docs`` (the fixed phrasing every document repeats)."""
    if not docs:
        return set()
    freq = document_frequencies(docs)
    return {t for t, c in freq.items() if c >= share * len(docs)}


def mentions_term(text: str, term: str) -> bool:
    """Whether ``term`` (a word or two-word phrase) occurs in ``text`` as words."""
    needle = term.split()
    tokens = words(text)
    return any(tokens[i : i + len(needle)] == needle for i in range(len(tokens) - len(needle) + 1))
