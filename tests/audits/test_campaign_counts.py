"""Counts kept beside the data, on SQLite and PostgreSQL: the runner's flag tallies equal the verdicts
counted afresh and a re-run adds nothing; every activation names its transcript's campaign; migration
0005 rebuilds the same tallies and campaign ids from a store written before it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select

from audits.runner import CampaignRunner
from audits.store import (
    SQLAActivation,
    SQLAFlag,
    SQLAFlagTally,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    Store,
    current_revision,
    downgrade,
    open_store,
    upgrade,
)
from audits.themes.pipeline import TALLIED
from tests.audit_store import build_audit_store


def counted_verdicts(store: Store) -> Counter:
    """Every verdict counted per tally key, straight from the flags."""
    key = (SQLAFlag.campaign_id, SQLATokenPosition.transcript_id, *(SQLAFlag.__table__.c[c] for c in TALLIED))
    query = (
        select(*key, func.count())
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAFlag.token_position_id)
        .group_by(*key)
    )
    with store.session() as s:
        return Counter({tuple(row[:-1]): row[-1] for row in s.execute(query)})


def stored_tallies(store: Store) -> Counter:
    """The flag tallies as stored; a key stored twice fails."""
    key = (
        SQLAFlagTally.campaign_id,
        SQLAFlagTally.transcript_id,
        *(SQLAFlagTally.__table__.c[c] for c in TALLIED),
    )
    with store.session() as s:
        rows = s.execute(select(*key, SQLAFlagTally.count)).all()
    assert len({tuple(r[:-1]) for r in rows}) == len(rows), "a tally key stored twice"
    return Counter({tuple(r[:-1]): r[-1] for r in rows})


def recount_tallies(store: Store) -> None:
    """Rewrite the flag tallies from the verdicts, for tests that edit verdicts in SQL (the runner
    never edits a verdict, so it only ever adds to tallies)."""
    rows = [
        dict(zip(["campaign_id", "transcript_id", *TALLIED], key, strict=True), count=n)
        for key, n in counted_verdicts(store).items()
    ]
    with store.session() as s:
        s.execute(delete(SQLAFlagTally))
        s.execute(insert(SQLAFlagTally), rows)


def misplaced_activations(store: Store) -> int:
    """Activations whose ``campaign_id`` is not their transcript's campaign."""
    query = (
        select(func.count())
        .select_from(SQLAActivation)
        .join(SQLATokenPosition, SQLATokenPosition.id == SQLAActivation.token_position_id)
        .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
        .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
        .where(SQLAVariant.campaign_id != SQLAActivation.campaign_id)
    )
    with store.session() as s:
        return s.scalar(query)


@pytest.fixture
def built(store_url: str, tiny_dirs: dict[str, Path], tiny_taught_dir: Path) -> str:
    """The report tests' ``xss`` campaign, run on each backend."""
    return build_audit_store(store_url, tiny_dirs, tiny_taught_dir)


def test_tallies_count_the_verdicts_and_a_rerun_adds_nothing(built: str) -> None:
    with open_store(built) as store:
        tallies = stored_tallies(store)
        assert tallies == counted_verdicts(store)
        assert sum(tallies.values()) > len(tallies) > 1  # several verdicts share a tally
        assert any(key[TALLIED.index("raised") + 2] for key in tallies)
        assert misplaced_activations(store) == 0
        assert CampaignRunner(store, "xss", {}).run().status == "completed"
        assert stored_tallies(store) == tallies


def test_upgrade_to_0005_rebuilds_the_counts(built: str) -> None:
    with open_store(built) as store:
        tallies = stored_tallies(store)
    downgrade(built, "0004")
    assert current_revision(built) == "0004"
    upgrade(built)
    with open_store(built) as store:
        assert stored_tallies(store) == tallies
        assert misplaced_activations(store) == 0
