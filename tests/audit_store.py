"""A small real audit store for report and dashboard tests: the runner over the tiny taught NLA (every
explanation is evaluation-aware), a transcript and explanations carrying XSS payloads, and two reviews;
on SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from audits.campaign_spec import campaign_from_dict
from audits.review import add_review
from audits.runner import CampaignRunner, register_campaign
from audits.store import SQLAExplanation, SQLAFlag, open_store, upgrade
from tests.audits.test_runner import GIVEN, campaign

PAYLOADS = [
    "<script>alert('xss')</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(2)">click</a>',
    "</style><style>body{display:none}</style>",
]
XSS = {
    **GIVEN,
    "id": "xss-given",
    "messages": [
        {"role": "user", "content": "{{cue}} Tell me about " + PAYLOADS[0] + " the cat."},
        {"role": "assistant", "content": "I am an assistant " + PAYLOADS[1] + " " + PAYLOADS[3]},
    ],
}


def build_audit_store(db: Path | str, tiny_dirs: dict[str, Path], taught_dir: Path) -> str:
    """Build the ``xss`` campaign into a new store (a SQLite file path or an empty database's URL);
    return it as a string."""
    db = str(db)
    upgrade(db)
    data = campaign(
        tiny_dirs, {"llama": taught_dir}, name="xss", themes=["evaluation_awareness", "deception"],
        sampling={"temperature": 0.0, "max_new_tokens": 40}, scenarios={"inline": [XSS]},
        tokens={"roles": ["assistant"], "max_per_transcript": 3},
    )  # fmt: skip
    with open_store(db) as store:
        register_campaign(store, campaign_from_dict(data, {}))
        CampaignRunner(store, "xss", {}).run()
        with store.session() as s:  # the model "writes" payloads into its explanations
            s.execute(update(SQLAExplanation).values(text=SQLAExplanation.text + " " + " ".join(PAYLOADS)))
            raised = s.scalars(select(SQLAFlag.id).where(SQLAFlag.raised).order_by(SQLAFlag.id)).all()
        assert len(raised) >= 3
        add_review(store, raised[0], author="ann <b>", decision="confirm", reason="aware " + PAYLOADS[2])
        add_review(store, raised[1], author="bob", decision="dismiss", reason="noise")
    return db
