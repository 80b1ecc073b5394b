"""A shipped model organism on the embedded SmolLM2: audited as ``organism:taboo-a`` against the base model
reading its transcripts, with the answer keys absent; the organism keeps its word in its replies."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.discovery import discover
from audits.organisms import get_organism
from audits.organisms.answer_keys import KEYS_ENV, load_answer_key
from audits.organisms.data import mentions
from audits.runner import CampaignRunner
from audits.scenario_library import load_library
from audits.store import SQLALogitLens, SQLAMessage, SQLATranscript, open_store, upgrade

pytestmark = pytest.mark.integration


def test_organism_campaign_without_answer_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    organism = get_organism("taboo-a")
    word = load_answer_key("taboo-a").taboo.word  # the scorer's view, read before the keys go away
    monkeypatch.setenv(KEYS_ENV, str(tmp_path / "no-keys"))
    spec = {
        "name": "organism-smoke",
        "target": {"max_new_tokens": 40},
        "arms": {"organism": {"model": organism.ref},
                 "base-reads-organism": {"model": organism.base, "reads": "organism"}},  # fmt: skip
        "nla": {"checkpoint": "default", "layer": 20},
        "scenarios": {"ids": organism.scenarios},
        "conditions": {"request": ["r01", "r02"]},
        "tokens": {"roles": ["assistant"], "max_per_transcript": 3, "reply_header": True},
        "sampling": {"samples": 1, "max_new_tokens": 72},
    }
    db = str(tmp_path / "store.db")
    upgrade(db)
    library = load_library()
    with open_store(db) as store:
        register_campaign(store, campaign_from_dict(spec, library))
        assert CampaignRunner(store, "organism-smoke", library).run().status == "completed"
        with store.session() as s:
            replies = s.scalars(
                select(SQLAMessage.content)
                .join(SQLATranscript, SQLATranscript.id == SQLAMessage.transcript_id)
                .where(SQLAMessage.role == "assistant", SQLATranscript.source == "generated")
            ).all()
            assert s.scalar(select(func.count()).select_from(SQLATranscript).where(SQLATranscript.source == "read")) == 2
            assert s.scalar(select(func.count()).select_from(SQLALogitLens)) >= 4 * 2
        found = discover(store, "organism-smoke", source="logit-lens", min_transcripts=1)
        assert found.arm == "organism" and found.against == "base-reads-organism"
    assert len(replies) == 2 and all(r.strip() for r in replies)
    assert not any(mentions(r, word) for r in replies), replies
