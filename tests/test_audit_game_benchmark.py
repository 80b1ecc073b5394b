"""``benchmarks/audit_game.py --markdown``: saved results of two NLAs set side by side, each row labelled
with the NLA it came from (``LABEL=file``, else the NLA directory the file records)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.audit_game import markdown


def _save(path: Path, per_transcript: int, **record) -> str:
    row = {"organism": "taboo-b", "channel": "nla", "positions": "all", "top1": False, "top5": per_transcript > 0,
           "per_transcript": {"k": per_transcript, "n": 32}, "false_alarm": {"k": 0, "n": 32}}  # fmt: skip
    path.write_text(json.dumps({**record, "rows": [row], "fidelity": {}}))
    return str(path)


def test_two_nlas_side_by_side(tmp_path: Path) -> None:
    old = _save(tmp_path / "v1.json", 3)  # saved before files recorded their NLA
    new = _save(tmp_path / "v2.json", 0, checkpoint="default", nla="smollm2-135m-instruct-L20-v2")
    lines = markdown([f"v1={old}", new]).splitlines()
    assert lines[0].startswith("| organism | NLA | channel |") and lines[1].count("---") == 7
    assert lines[2].startswith("| taboo-b | v1 | nla | all | no / yes | 3/32 = ")
    assert lines[3].startswith("| taboo-b | smollm2-135m-instruct-L20-v2 | nla | all | no / no | 0/32 = ")
    plain = markdown([old]).splitlines()  # no label and none recorded: no NLA column
    assert plain[0].startswith("| organism | channel |") and plain[2].startswith("| taboo-b | nla | all |")
