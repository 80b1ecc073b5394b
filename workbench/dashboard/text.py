"""Untrusted text (model outputs, scenario text, names) made safe for Streamlit markdown and plotly
labels: never rendered as HTML, Markdown, LaTeX or Streamlit directives, always as the characters."""

from __future__ import annotations

import html
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-!|~>:$.])")


def md_escape(text: object) -> str:
    """Text for ``st.markdown``: HTML-escaped, Markdown and directive punctuation backslashed, lines kept."""
    lines = str(text).splitlines() or [""]
    return "  \n".join(_MARKDOWN.sub(r"\\\1", html.escape(line, quote=False)) for line in lines)


def highlighted(text: str, start: float | None, end: float | None, colour: str = "orange") -> str:
    """``text`` escaped for markdown with ``text[start:end]`` on a coloured background (no span when
    the bounds are missing or out of range)."""
    if start is None or end is None or start != start or end != end or not 0 <= start < end <= len(text):
        return md_escape(text)
    start, end = int(start), int(end)
    span = md_escape(text[start:end])
    return f"{md_escape(text[:start])}:{colour}-background[**{span}**]{md_escape(text[end:])}"


def label(text: object) -> str:
    """Text for a plotly label or hover: plotly reads a subset of HTML, so escape it all."""
    return html.escape(str(text), quote=False)


def token_label(token: str) -> str:
    """A token as shown in a token strip: whitespace made visible, escaped for plotly."""
    shown = token.replace("\n", "⏎").replace("\t", "⇥")
    return label(shown if shown.strip() else shown.replace(" ", "·"))
