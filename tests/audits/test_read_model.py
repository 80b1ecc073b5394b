"""One read model for the dashboard and the reports (``audits.read_model``). The case that split them: a
campaign whose activations another campaign already verbalized with the same NLA and sampling writes no
explanation of its own and reuses those. Its dashboard (Compare, Transcript), its report, ``campaign
status`` and its export must all count those explanations, and none of a third campaign's that read the
same activations under another sampling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.campaign_status import campaign_status
from audits.read_model.explanations import fidelity_summary, nla_setting
from audits.read_model.transcripts import explanation_rows, token_explanations, token_scores, transcript_list
from audits.reports.exports import stream_rows
from audits.reports.gather import gather
from audits.reports.render import fidelity_line, render_markdown
from audits.runner import CampaignRunner
from audits.store import open_store, upgrade
from tests.audit_store import xss_campaign
from workbench.dashboard import DB_ENV

APP = str(Path(__file__).resolve().parents[2] / "workbench" / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def reuse_db(tiny_dirs, tiny_taught_dir, tmp_path_factory) -> str:
    """``first`` verbalizes its tokens; ``second`` (the same audit) reuses every explanation; ``warmer`` reads
    the same activations under another sampling and writes its own."""
    db = str(tmp_path_factory.mktemp("reuse") / "store.db")
    upgrade(db)
    with open_store(db) as store:
        for name, temperature in (("first", 0.0), ("second", 0.0), ("warmer", 0.7)):
            spec = xss_campaign(tiny_dirs, tiny_taught_dir, name, sampling={"temperature": temperature})
            register_campaign(store, campaign_from_dict(spec, {}))
            result = CampaignRunner(store, name, {}).run()
            assert result.status == "completed"
            if name == "second":
                assert result.new_explanations == 0  # the reuse case: nothing of its own was written
    return db


def test_a_campaign_that_reuses_explanations_counts_them_everywhere(reuse_db: str, monkeypatch) -> None:
    store = open_store(reuse_db)
    mine, theirs = fidelity_summary(store, "second"), fidelity_summary(store, "first")
    assert mine.explanations == theirs.explanations > 0 and mine.by_status == theirs.by_status
    assert mine.fve == theirs.fve and mine.parsed > 0  # the same explanations, so the same fidelity
    warmer = nla_setting(store, "warmer")
    assert warmer.sampling_key != mine.setting.sampling_key  # a third campaign's, on the same activations

    status = campaign_status(store, "second", {})  # campaign status
    assert status.explained == status.expected_explanations == mine.explanations

    report = gather(store, "second", {}, include_low_fidelity=True)  # the report
    assert report.fidelity == mine
    assert fidelity_line(mine) in render_markdown(report).replace("\\", "")
    assert f"{mine.parsed} of {mine.explanations} explanations parsed" in fidelity_line(mine)


    monkeypatch.setenv(DB_ENV, reuse_db)  # the dashboard
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["campaign"] = "second"
    at.query_params["low_fidelity"] = "true"
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    metrics = {m.label: m.value for m in at.metric[:3]}  # the side-by-side summary of "second"
    assert metrics["parsed"] == f"{mine.parsed} / {mine.explanations}"
    assert metrics["median FVE"] == f"{mine.fve['median']:.2f}"

    transcript = int(transcript_list(store, "second")["transcript_id"].iloc[0])
    tokens, _ = token_scores(store, "second", transcript, mine.setting)
    token = tokens[tokens["activation_key"].notna()].iloc[0]
    at.query_params["transcript"], at.query_params["pos"] = str(transcript), str(token["position"])
    at.switch_page("views/transcript.py").run()
    cards = [c.value for c in at.caption if c.value.startswith("sample ")]
    samples = token_explanations(store, token["activation_key"], mine.setting)
    assert len(cards) == len(samples) == mine.setting.samples  # the reused samples, with their fidelity
    assert all(re.search(r"AR FVE -?\d\.\d\d", c) for c in cards), cards

    rows = [row for chunk in stream_rows(store, "second", "explanations") for row in chunk]  # the export
    shown = explanation_rows(store, mine.setting)
    assert sorted(r["explanation_id"] for r in rows) == sorted(shown["explanation_id"])
    assert shown["explanation_id"].nunique() == mine.explanations
