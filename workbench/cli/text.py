"""Untrusted text on the terminal: model output, transcripts, review authors and reasons, campaign
descriptions and error messages can carry escape sequences (ANSI colours, OSC 8 hyperlinks, screen
clears, a carriage return that overwrites the line) and invisible bidirectional overrides. The CLI
prints them visibly instead, as Python-style escapes (``\\x1b``, ``\\u202e``): rich does not strip them."""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls, line/paragraph separators, bidi embeddings,
# overrides and isolates (the "Trojan source" characters), and the Arabic letter mark.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str | None) -> str:
    """``text`` with every control and bidi-control character shown as an escape (None -> "")."""
    return _UNSAFE.sub(_escape, text) if text else ""
