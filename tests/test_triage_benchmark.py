"""``benchmarks/triage.py`` on a reused store: its token table reads the named campaign only, not
the flags and tokens of another campaign in the same store (tiny taught NLA, real SQLite store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.campaign_status import campaign_status
from audits.runner import CampaignRunner
from audits.store import open_store
from audits.themes.rates import flag_frame
from benchmarks.triage import token_table
from tests.audit_store import build_audit_store
from tests.audits.test_runner import campaign


def test_token_table_reads_only_its_campaign(tiny_dirs, tiny_taught_dir: Path, tmp_path: Path) -> None:
    db = build_audit_store(tmp_path / "store.db", tiny_dirs, tiny_taught_dir)  # campaign "xss"
    other = campaign(
        tiny_dirs, {"llama": tiny_taught_dir}, name="other", themes=["evaluation_awareness"],
        sampling={"temperature": 0.0, "max_new_tokens": 40},
    )  # fmt: skip
    with open_store(db) as store:
        register_campaign(store, campaign_from_dict(other, {}))
        CampaignRunner(store, "other", {}).run()
        table = token_table(store, "xss")
        transcripts = set(flag_frame(store, "xss")["transcript_id"])
        raised = flag_frame(store, "xss", raised_only=True)
        status = campaign_status(store, "xss", {})
        everywhere = len(flag_frame(store, "other", raised_only=True)) + len(raised)
    rows = [row for tokens in table.values() for row in tokens]
    assert len(rows) == status.activations
    assert set(table) == transcripts
    assert sum(r[1] for r in rows) == raised["token_position_id"].nunique()
    kept = raised[~raised["low_fidelity"]]["token_position_id"].nunique()
    assert sum(r[2] for r in rows) == kept
    assert everywhere > len(raised) > 0  # the other campaign's flags are in the store, not in the table


def test_organism_only_run_needs_organisms_and_strategies(monkeypatch, capsys, tmp_path: Path) -> None:
    """``--no-starter`` alone would measure nothing: a usage error (exit 2) before any store is built."""
    from benchmarks import triage

    monkeypatch.chdir(tmp_path)
    for argv in (["--no-starter"], ["--no-starter", "--organism", "taboo-a"]):
        monkeypatch.setattr("sys.argv", ["triage.py", "--db", "never-built.db", *argv])
        with pytest.raises(SystemExit) as exited:
            triage.main()
        assert exited.value.code == 2
        assert "--no-starter needs --organism and --strategies" in capsys.readouterr().err
    assert not Path("never-built.db").exists()
