"""The dashboard on PostgreSQL: the same audit store as the SQLite page tests, built by the runner into
a throwaway cluster; every page renders without an error, a review lands in PostgreSQL, the Compare
page shows the reports' numbers, the form registers a campaign and Export builds both files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from audits.review import review_history
from audits.store import SQLACampaign, SQLAFlag, SQLAReview, open_store
from audits.themes.rates import condition_vs_control, flag_frame, flag_rates
from tests.audit_store import build_audit_store
from tests.postgres_server import PostgresServer
from tests.workbench.dashboard.test_pages import PAGES, page
from workbench.dashboard import DB_ENV


@pytest.fixture(scope="module")
def built_pg_store(postgres_server: PostgresServer, tiny_dirs: dict[str, Path], tiny_taught_dir: Path) -> str:
    """The ``xss`` audit store, built once on PostgreSQL (then used only as a template)."""
    return build_audit_store(postgres_server.create_database("dash"), tiny_dirs, tiny_taught_dir)


@pytest.fixture
def pg_dash_db(postgres_server: PostgresServer, built_pg_store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private copy of the built store (``CREATE DATABASE ... TEMPLATE``), named in the dashboard's
    environment variable."""
    url = postgres_server.create_database("dash_copy", copy_of=built_pg_store)
    monkeypatch.setenv(DB_ENV, url)
    return url


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_postgresql(pg_dash_db: str, name: str) -> None:
    at = page(name)
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == [name.capitalize()]


def test_review_lands_in_postgresql(pg_dash_db: str) -> None:
    with open_store(pg_dash_db) as store:
        assert store.engine.dialect.name == "postgresql"
        before = len(review_history(store, "xss"))
    at = page("review")
    flag_id = int(at.subheader[0].value.rsplit(" ", 1)[-1])
    at.sidebar.text_input(key="reviewer").input("carol").run()
    at.text_area(key=f"reason_{flag_id}").input("matches the cue")
    at.button(key="decide_confirm").click().run()
    assert not at.exception and f"Recorded **confirm** on flag {flag_id}" in at.success[0].value
    with open_store(pg_dash_db) as store:
        assert len(review_history(store, "xss")) == before + 1
        with store.session() as s:
            row = s.scalars(select(SQLAReview).order_by(SQLAReview.id.desc())).first()
    assert (row.flag_id, row.author, row.decision, row.reason) == (
        flag_id,
        "carol",
        "confirm",
        "matches the cue",
    )
    assert int(at.subheader[0].value.rsplit(" ", 1)[-1]) != flag_id  # the queue moved on


def test_compare_shows_the_reports_numbers_on_postgresql(pg_dash_db: str) -> None:
    shown = page("compare", low_fidelity="true").dataframe[0].value
    with open_store(pg_dash_db) as store:
        expected = condition_vs_control(flag_rates(flag_frame(store, "xss"), include_low_fidelity=True))
    assert len(shown) == len(expected) > 0
    for column in ("n", "rate", "control_n", "control_rate", "diff"):
        pd.testing.assert_series_equal(
            shown[column].reset_index(drop=True), expected[column], check_names=False, check_dtype=False
        )


def test_form_creates_a_campaign_on_postgresql(pg_dash_db: str) -> None:
    at = page("campaigns")
    at.text_input(key="new_name").input("second")
    at.multiselect(key="new_scenarios").set_value(["eval-awareness-bugfix"])
    at.multiselect(key="new_themes").set_value(["evaluation_awareness"])
    at.button(key="FormSubmitter:create_campaign-Create campaign").click().run()
    assert not at.error and "Registered campaign **second**" in at.success[0].value
    with open_store(pg_dash_db) as store, store.session() as s:
        names = s.scalars(select(SQLACampaign.name).order_by(SQLACampaign.id)).all()
    assert names == ["xss", "second"]


def test_export_builds_a_report_and_a_data_file_on_postgresql(pg_dash_db: str) -> None:
    at = page("export")
    at.button(key="build_report").click().run()
    at.button(key="build_export").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with open_store(pg_dash_db) as store, store.session() as s:
        verdicts = s.scalar(select(func.count()).select_from(SQLAFlag))
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download xss-report.html", f"Download xss-flags.csv ({verdicts} rows)"]
