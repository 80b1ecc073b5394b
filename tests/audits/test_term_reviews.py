"""Decisions on discovered terms, on SQLite and PostgreSQL: appended with author and reason, the latest
one is a term's state within its comparison (campaign, source, arm against arm), bad input writes nothing,
and two campaigns' decisions never mix."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.errors import SpecError
from audits.review import (
    OPEN,
    add_term_review,
    campaign_arms,
    comparison,
    current_term_decisions,
    term_review_history,
    term_states,
)
from audits.store import SQLATermReview, open_store, upgrade
from tests.audits.test_arms import arms_campaign, lora_dir  # noqa: F401 (fixture)
from tests.audits.test_runner import SCENARIO, campaign


@pytest.fixture
def store(store_url, tiny_dirs, tiny_init_dirs, lora_dir):  # noqa: F811 (the fixture)
    upgrade(store_url)
    with open_store(store_url) as opened:
        for name in ("arms", "other"):
            data = arms_campaign(tiny_dirs, tiny_init_dirs, lora_dir)
            data["name"] = name
            register_campaign(opened, campaign_from_dict(data, {}))
        register_campaign(opened, campaign_from_dict(
            campaign(tiny_dirs, tiny_init_dirs, name="plain", scenarios={"inline": [SCENARIO]}), {}))  # fmt: skip
        yield opened


def _count(store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(SQLATermReview))


def test_term_decisions_are_appended_and_the_latest_is_the_state(store) -> None:
    add = dict(source="explanations", arm="tuned", against="base")
    first = add_term_review(store, "arms", "Pirate  Treasure", author="ann", decision="follow_up",
                            reason="check the lens", **add)  # fmt: skip
    second = add_term_review(store, "arms", "pirate treasure", author="bob", decision="confirm",
                             reason="in 3 transcripts, not in the text", **add)  # fmt: skip
    add_term_review(
        store, "arms", "garden", author="ann", decision="dismiss", reason="the base says it too", **add
    )
    add_term_review(store, "arms", "garden", author="ann", decision="confirm", reason="other comparison",
                    source="replies", arm="base-reads-tuned", against="base")  # fmt: skip
    add_term_review(store, "other", "pirate treasure", author="cy", decision="dismiss", reason="another campaign",
                    **add)  # fmt: skip
    history = term_review_history(store, "arms")
    assert list(history["review_id"])[:2] == [first, second] and len(history) == 4
    assert set(history["term"]) == {
        "pirate treasure",
        "garden",
    }  # lower-cased, spaces collapsed, as discovery
    current = current_term_decisions(history)
    assert len(current) == 3
    listed = pd.DataFrame({"term": ["pirate treasure", "garden", "river"]})
    states = term_states(listed, history, **add).set_index("term")
    assert states.loc["pirate treasure", "review_state"] == "confirm"
    assert states.loc["pirate treasure", "reviewer"] == "bob"
    assert states.loc["garden", "review_state"] == "dismiss"  # the replies decision is another comparison's
    assert states.loc["river", "review_state"] == OPEN
    other = term_states(listed, term_review_history(store, "other"), **add).set_index("term")
    assert other.loc["pirate treasure", "review_state"] == "dismiss"
    assert other.loc["garden", "review_state"] == OPEN  # campaign arms's decisions do not leak into "other"
    assert list(term_review_history(store, "other")["author"]) == ["cy"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"decision": "maybe"}, "decision 'maybe'"),
        ({"reason": "  "}, "needs a reason"),
        ({"author": ""}, "reviewer's name"),
        ({"term": " "}, "needs the term"),
        ({"source": "tokens"}, "source 'tokens'"),
        ({"arm": "nope"}, "arm 'nope' is not an arm of campaign 'arms'; arms: base, tuned, base-reads-tuned"),
        ({"against": "tuned"}, "both 'tuned'"),
        ({"campaign": "missing"}, "no campaign named 'missing'"),
    ],
)
def test_bad_term_decisions_write_nothing(store, change: dict, message: str) -> None:
    args = {"campaign": "arms", "term": "pirate", "source": "explanations", "arm": "tuned", "against": "base",
            "author": "ann", "decision": "confirm", "reason": "seen", **change}  # fmt: skip
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        add_term_review(store, args.pop("campaign"), args.pop("term"), **args)
    assert _count(store) == 0


def test_the_default_comparison_is_discoverys(store) -> None:
    assert campaign_arms(store, "arms") == ["base", "tuned", "base-reads-tuned"]
    assert comparison(store, "arms", None, None) == ("tuned", "base")  # the control arm is the plain base
    assert comparison(store, "arms", "base-reads-tuned", None) == ("base-reads-tuned", "base")
    assert comparison(store, "plain", None, None) == ("main", "control")  # scenarios against their controls
    with pytest.raises(SpecError, match="--against 'x' is not an arm"):
        comparison(store, "arms", None, "x")
