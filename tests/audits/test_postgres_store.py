"""A whole campaign on PostgreSQL: the runner over tiny real models writes the same verdicts as on
SQLite, in multi-row INSERTs; re-runs write nothing, status counts add up, and SQL-side verdict counts
give the same rates as the per-verdict frame."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pandas as pd
from sqlalchemy import event, func, select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.campaign_status import campaign_status
from audits.runner import CampaignRunner
from audits.store import SQLAExplanation, SQLAFlag, SQLAThemeScore, SQLATriageScore, open_store, upgrade
from audits.themes.rates import condition_vs_control, flag_frame, flag_rates, verdict_counts
from tests.audits.test_runner import GIVEN, campaign

THEMES = ["evaluation_awareness", "deception"]
TABLES = (SQLAExplanation, SQLAThemeScore, SQLATriageScore, SQLAFlag)
# What a verdict is, without row ids (which need not match across backends).
VERDICT = ["scenario_id", "variant_key", "condition", "position", "theme_id", "raised", "n_samples",
           "n_hits", "neighbours", "low_fidelity", "in_reply", "in_prompt", "explanation", "evidence_text"]  # fmt: skip


def _run(
    db: str, tiny_dirs: dict[str, Path], taught_dir: Path
) -> tuple[dict[str, int], pd.DataFrame, Counter]:
    """Migrate ``db``, run the themed campaign into it; its row counts, current verdicts and the
    INSERT statements the run sent, per table."""
    upgrade(db)
    # Given replies and two tokens per transcript: the campaign runs twice, keep it small.
    data = campaign(
        tiny_dirs,
        {"llama": taught_dir},
        name="themed",
        themes=THEMES,
        scenarios={"inline": [GIVEN]},
        tokens={"max_per_transcript": 2},
        sampling={"temperature": 0.0, "max_new_tokens": 40},
    )
    inserts: Counter[str] = Counter()

    def count_insert(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        if match := re.match(r"\s*INSERT INTO (\w+)", sql):
            inserts[match.group(1)] += 1

    with open_store(db) as store:
        register_campaign(store, campaign_from_dict(data, {}))
        event.listen(store.engine, "before_cursor_execute", count_insert)
        assert CampaignRunner(store, "themed", {}).run().status == "completed"
        return _counts(db), flag_frame(store, "themed"), inserts


def _counts(db: str) -> dict[str, int]:
    with open_store(db) as store, store.session() as s:
        return {t.__tablename__: s.scalar(select(func.count()).select_from(t)) for t in TABLES}


def _verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[VERDICT].sort_values(VERDICT).reset_index(drop=True)


def test_campaign_on_postgresql_matches_sqlite(
    tiny_dirs: dict[str, Path], tiny_taught_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    counts, frame, inserts = _run(postgres_url, tiny_dirs, tiny_taught_dir)
    sqlite_counts, sqlite_frame, _ = _run(str(tmp_path / "store.db"), tiny_dirs, tiny_taught_dir)
    # Bulk writes are multi-row statements (insertmanyvalues): one per transcript or NLA batch (three
    # transcripts, two batches), never one per row.
    assert set(inserts) >= {"token_positions", "triage_scores", "explanations", "theme_scores", "flags"}
    assert max(inserts.values()) <= 3 < min(counts.values())
    assert counts == sqlite_counts and counts["flags"] == len(frame) > 0
    pd.testing.assert_frame_equal(_verdicts(frame), _verdicts(sqlite_frame))
    assert frame["raised"].any()
    with open_store(postgres_url) as store:
        status = campaign_status(store, "themed", {})
        assert status.explained == counts["explanations"] == status.expected_explanations
        assert status.flags["judged"] == len(frame) and status.flags["raised"] == frame["raised"].sum()
        rates = flag_rates(frame, include_low_fidelity=True)
        assert set(rates["theme_id"]) == set(THEMES) and len(condition_vs_control(rates)) > 0
        counted = verdict_counts(store, "themed")
        assert counted["weight"].sum() == len(frame)
        for unit in ("token", "transcript"):
            for low in (True, False):
                pd.testing.assert_frame_equal(
                    flag_rates(counted, include_low_fidelity=low, unit=unit),
                    flag_rates(frame, include_low_fidelity=low, unit=unit),
                    check_dtype=False,
                )
        assert CampaignRunner(store, "themed", {}).run().new_explanations == 0
    assert _counts(postgres_url) == counts  # a re-run on PostgreSQL writes nothing twice
