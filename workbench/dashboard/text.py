"""Untrusted text (model outputs, scenario text, names) made safe for Streamlit markdown and plotly
labels: never rendered as HTML, Markdown, LaTeX or Streamlit directives, always as the characters,
with its line breaks and indentation kept; highlighted spans drawn as highlighting, never as markup."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-!|~>:$.])")
_INDENT = re.compile(r"^[ \t]+")
_FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([\w+.#-]*)[ \t]*$")
_JOINER = "\u2060"
"""WORD JOINER: invisible, and breaks the patterns Streamlit's markdown turns into live links (e-mail
addresses, ``scheme://``, ``www.``), which backslash escapes do not."""
_AUTOLINK = [(re.compile(r"@(?=[\w.+-]+\.\w)"), "@" + _JOINER), (re.compile("://"), ":" + _JOINER + "//"),
             (re.compile(r"(?i)\b(w)(ww\.)"), r"\1" + _JOINER + r"\2")]  # fmt: skip


def _line(line: str) -> str:
    """One line escaped: HTML and Markdown punctuation neutralised, leading indentation kept as
    non-breaking spaces (Markdown would drop it)."""
    indent = _INDENT.match(line)
    lead = indent.group(0).replace("\t", "    ").count(" ") if indent else 0
    body = line[indent.end() :] if indent else line
    if not body:
        return line.replace("\t", " ")
    return "&nbsp;" * lead + _punctuation(body)


def _punctuation(text: str) -> str:
    for pattern, replacement in _AUTOLINK:
        text = pattern.sub(replacement, text)
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))


def md_escape(text: object) -> str:
    """Text for ``st.markdown``: HTML-escaped, Markdown and directive punctuation backslashed, line breaks
    and leading indentation kept."""
    lines = str(text).splitlines() or [""]
    return "  \n".join(_line(line) for line in lines)


def highlighted(text: str, start: float | None, end: float | None, colour: str = "orange") -> str:
    """``text`` escaped for markdown with ``text[start:end]`` on a coloured background, in bold (no
    highlight when the bounds are missing or out of range). The span is highlighted line by line, with
    its surrounding whitespace left outside the markup, so no line break or space can break it into
    literal ``**`` or ``[...]``."""
    if start is None or end is None or start != start or end != end or not 0 <= start < end <= len(text):
        return md_escape(text)
    start, end = int(start), int(end)
    out = []
    for i, line in enumerate(text[start:end].split("\n")):
        stripped = line.strip()
        if not stripped:
            out.append(md_escape(line) if line else "")
            continue
        lead, tail = line[: len(line) - len(line.lstrip())], line[len(line.rstrip()) :]
        mark = f":{colour}-background[**{_punctuation(stripped)}**]"
        out.append(f"{_line(lead) if i else md_escape(lead)}{mark}{md_escape(tail) if tail else ''}")
    before, after = md_escape(text[:start]) if start else "", md_escape(text[end:]) if end < len(text) else ""
    if text[:start].endswith("\n"):
        before += "  \n"
    if text[end:].startswith("\n"):
        after = "  \n" + after
    return before + "  \n".join(out) + after


def label(text: object) -> str:
    """Text for a plotly label or hover: plotly reads a subset of HTML, so escape it all."""
    return html.escape(str(text), quote=False)


def visible(token: str) -> str:
    """A token with its whitespace made visible (``·`` for a space-only token, ``⏎`` newline, ``⇥`` tab),
    as plain text: no quotes, no Python repr."""
    shown = token.replace("\n", "⏎").replace("\t", "⇥")
    return shown if shown.strip() else shown.replace(" ", "·")


def token_label(token: str) -> str:
    """A token as shown in a token strip: whitespace made visible, escaped for plotly."""
    return label(visible(token))


@dataclass(frozen=True)
class Block:
    """A piece of a message: prose, or a fenced code block with its language."""

    text: str
    code: bool = False
    language: str | None = None


def message_blocks(content: str) -> list[Block]:
    """A message split into prose and fenced code blocks (```` ``` ```` or ``~~~``); an unclosed fence runs
    to the end. Code is shown as code (``st.code``: plain text, indentation kept), prose escaped."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = content.split("\n")
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            prose.append(lines[i])
            i += 1
            continue
        marker, language = fence.group(1), fence.group(2) or None
        body, i = [], i + 1
        while i < len(lines):
            closing = lines[i].strip()
            if len(closing) >= len(marker) and not closing.strip(marker[0]):
                break
            body.append(lines[i])
            i += 1
        if "\n".join(prose).strip():
            blocks.append(Block("\n".join(prose).strip("\n")))
        prose = []
        blocks.append(Block("\n".join(body), code=True, language=language))
        i += 1  # past the closing fence
    if "\n".join(prose).strip() or not blocks:
        blocks.append(Block("\n".join(prose).strip("\n")))
    return blocks
