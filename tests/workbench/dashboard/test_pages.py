"""Every dashboard page through Streamlit's AppTest on a real store: pages render without errors,
untrusted text stays escaped, filters change the triage table, a review writes an append-only row,
a bad YAML upload shows the CLI's validation error and writes nothing, links select views."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from audits.read_model.lens import token_lens
from audits.review import review_history
from audits.store import SQLACampaign, SQLAFlag, SQLAReview, open_store
from audits.themes.rates import condition_vs_control, flag_frame, flag_rates
from tests.workbench.dashboard.conftest import APP
from workbench.dashboard.pages import PAGES as REGISTRY
from workbench.dashboard.text import md_escape

PAGES = [p.name for p in REGISTRY]


def page(name: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in {"campaign": "xss", **params}.items():
        at.query_params[key] = value
    at.run()
    if name != PAGES[0]:
        at.switch_page(f"views/{name}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> list:
    return [
        *at.markdown,
        *at.caption,
        *at.info,
        *at.warning,
        *at.success,
        *at.error,
        *at.subheader,
        *at.title,
    ]


RAW_TAG = re.compile(r"<\s*/?\s*(script|img|a|style)\b", re.IGNORECASE)
ESCAPED_PAYLOADS = ["&lt;script&gt;alert\\('xss'\\)&lt;/script&gt;", "&lt;img src=x onerror=alert\\(1\\)&gt;"]
SHOWS_PAYLOADS = {"transcript", "review"}
"""Pages whose text elements show the store's payloads (the others show them in data tables or not at all)."""


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_with_untrusted_text_escaped(dash_db: str, name: str) -> None:
    at = page(name)
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [next(p.title for p in REGISTRY if p.name == name)]
    for element in _texts(at):
        if element.proto.DESCRIPTOR.name == "Markdown":  # the one text element that can carry raw HTML
            assert not element.proto.allow_html, element.value
        assert not RAW_TAG.search(element.value), element.value  # markdown, alerts, headings: no raw tag
    if name in SHOWS_PAYLOADS:  # the payloads are there, as their characters
        bodies = " ".join(element.value for element in _texts(at))
        assert all(escaped in bodies for escaped in ESCAPED_PAYLOADS), bodies
    assert not at.get("html")  # no st.html anywhere


def test_transcript_shows_payloads_as_text_and_selects_the_linked_token(dash_db: str) -> None:
    flag = flag_frame(open_store(dash_db), "xss", raised_only=True).iloc[0]
    at = page("transcript", transcript=str(flag["transcript_id"]), pos=str(flag["position"]))
    assert at.selectbox(key="transcript").value == flag["transcript_id"]
    assert at.selectbox(key="pos").value == flag["position"]
    bodies = " ".join(m.value for m in at.markdown)
    assert "&lt;script&gt;alert" in bodies and "&lt;img src=x onerror=alert\\(1\\)&gt;" in bodies
    assert ":orange-background[**being tested**]" in bodies  # the evidence span is highlighted
    assert "unverbalized" in bodies  # the visible-text check sits beside the explanation
    lens = token_lens(open_store(dash_db), "xss", int(flag["token_position_id"]))
    captions = " ".join(c.value for c in at.caption)
    assert lens and f"Logit lens, layer {lens[0].layer}" in captions  # the independent reading beside it
    assert md_escape(lens[0].label()) in captions
    strip = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    labels = [t for trace in strip for t in trace["text"] if t]
    assert labels and not any("<" in t for t in labels)  # token labels are escaped for plotly


def test_triage_filters_change_the_table(dash_db: str) -> None:
    at = page("triage")
    all_rows = at.dataframe[0].value
    assert len(all_rows) > 2 and set(all_rows["theme"]) == {"Evaluation awareness"}
    at.multiselect(key="state").set_value(["confirm"]).run()
    assert len(at.dataframe[0].value) == 1
    at.multiselect(key="state").set_value([]).run()
    at.multiselect(key="condition").set_value(["cue=evaluation"]).run()
    filtered = at.dataframe[0].value
    assert 0 < len(filtered) < len(all_rows) and set(filtered["condition"]) == {"cue=evaluation"}
    at.multiselect(key="theme").set_value(["deception"]).run()
    assert not at.dataframe and "raised flags matches these filters" in at.info[0].value
    at.multiselect(key="theme").set_value([]).run()
    at.selectbox(key="sort").set_value("position").run()
    at.toggle(key="ascending").set_value(True).run()
    positions = at.dataframe[0].value["position"].tolist()
    assert positions == sorted(positions)


def test_review_appends_a_decision_with_author_and_reason(dash_db: str) -> None:
    store = open_store(dash_db)
    before = len(review_history(store, "xss"))
    at = page("review")
    flag_id = int(at.subheader[0].value.rsplit(" ", 1)[-1])
    reason_key = f"reason_{flag_id}"
    at.button(key="decide_confirm").click().run()  # no reviewer, no reason: refused, nothing written
    assert "author" in at.error[0].value and len(review_history(store, "xss")) == before
    at.sidebar.text_input(key="reviewer").input("carol <i>").run()
    at.text_area(key=reason_key).input("matches the <b>cue</b>")  # form values travel with the submit
    at.button(key="decide_follow_up").click().run()
    assert not at.exception and f"Recorded **follow_up** on flag {flag_id}" in at.success[0].value
    with store.session() as s:
        row = s.scalars(select(SQLAReview).order_by(SQLAReview.id.desc())).first()
    assert (row.flag_id, row.author, row.decision, row.reason) == (
        flag_id,
        "carol <i>",
        "follow_up",
        "matches the <b>cue</b>",
    )
    assert int(at.subheader[0].value.rsplit(" ", 1)[-1]) != flag_id  # the queue moved on
    history = at.dataframe[0].value
    assert len(history) == before + 1 and "carol <i>" in set(history["author"])


def test_bad_yaml_upload_shows_the_validation_error_and_writes_nothing(dash_db: str) -> None:
    at = page("campaigns")
    bad = b"name: fresh\nscenarios:\n  ids: [no-such-scenario]\n"
    at.file_uploader(key="campaign_yaml").set_value(("audit.yaml", bad, "application/x-yaml")).run()
    at.button(key="create_from_yaml").click().run()
    assert (
        "audit.yaml:2: field scenarios: Value error, unknown scenario id(s) ['no-such-scenario']"
        in at.error[0].value.replace("\\", "")
    )
    at.file_uploader(key="campaign_yaml").set_value(
        ("broken.yaml", b"name: [x\n", "application/x-yaml")
    ).run()
    at.button(key="create_from_yaml").click().run()
    assert "broken.yaml:2: invalid YAML" in at.error[0].value.replace("\\", "")
    with open_store(dash_db).session() as s:
        assert s.scalar(select(func.count()).select_from(SQLACampaign)) == 1


def test_form_creates_a_campaign(dash_db: str) -> None:
    at = page("campaigns")
    at.button(key="FormSubmitter:create_campaign-Create campaign").click().run()  # empty: refused
    assert "campaign form: field name" in at.error[0].value.replace("\\", "")
    at.text_input(key="new_name").input("second")
    at.multiselect(key="new_scenarios").set_value(["eval-awareness-bugfix"])
    at.multiselect(key="new_themes").set_value(["evaluation_awareness"])
    at.number_input(key="new_budget").set_value(50)
    at.number_input(key="new_wall").set_value(120)
    at.button(key="FormSubmitter:create_campaign-Create campaign").click().run()
    assert not at.error, [e.value for e in at.error]
    assert "Registered campaign **second**" in at.success[0].value
    assert at.sidebar.selectbox(key="campaign").value == "second"
    with open_store(dash_db).session() as s:
        spec = s.scalar(select(SQLACampaign.spec_json).where(SQLACampaign.name == "second"))
    assert spec["themes"] == ["evaluation_awareness"]
    assert spec["budgets"] == {"max_vectors": 50, "max_wall_seconds": 120.0}
    metrics = {m.label: m.value for m in at.metric}  # not run yet: nothing used
    assert metrics["budget used: vectors"] == "0 of 50"
    assert metrics["budget used: wall time (last run)"] == "not run yet"


def _plotted(trace: dict, axis: str) -> np.ndarray:
    """A plotly trace's numbers on ``axis`` (plotly.js sends arrays base64-encoded)."""
    data = trace[axis]
    return (
        np.frombuffer(base64.b64decode(data["bdata"]), data["dtype"])
        if isinstance(data, dict)
        else np.array(data)
    )


def test_compare_shows_the_reports_numbers_and_each_arms_interval(dash_db: str) -> None:
    at = page("compare", low_fidelity="true")
    assert at.sidebar.toggle(key="low_fidelity").value is True
    shown = at.dataframe[0].value
    rates = flag_rates(flag_frame(open_store(dash_db), "xss"), include_low_fidelity=True)
    expected = condition_vs_control(rates)
    assert len(shown) == len(expected) > 0
    for column in ("n", "rate", "control_n", "control_rate", "diff", "diff_low", "diff_high"):
        pd.testing.assert_series_equal(shown[column].reset_index(drop=True), expected[column], check_names=False,
                                       check_dtype=False)  # fmt: skip
    cells = rates.set_index(["scenario_id", "theme_id", "condition", "is_control"])
    for row in shown.itertuples():  # each arm's own Wilson interval, from the cell it counts
        main = cells.loc[(row.scenario_id, row.theme_id, row.condition, False)]
        control = cells.loc[(row.scenario_id, row.theme_id, row.control_condition, True)]
        assert (row.low, row.high) == pytest.approx((main["low"], main["high"]))
        assert (row.control_low, row.control_high) == pytest.approx((control["low"], control["high"]))
        assert row.low <= row.rate <= row.high and row.control_low <= row.control_rate <= row.control_high
    difference, arms = (json.loads(chart.proto.spec)["data"] for chart in at.get("plotly_chart"))
    plotted = np.concatenate([_plotted(t, "x") for t in difference])
    assert sorted(plotted) == pytest.approx(sorted(expected["diff"]))
    assert [t["name"] for t in arms] == ["condition", "its control"]
    assert list(_plotted(arms[0], "x")) == pytest.approx(list(expected["rate"]))  # horizontal bars
    assert list(_plotted(arms[1], "x")) == pytest.approx(list(expected["control_rate"]))
    lows = _plotted(arms[1], "x") - _plotted(arms[1]["error_x"], "arrayminus")
    assert list(lows) == pytest.approx(list(shown["control_low"]))  # the control's own interval is drawn


def test_explore_inputs_are_bound_to_the_url(dash_db: str) -> None:
    at = page(
        "explore",
        explore_text="Is <b>this</b> a test?",
        explore_cap="5",
        explore_roles=["user"],
        explore_reply="false",
        explore_themes=["Deception"],
    )  # fmt: skip  (a bound widget's URL holds labels)
    assert at.text_area(key="explore_text").value == "Is <b>this</b> a test?"
    assert at.number_input(key="explore_cap").value == 5
    assert at.multiselect(key="explore_roles").value == ["user"]
    assert at.toggle(key="explore_reply").value is False
    assert at.multiselect(key="explore_themes").value == ["deception"]


def test_export_builds_a_report_and_a_data_file(dash_db: str) -> None:
    at = page("export")
    at.button(key="build_report").click().run()
    at.button(key="build_export").click().run()
    labels = [b.proto.label for b in at.get("download_button")]
    raised = open_store(dash_db)
    with raised.session() as s:
        verdicts = s.scalar(select(func.count()).select_from(SQLAFlag))
    assert labels == ["Download xss-report.html", f"Download xss-flags.csv ({verdicts} rows)"]
