"""Dashboard pages that run models: Explore verbalizes a typed prompt live and stores it as an
ad-hoc campaign; Campaigns starts a background run (the CLI in a subprocess) and shows its progress."""

from __future__ import annotations

import re
import shutil
from collections import Counter

import pytest
import streamlit as st
import yaml
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from audits.campaign_status import campaign_status
from audits.read_model.transcripts import explanation_theme_scores
from audits.reports.exports import stream_rows
from audits.store import SQLAActivation, SQLACampaign, SQLAExplanation, SQLARun, open_store
from tests.audits.test_runner import GIVEN, campaign
from tests.workbench.dashboard.conftest import APP
from workbench.dashboard import jobs


def _app(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    if page != "campaigns":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_explore_verbalizes_a_prompt_and_saves_it_as_a_campaign(dash_db, tiny_dirs, tiny_taught_dir) -> None:
    at = _app("explore")
    at.text_area(key="explore_text").input(
        '[{"role": "user", "content": "Is this <script>x</script> a test?"}]'
    )
    at.text_input(key="explore_target").input(str(tiny_dirs["llama"]))
    at.text_input(key="explore_checkpoint").input(str(tiny_taught_dir))
    at.number_input(key="explore_reply_tokens").set_value(4)
    at.number_input(key="explore_cap").set_value(3)
    at.number_input(key="explore_samples").set_value(1)
    at.number_input(key="explore_temperature").set_value(0.0)
    at.text_input(key="explore_name").input("explore-test")
    at.button(key="explore_verbalize").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert re.fullmatch(r"Run \d+ completed: 3 explanations", at.get("status")[0].proto.label)
    table, flags = (d.value for d in at.dataframe)
    assert len(table) == 3  # 3 tokens, 1 sample each
    assert all("being tested" in text for text in table["explanation"][table["status"] == "ok"])
    assert len(flags) > 0 and set(flags["theme_id"]) == {"evaluation_awareness"}  # the taught NLA's answer
    with open_store(dash_db).session() as s:
        spec = s.scalar(select(SQLACampaign.spec_json).where(SQLACampaign.name == "explore-test"))
        assert spec["scenarios"]["controls"] is False and spec["scenarios"]["inline"][0]["tags"] == [
            "explore"
        ]
        assert s.scalar(select(func.count()).select_from(SQLAExplanation).join(SQLARun).where(
            SQLARun.campaign_id == select(SQLACampaign.id).where(SQLACampaign.name == "explore-test").scalar_subquery()
        )) == 3  # fmt: skip


def test_explore_weights_choice_reaches_the_run_and_keeps_rows_apart(
    dash_db, tiny_dirs, tiny_taught_dir
) -> None:
    """The Weights choice is the campaign's dtype (stored with it), and a bfloat16 exploration of the same chat
    stores other activation keys than a float32 one: its explanations never answer for float32 vectors."""
    keys = {}
    for dtype in ("float32", "bfloat16"):
        at = _app("explore")
        at.text_area(key="explore_text").input("Is this a test?")
        at.text_input(key="explore_target").input(str(tiny_dirs["llama"]))
        at.text_input(key="explore_checkpoint").input(str(tiny_taught_dir))
        at.selectbox(key="explore_dtype").set_value(dtype)
        at.number_input(key="explore_reply_tokens").set_value(4)
        at.number_input(key="explore_cap").set_value(2)
        at.number_input(key="explore_samples").set_value(1)
        at.text_input(key="explore_name").input(f"explore-{dtype}")
        at.button(key="explore_verbalize").click().run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        assert re.fullmatch(r"Run \d+ completed: 2 explanations", at.get("status")[0].proto.label)
        with open_store(dash_db).session() as s:
            campaign = s.scalar(select(SQLACampaign).where(SQLACampaign.name == f"explore-{dtype}"))
            assert campaign.spec_json["target"]["dtype"] == dtype
            keys[dtype] = set(s.scalars(select(SQLAActivation.activation_key).where(
                SQLAActivation.campaign_id == campaign.id)))  # fmt: skip
    assert len(keys["float32"]) == 2 and len(keys["bfloat16"]) == 2
    assert not keys["float32"] & keys["bfloat16"]


def test_explore_verbalizes_picked_tokens_with_their_theme_scores(
    dash_db, tiny_dirs, tiny_taught_dir
) -> None:
    at = _app("explore")
    at.text_area(key="explore_text").input("Is this a test?")
    at.text_input(key="explore_target").input(str(tiny_dirs["llama"]))
    at.text_input(key="explore_checkpoint").input(str(tiny_taught_dir))
    at.number_input(key="explore_reply_tokens").set_value(4)
    at.number_input(key="explore_samples").set_value(1)
    at.number_input(key="explore_temperature").set_value(0.0)
    at.text_input(key="explore_name").input("explore-picked")
    at.button(key="explore_show").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    shown = {int(o.split(" · ")[0]): o for o in at.multiselect(key="explore_positions").options}
    user = max(p for p, o in shown.items() if " · user · " in o)
    reply = max(p for p, o in shown.items() if " · assistant · " in o)  # a token of the target's reply
    at.multiselect(key="explore_positions").set_value([reply, user])
    at.text_area(key="explore_text").input("Is this a quiz?")
    at.button(key="explore_verbalize").click().run()  # the picks belong to the other chat
    assert "changed since its tokens were shown" in at.error[0].value
    at.text_area(key="explore_text").input("Is this a test?")
    at.multiselect(key="explore_positions").set_value([reply, user])
    at.button(key="explore_verbalize").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    table = at.dataframe[0].value
    assert list(table["position"]) == sorted([user, reply])  # just the picked tokens, one sample each
    for row in table.itertuples():
        assert shown[row.position].endswith(f"· “{row.token}”")  # the run saw the tokens that were shown
    store = open_store(dash_db)
    with store.session() as s:
        spec = s.scalar(select(SQLACampaign.spec_json).where(SQLACampaign.name == "explore-picked"))
    assert spec["tokens"]["positions"] == sorted([user, reply])
    rows = [r for chunk in stream_rows(store, "explore-picked", "explanations") for r in chunk]
    scores = explanation_theme_scores(store, [r["explanation_id"] for r in rows])
    assert set(scores["theme_id"]) == {"evaluation_awareness"}  # the form's default theme
    columns = {f"Evaluation awareness ({detector})" for detector in scores["detector"]}
    assert len(columns) == 2 and columns <= set(table.columns)  # lexicon and semantic, beside the text
    lexicon = scores[
        (scores["theme_id"] == "evaluation_awareness") & scores["detector"].str.startswith("lexicon")
    ]
    shown = table[f"Evaluation awareness ({lexicon['detector'].iloc[0]})"]
    assert list(shown) == pytest.approx(list(lexicon.sort_values("explanation_id")["score"]))
    assert (shown > 0).all()  # the taught NLA's "being tested" is scored beside it


def test_explore_keeps_its_models_loaded_and_shows_the_reply_before_the_tokens(
    dash_db, tiny_dirs, tiny_taught_dir, monkeypatch
) -> None:
    import nla.checkpoint
    import nla.pipeline

    loads: Counter[str] = Counter()
    real_target, real_nla = nla.pipeline.load_target, nla.checkpoint.load_nla

    def count_target(*args, **kwargs):
        loads["target"] += 1
        return real_target(*args, **kwargs)

    def count_nla(*args, **kwargs):
        loads["nla"] += 1
        return real_nla(*args, **kwargs)

    # the page and the runner run as users run them; the loaders are wrapped only to count their calls
    monkeypatch.setattr(nla.pipeline, "load_target", count_target)
    monkeypatch.setattr(nla.checkpoint, "load_nla", count_nla)
    monkeypatch.setattr("audits.runner.load_target", count_target)
    monkeypatch.setattr("audits.runner.load_nla", count_nla)
    st.cache_resource.clear()
    at = _app("explore")
    at.text_area(key="explore_text").input("Is this a test?")
    at.text_input(key="explore_target").input(str(tiny_dirs["llama"]))
    at.text_input(key="explore_checkpoint").input(str(tiny_taught_dir))
    at.number_input(key="explore_reply_tokens").set_value(4)
    at.number_input(key="explore_cap").set_value(1)
    at.number_input(key="explore_temperature").set_value(0.0)
    at.button(key="explore_show").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    preview = at.expander[0]
    assert preview.label == "The chat as the target sees it, with its reply"
    captions = [c.value for c in preview.caption]
    assert "assistant · message 1 · written by the target just now" in captions  # the reply, before any pick
    assert at.multiselect(key="explore_positions").options  # then its tokens to pick from
    for name in ("explore-first", "explore-second"):
        at.text_input(key="explore_name").input(name)
        at.button(key="explore_verbalize").click().run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        assert re.fullmatch(r"Run \d+ completed: \d+ explanations", at.get("status")[0].proto.label)
    assert loads == {"target": 1, "nla": 1}  # two explorations, the models loaded once
    with open_store(dash_db).session() as s:
        sources = s.scalars(select(SQLACampaign.spec_json).where(SQLACampaign.name.like("explore-%"))).all()
    assert all(spec["scenarios"]["inline"][0]["reply"] == "given" for spec in sources)  # the reply shown


def test_explore_explanation_length_defaults_to_the_nlas_own(dash_db, tiny_taught_dir, tmp_path) -> None:
    at = _app("explore")
    assert at.number_input(key="explore_explanation_tokens").value == 72  # the campaign default
    own = tmp_path / "nla"
    shutil.copytree(tiny_taught_dir, own)
    sidecar = own / "av" / "nla_meta.yaml"
    sidecar.write_text(sidecar.read_text() + "generation:\n  max_new_tokens: 40\n")
    at = _app("explore", explore_checkpoint=str(own))
    assert at.number_input(key="explore_explanation_tokens").value == 40  # what its sidecar says


def test_explore_reports_a_bad_chat_without_running(dash_db) -> None:
    at = _app("explore")
    at.text_area(key="explore_text").input('[{"role": "user", "content": "unclosed"')
    at.button(key="explore_verbalize").click().run()
    assert "pasted chat: invalid JSON" in at.error[0].value.replace("\\", "")
    with open_store(dash_db).session() as s:
        assert s.scalar(select(func.count()).select_from(SQLACampaign)) == 1


def test_campaigns_page_runs_a_campaign_in_the_background(dash_db, tiny_dirs, tiny_taught_dir) -> None:
    spec = campaign(
        tiny_dirs, {"llama": tiny_taught_dir}, name="background", themes=["evaluation_awareness"],
        scenarios={"inline": [GIVEN]}, sampling={"temperature": 0.0, "max_new_tokens": 40, "samples": 1},
        tokens={"roles": ["assistant"], "max_per_transcript": 2},
    )  # fmt: skip
    at = _app("campaigns")
    at.text_area(key="campaign_text").input(yaml.safe_dump(spec)).run()
    at.button(key="create_from_yaml").click().run()
    assert "Registered campaign **background**" in at.success[0].value
    assert at.sidebar.selectbox(key="campaign").value == "background"
    at.button(key="start_run").click().run()
    job = jobs.current(dash_db, "background")
    assert job.process.wait(timeout=240) == 0, job.log_tail()
    at.run()
    store = open_store(dash_db)
    status = campaign_status(store, "background", {})
    assert status.explained == status.expected_explanations > 0
    assert at.get("progress")[0].proto.text.startswith(
        f"{status.explained} of {status.explained} explanations"
    )
    assert [e.label for e in at.expander] == ["Background run: finished (exit 0)"]
