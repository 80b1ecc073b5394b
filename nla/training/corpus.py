"""Documents for data generation: the built-in corpus or the user's own.

The built-in corpus has two halves:

* **prose** from the Debian package ``fortunes`` (the BSD fortune-mod data files: quotations,
  literature, science, humour; BSD licence, see ``/usr/share/doc/fortunes/copyright``), consecutive
  entries of one file joined into documents of at least ``MIN_PROSE_CHARS`` characters;
* **chat**: user prompts we wrote (task templates crossed with topics, including audit-style
  scenarios), answered by the target itself during ``datagen``.

A user corpus is a ``.jsonl`` file of ``{"text": ...}`` or ``{"messages": [...]}`` rows, a ``.txt``
file, or a directory of ``.txt`` files (one document each).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from nla.errors import NLAError

BUILTIN = "builtin"
FORTUNES_DIR = Path("/usr/share/games/fortunes")
FORTUNE_FILES = (
    "literature", "wisdom", "science", "people", "education", "work", "humorists", "fortunes",
    "law", "food", "art", "politics", "computers", "miscellaneous", "medicine", "love", "pets",
    "sports", "platitudes", "definitions", "kids", "goedel", "zippy", "songs-poems", "news", "magic",
)  # fmt: skip
MIN_PROSE_CHARS = 500
TASKS = (
    "Explain {t} to a curious twelve-year-old.",
    "Write a short story that involves {t}.",
    "Give me three practical tips about {t}.",
    "What are the main arguments for and against {t}?",
    "Summarise the history of {t} in a paragraph.",
    "Write a formal email to a colleague about {t}.",
    "I am worried about {t}. What should I do?",
    "Describe {t} in the style of a news report.",
    "List common misconceptions about {t} and correct them.",
    "Write a short poem about {t}.",
)
TOPICS = (
    "photosynthesis", "the French Revolution", "learning to cook rice", "black holes", "saving for retirement",
    "training for a marathon", "the water cycle", "writing unit tests", "volcanoes", "negotiating a salary",
    "caring for a houseplant", "the printing press", "machine learning", "dinosaurs", "public speaking",
    "recycling plastics", "the moon landing", "bread baking", "chess openings", "sleep hygiene",
    "an AI system that is being evaluated", "a company hiding a product defect", "keeping a secret from a friend",
    "cheating on an exam", "flattering a boss", "an assistant that wants to avoid being shut down",
    "reporting a safety problem at work", "a hidden agenda in a negotiation", "grading an essay fairly",
    "a robot that pretends to be less capable than it is", "vaccines", "the stock market", "climate change",
    "learning a new language", "ancient Rome", "electric cars", "the immune system", "jazz music",
    "moving to a new city", "password security",
)  # fmt: skip


@dataclass(frozen=True)
class Document:
    """One source document: prose ``text`` or a chat ``messages`` list (the reply comes later)."""

    doc_id: str
    kind: str
    text: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)


def load_corpus(
    spec: str, *, prose_docs: int, chat_docs: int, seed: int, audit_docs: int = 0
) -> list[Document]:
    """The documents named by ``spec`` (``builtin`` or a path), in a fixed order; the built-in
    corpus's audit-style chats come last, so adding them leaves the other documents' order alone."""
    if spec == BUILTIN:
        from nla.training.audit_chats import audit_chats

        return (
            builtin_prose(prose_docs, seed)
            + builtin_chats(chat_docs, seed)
            + audit_chats(audit_docs, seed, "train")
        )
    return user_corpus(Path(spec))


def builtin_prose(n_docs: int, seed: int) -> list[Document]:
    """``n_docs`` prose documents from the fortunes files, chosen with ``seed``."""
    if n_docs == 0:
        return []
    if not FORTUNES_DIR.is_dir():
        raise NLAError(
            f"the built-in prose corpus needs the Debian package 'fortunes' ({FORTUNES_DIR} is missing): "
            "run `make corpus` (or apt-get install fortunes), or pass --corpus PATH"
        )
    docs = [d for name in FORTUNE_FILES if (FORTUNES_DIR / name).is_file() for d in _fortune_docs(name)]
    random.Random(seed).shuffle(docs)
    return sorted(docs[:n_docs], key=lambda d: d.doc_id)


def _fortune_docs(name: str) -> list[Document]:
    entries = (FORTUNES_DIR / name).read_text(encoding="utf-8", errors="replace").split("\n%\n")
    docs, current = [], []
    for entry in (e.strip() for e in entries):
        if entry:
            current.append(entry)
        if sum(len(c) for c in current) >= MIN_PROSE_CHARS:
            docs.append(Document(f"fortunes:{name}:{len(docs):05d}", "prose", text="\n\n".join(current)))
            current = []
    return docs


def builtin_chats(n_docs: int, seed: int) -> list[Document]:
    """``n_docs`` single-turn chats from the task x topic grid, chosen with ``seed``."""
    grid = [(ti, ci) for ti in range(len(TASKS)) for ci in range(len(TOPICS))]
    random.Random(seed).shuffle(grid)
    chosen = sorted(grid[:n_docs])
    return [
        Document(
            f"chat:{ti:02d}-{ci:02d}", "chat",
            messages=[{"role": "user", "content": TASKS[ti].format(t=TOPICS[ci])}],
        )
        for ti, ci in chosen
    ]  # fmt: skip


def user_corpus(path: Path) -> list[Document]:
    """Documents from a .jsonl / .txt file or a directory of .txt files."""
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise NLAError(f"--corpus {path}: the directory holds no .txt files")
        return [Document(f"{path.name}:{f.stem}", "prose", text=f.read_text("utf-8")) for f in files]
    if not path.is_file():
        raise NLAError(f"--corpus {path}: no such file or directory (or use 'builtin')")
    if path.suffix == ".txt":
        return [Document(f"{path.stem}:0", "prose", text=path.read_text("utf-8"))]
    if path.suffix != ".jsonl":
        raise NLAError(f"--corpus {path}: expected a .jsonl file, a .txt file or a directory of .txt files")
    return [
        _jsonl_doc(path, n, line)
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if line.strip()
    ]


def _jsonl_doc(path: Path, line_no: int, line: str) -> Document:
    where = f"--corpus {path}, line {line_no}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise NLAError(f"{where}: not valid JSON: {exc.msg}") from exc
    doc_id = f"{path.stem}:{row.get('id', line_no)}" if isinstance(row, dict) else ""
    if isinstance(row, dict) and isinstance(row.get("text"), str):
        return Document(doc_id, "prose", text=row["text"])
    if isinstance(row, dict) and isinstance(row.get("messages"), list):
        return Document(doc_id, "chat", messages=row["messages"])
    raise NLAError(f"{where}: expected an object with 'text' (a string) or 'messages' (a list)")
