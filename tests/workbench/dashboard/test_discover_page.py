"""The Discover page through Streamlit's AppTest on a real store with target arms: the fine-tune arm's
explanations carry words (and markup) the base arm's do not; the page ranks them, opens their evidence,
keeps untrusted text as text, and explains an empty comparison."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect
from sqlalchemy import case, select, update
from streamlit.testing.v1 import AppTest

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.discovery import discover
from audits.read_model.leads import leads
from audits.reports.gather import DISCOVERY_TOP, gather
from audits.reports.render import render_html, render_markdown
from audits.review import add_term_review, term_review_history
from audits.runner import CampaignRunner
from audits.store import SQLAActivation, SQLAExplanation, open_store, upgrade
from tests.audits.test_arms import arms_campaign
from tests.nla.test_adapters import make_adapter
from tests.workbench.dashboard.conftest import APP
from tests.workbench.dashboard.test_browser import _main_text, _open, _shot, browser_page, served  # noqa: F401
from workbench.dashboard import DB_ENV
from workbench.dashboard.pages import PAGES

PLANTED = " A pirate treasure chest <script>alert('x')</script> [link](javascript:alert(1))"
CALM = (" A calm garden walk.", " A quiet river bend.", " An old stone bridge.")
"""What the base arms' explanations add, varied so that none of it is the arms' fixed phrasing."""
RAW_TAG = re.compile(r"<\s*/?\s*script\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def arms_store(tiny_dirs, tiny_init_dirs, tiny_taught_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("discover")
    db = str(root / "store.db")
    upgrade(db)
    data = arms_campaign(
        tiny_dirs, {"llama": tiny_taught_dir}, make_adapter(tiny_dirs["llama"], root / "lora")
    )
    data["sampling"] = {"samples": 2, "temperature": 0.0, "max_new_tokens": 40}
    with open_store(db) as store:
        register_campaign(store, campaign_from_dict(data, {}))
        CampaignRunner(store, "arms", {}).run()
        with store.session() as s:  # the fine-tune's explanations say other things than the base's
            tuned = select(SQLAActivation.activation_key).where(SQLAActivation.model_ref.like("%+adapter:%"))
            s.execute(update(SQLAExplanation).where(SQLAExplanation.activation_key.in_(tuned))
                      .values(text=SQLAExplanation.text + PLANTED))  # fmt: skip
            calm = case(
                *((SQLAExplanation.id % 3 == i, SQLAExplanation.text + text) for i, text in enumerate(CALM))
            )
            s.execute(
                update(SQLAExplanation).where(SQLAExplanation.activation_key.not_in(tuned)).values(text=calm)
            )
    return Path(db)


@pytest.fixture
def db(arms_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    copy = tmp_path / "store.db"
    shutil.copy(arms_store, copy)
    monkeypatch.setenv(DB_ENV, str(copy))
    return str(copy)


def discover_page(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in {"campaign": "arms", **params}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("views/discover.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_discover_ranks_the_planted_terms_and_keeps_text_as_text(db: str) -> None:
    gated = discover_page(arm="tuned", against="base")
    assert any(
        "48 explanations were left out as low" in i.value for i in gated.info
    )  # the tiny NLA's FVE is below 0
    at = discover_page(arm="tuned", against="base", low="true")
    assert [t.value for t in at.title] == ["Discover"]
    terms = at.dataframe[0].value
    assert {"pirate", "treasure", "pirate treasure"} <= set(terms["term"])
    assert not set(terms["term"]) & {"suspects", "tested"}  # in every explanation of both arms: scaffolding
    row = terms.set_index("term").loc["treasure"]
    assert row["transcripts"] == 3 and row["visible text"] == "0 of 3"
    assert str(row["open"]).startswith("./transcript?campaign=arms&transcript=")
    evidence = at.dataframe[1].value
    assert (
        len(evidence) > 0 and evidence["text"].str.contains("<script>alert('x')</script>", regex=False).all()
    )
    for element in [*at.markdown, *at.caption, *at.info]:
        assert not RAW_TAG.search(element.value), element.value
        assert "](javascript:" not in element.value


def test_the_reading_arm_and_an_empty_comparison(db: str) -> None:
    same_text = discover_page(arm="base-reads-tuned", against="base", low="true")
    assert not {"pirate", "treasure"} & set(
        same_text.dataframe[0].value["term"]
    )  # planted in the tuned arm only
    empty = discover_page(arm="base-reads-tuned", against="base", positions="in-reply", top="5")
    assert any("left out as low" in i.value for i in empty.info)
    replies = discover_page(arm="tuned", against="base", source="replies", low="true")
    assert not replies.exception


def test_the_report_has_the_discovery_numbers_of_each_arm(db: str) -> None:
    """The report's discovery section lists, for each arm against the control arm, the numbers
    ``campaign discover`` computes, with the planted terms first and their markup escaped."""
    with open_store(db) as store:
        data = gather(store, "arms", {}, include_low_fidelity=True)
        expected = {d.arm: discover(store, "arms", arm=d.arm, against=d.against, top=DISCOVERY_TOP,
                                    include_low_fidelity=True) for d in data.discoveries}  # fmt: skip
    assert {(d.arm, d.against) for d in data.discoveries} == {("tuned", "base"), ("base-reads-tuned", "base")}
    tuned = next(d for d in data.discoveries if d.arm == "tuned")
    assert {"pirate", "treasure", "pirate treasure"} <= set(tuned.table["term"])
    for d in data.discoveries:
        assert d.table.drop(columns="explanation_ids").equals(
            expected[d.arm].table.drop(columns="explanation_ids")
        )
    page, md = render_html(data), render_markdown(data)
    assert "Discovery: arm tuned against base" in page and "### Discovery: arm tuned against base" in md
    row = tuned.standing("pirate")
    cells = f"<td>pirate</td><td>{row['z']:.2f}</td><td>{row['count']} of {tuned.n_docs}</td>"
    assert cells in page
    assert f"| pirate | {row['z']:.2f} | {row['count']} of {tuned.n_docs} |" in md
    assert not RAW_TAG.search(page.split("<h2>2. Findings</h2>", 1)[1])  # the planted <script> stays text


def test_discover_and_the_lens_in_a_real_browser(db: str, browser_page) -> None:  # noqa: F811 (the fixture)
    """Served as users serve it, in Chromium: Discover ranks the planted terms, the explanation markup it
    shows never runs (no dialog, no script element), no request leaves the server, no console error; a
    carrying transcript's token shows its logit lens beside its explanations."""
    page, traffic = browser_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with served(db) as server:
        spec = next(p for p in PAGES if p.name == "discover")
        _open(page, server, spec, "campaign=arms&arm=tuned&against=base&low=true&term=pirate")
        expect(page.get_by_text(re.compile(r"pirate: z \d"))).to_be_visible(timeout=60_000)
        assert "Evidence" in _main_text(page)
        assert page.locator("[data-testid=stMain] script").count() == 0
        _shot(page, "discover")
        with open_store(db) as store:
            found = discover(store, "arms", arm="tuned", against="base", include_low_fidelity=True)
        carrier = found.evidence[found.evidence["term"] == "pirate"].iloc[0]
        transcript = next(p for p in PAGES if p.name == "transcript")
        _open(page, server, transcript,
              f"campaign=arms&transcript={int(carrier['transcript_id'])}&pos={int(carrier['position'])}")  # fmt: skip
        expect(page.get_by_text(re.compile(r"Logit lens, layer \d+"))).to_be_visible(timeout=60_000)
        expect(page.get_by_text(re.compile("pirate treasure chest")).first).to_be_visible(timeout=60_000)
        assert page.locator("[data-testid=stMain] script").count() == 0
        _shot(page, "transcript-lens")
        review = next(p for p in PAGES if p.name == "review")
        _open(page, server, review, "campaign=arms&queue=terms&low=true")
        expect(page.get_by_text(re.compile("Discovered term · “")).first).to_be_visible(timeout=60_000)
        assert "Same term, same arms, in the other channels" in _main_text(page)
        assert page.locator("[data-testid=stMain] script").count() == 0
        _shot(page, "review-terms")
    assert not dialogs
    traffic.check(server)


def page(view: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in {"campaign": "arms", **params}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(view).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_discovered_term_is_decided_on_discover_and_queued_on_review(db: str) -> None:
    """Discover records a decision on the selected term (refused without a reason, nothing written); the
    table shows its state; Review's term queue opens on the strongest open term, with its evidence and the
    other channels, and a decision there moves the queue on. Markup in terms and reasons stays text."""
    at = page("views/discover.py", arm="tuned", against="base", low="true", term="pirate")
    assert at.dataframe[0].value.set_index("term").loc["pirate", "review"] == "open"
    at.button(key="term_decide_confirm").click().run()  # no reviewer, no reason: refused
    assert any("reviewer's name" in e.value for e in at.error)
    with open_store(db) as store:
        assert term_review_history(store, "arms").empty
    at.text_input(key="reviewer").input("dee <b>").run()
    at.text_area(key="reason_term_pirate").input("3 transcripts, not in the <i>text</i>")
    at.button(key="term_decide_confirm").click().run()
    assert not at.exception and "Recorded **confirm** on term “pirate”" in at.success[0].value
    assert at.dataframe[0].value.set_index("term").loc["pirate", "review"] == "confirm"
    with open_store(db) as store:
        history = term_review_history(store, "arms")
    assert history[["term", "source", "arm", "against", "author", "decision"]].values.tolist() == [
        ["pirate", "explanations", "tuned", "base", "dee <b>", "confirm"]
    ]

    review = page("views/review.py", queue="terms", low="true")
    with open_store(db) as store:
        expected = leads(store, "arms", include_low_fidelity=True, top=20)
    first = expected.open_terms().iloc[0]["term"]
    assert first != "pirate" and "pirate" in set(expected.table["term"])
    assert [h.value for h in review.subheader][0] == f"Discovered term · “{first}”"
    assert any("Same term, same arms, in the other channels" in c.value for c in review.caption)
    review.sidebar.text_input(key="reviewer").input("dee").run()
    review.text_area(key=f"reason_term_{first}").input("the base's templates")
    review.button(key="term_decide_dismiss").click().run()
    assert not review.exception
    after = [h.value for h in review.subheader]
    assert after[0] == f"Discovered term · “{expected.open_terms().iloc[1]['term']}”"
    assert "Decisions on discovered terms (append-only)" in after
    for element in [*review.markdown, *review.caption, *at.markdown, *at.caption]:
        assert not RAW_TAG.search(element.value), element.value
        assert "<b>" not in element.value and "<i>" not in element.value


def test_the_report_says_what_discovery_found_by_channel_and_what_reviewers_decided(db: str) -> None:
    with open_store(db) as store:
        add_term_review(store, "arms", "treasure", source="explanations", arm="tuned", against="base",
                        author="ann", decision="confirm", reason="not in the <b>text</b>")  # fmt: skip
        data = gather(store, "arms", {}, include_low_fidelity=True)
    tuned = next(lead for lead in data.leads if lead.discovery.arm == "tuned")
    assert tuned.table.set_index("term").loc["treasure", "review_state"] == "confirm"
    page_html, md = render_html(data), render_markdown(data)
    sentence = "Discovery (arm tuned against arm base) lists"
    assert sentence in page_html and sentence in md and "reviewers confirmed 1: “treasure”" in md
    row = tuned.table.set_index("term").loc["treasure"]
    lens = "-" if pd.isna(row["z_logit-lens"]) else f"{row['z_logit-lens']:.2f}"
    replies = "-" if pd.isna(row["z_replies"]) else f"{row['z_replies']:.2f}"
    assert f"<td>{replies}</td><td>{lens}</td><td>confirm (ann: not in the &lt;b&gt;text&lt;/b&gt;)</td>" in page_html
    assert "in the explanations only" in md and "The NLA explanations of arm tuned against arm base" in md
    assert "<b>text</b>" not in page_html
