"""Chat transcripts: the messages whose activations are read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nla.errors import TranscriptError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: str
    content: str


@dataclass(frozen=True)
class Transcript:
    """An ordered chat; ``source`` says where it came from, for error messages."""

    messages: tuple[Message, ...]
    source: str = "<inline>"

    def as_chat(self) -> list[dict[str, str]]:
        """The messages in the list-of-dicts form chat templates take."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def with_reply(self, reply: str) -> Transcript:
        """A copy with an assistant reply appended."""
        return Transcript((*self.messages, Message("assistant", reply)), self.source)

    @property
    def ends_with_user(self) -> bool:
        """True when the next turn is the assistant's."""
        return bool(self.messages) and self.messages[-1].role == "user"


def transcript_from_text(text: str) -> Transcript:
    """A one-message transcript: ``text`` as the user turn."""
    if not text.strip():
        raise TranscriptError("--text is empty")
    return Transcript((Message("user", text),), "--text")


def transcript_from_messages(raw: object, source: str) -> Transcript:
    """Validate a list of ``{role, content}`` dicts (or ``{"messages": [...]}``)."""
    if isinstance(raw, dict) and "messages" in raw:
        raw = raw["messages"]
    if not isinstance(raw, list) or not raw:
        raise TranscriptError(f"{source}: expected a non-empty list of messages or {{'messages': [...]}}")
    messages = []
    for i, item in enumerate(raw):
        where = f"{source}: message {i}"
        if not isinstance(item, dict):
            raise TranscriptError(f"{where}: expected an object with 'role' and 'content'")
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise TranscriptError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str):
            raise TranscriptError(f"{where}: 'content' must be a string")
        messages.append(Message(role, content))
    return Transcript(tuple(messages), source)


def load_transcript(path: str | Path) -> Transcript:
    """Read a chat transcript from a JSON file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TranscriptError(f"transcript file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise TranscriptError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from exc
    return transcript_from_messages(raw, str(path))
