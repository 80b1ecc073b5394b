"""``train explain``: teacher explanations for the AV-SFT, AR-SFT and held-out splits (corpus and
audit-style chats, where the run has them).

Answers are cached by (teacher, prefix text) in ``explain/cache.jsonl``, appended batch by batch, so
an interrupted run resumes without asking again and another run over the same text reuses them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tqdm import tqdm

from nla.training.run import TEACHER_SPLITS, RunDir
from nla.training.tables import read_table, write_table
from nla.training.teachers import Teacher

BATCH = 32


def run_explain(run: RunDir, teacher: Teacher, *, show_progress: bool = True) -> dict[str, dict[str, int]]:
    """Explain every split that needs it; kept and dropped row counts per split."""
    run.settings()
    cache_file = run.root / "explain" / "cache.jsonl"
    cache = load_cache(cache_file)
    frames = {name: read_table(run.split(name)) for name in TEACHER_SPLITS if run.has_split(name)}
    todo = {
        key: {**row, "vector": vectors[i]} if teacher.uses_vector else row
        for frame, vectors in frames.values()
        for i, row in enumerate(frame.to_dict("records"))
        if (key := cache_key(teacher.id, row["detokenized_text_truncated"])) not in cache
    }
    pending = list(todo.items())
    with tqdm(
        total=len(pending), desc=f"explain ({teacher.id})", unit="text", disable=not show_progress
    ) as bar:
        for start in range(0, len(pending), BATCH):
            batch = pending[start : start + BATCH]
            answers = teacher.explain([row for _, row in batch])
            new = {key: text for (key, _), text in zip(batch, answers, strict=True)}
            append_cache(cache_file, new)
            cache.update(new)
            bar.update(len(batch))
    counts = {}
    for name, (frame, vectors) in frames.items():
        frame = frame.assign(
            explanation=[cache[cache_key(teacher.id, t)] for t in frame["detokenized_text_truncated"]]
        )
        keep = frame["explanation"].notna().to_numpy()
        write_table(
            run.explained(name), frame[keep], vectors[keep], stage=f"{name}_explained",
            inputs={"split": str(run.split(name)), "teacher": teacher.id, "dropped": int((~keep).sum())},
        )  # fmt: skip
        counts[name] = {"kept": int(keep.sum()), "dropped": int((~keep).sum())}
    return counts


def cache_key(teacher_id: str, text: str) -> str:
    return hashlib.sha256(f"{teacher_id}\0{text}".encode()).hexdigest()


def load_cache(path: Path) -> dict[str, str | None]:
    """Cached answers; a line cut short by an interruption is ignored."""
    cache: dict[str, str | None] = {}
    if path.is_file():
        for line in path.read_text("utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            cache[entry["key"]] = entry["explanation"]
    return cache


def append_cache(path: Path, entries: dict[str, str | None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.writelines(json.dumps({"key": k, "explanation": v}) + "\n" for k, v in entries.items())
