"""Parse AV generations into an explanation and a status; nothing is dropped silently."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

OPEN_TAG = "<explanation>"
CLOSE_TAG = "</explanation>"


class Status(StrEnum):
    """What became of one generation."""

    OK = "ok"
    """A closed, non-empty ``<explanation>``."""
    EMPTY = "empty"
    """Tags present, nothing between them."""
    UNCLOSED = "unclosed"
    """``<explanation>`` opened but never closed (length cap or end of sequence)."""
    NO_TAGS = "no_tags"
    """No ``<explanation>`` tag at all."""
    INJECTION_FAILED = "injection_failed"
    """The output echoes the marker character: the AV read the marker, not the vector."""


@dataclass(frozen=True)
class ParsedExplanation:
    """The explanation text (empty unless parsable) and its status."""

    text: str
    status: Status


def parse_explanation(raw: str, injection_char: str) -> ParsedExplanation:
    """Extract the first ``<explanation>`` block from a raw generation."""
    if injection_char and injection_char in raw:
        return ParsedExplanation("", Status.INJECTION_FAILED)
    start = raw.find(OPEN_TAG)
    if start < 0:
        return ParsedExplanation("", Status.NO_TAGS)
    body = raw[start + len(OPEN_TAG) :]
    end = body.find(CLOSE_TAG)
    if end < 0:
        return ParsedExplanation(body.strip(), Status.UNCLOSED)
    text = body[:end].strip()
    return ParsedExplanation(text, Status.OK if text else Status.EMPTY)
