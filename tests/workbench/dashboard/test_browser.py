"""The dashboard in a real browser: ``nla-workbench dashboard`` serves it on loopback, Debian's
Chromium (driven by playwright) loads every page, moves between pages by the sidebar, performs one
review, and finds no error box and no live payload. Screenshots go to ``test-artifacts/dashboard/``
(``NLA_WORKBENCH_ARTIFACTS`` moves them)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.reports.render import CHROMIUM_FLAGS, chromium
from audits.store import SQLAReview, open_store
from tests.audit_store import xss_campaign

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("NLA_WORKBENCH_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
PAGES = ["campaigns", "triage", "transcript", "review", "compare", "explore", "export"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(dash_db: str) -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "dashboard", "--db", dash_db, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the dashboard did not start:\n{process.stdout.read()}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def page() -> Iterator[Page]:
    headless = [
        f
        for f in CHROMIUM_FLAGS
        if f.startswith("--") and f not in ("--headless", "--virtual-time-budget=15000")
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=headless)
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def _open(page: Page, url: str, name: str, query: str = "campaign=xss") -> None:
    page.goto(f"{url}/{'' if name == 'campaigns' else name}?{query}")  # the default page lives at /
    expect(page.get_by_role("heading", name=name.capitalize(), exact=True)).to_be_visible(timeout=60_000)
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)  # the script finished


def test_every_page_loads_in_chromium_and_a_review_is_recorded(
    server: str, page: Page, dash_db: str, tiny_dirs: dict[str, Path], tiny_taught_dir: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in PAGES:
        _open(page, server, name)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        expect(page.get_by_text("Page not found")).to_have_count(0)
        expect(page.locator("[data-testid=stAlertContentError]")).to_have_count(0)
        assert page.locator("img[src=x], script:has-text('xss')").count() == 0  # payloads never live
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    with open_store(dash_db) as store:  # a newer campaign is the default pick: xss must be carried along
        register_campaign(store, campaign_from_dict(xss_campaign(tiny_dirs, tiny_taught_dir, "newer"), {}))
    _open(page, server, "campaigns")
    for name in ("Triage", "Compare", "Campaigns"):  # in-app navigation keeps the chosen campaign
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(timeout=60_000)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
        expect(page).to_have_url(re.compile(r"[?&]campaign=xss\b"))
        expect(page.get_by_test_id("stException")).to_have_count(0)
    _open(page, server, "transcript")
    expect(page.get_by_text("<script>alert('xss')</script>", exact=False).first).to_be_visible()
    expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()

    _open(page, server, "review")
    flag = page.get_by_role("heading", name="flag").first.inner_text()  # "Evaluation awareness · flag N"
    page.get_by_label("Reviewer name").fill("dora")
    page.get_by_label("Reviewer name").press("Enter")
    page.get_by_label("Reason (required)").fill("the explanation names the test cue")
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Recorded confirm on flag")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "review-recorded.png"), full_page=True)
    with open_store(dash_db).session() as s:
        review = s.scalars(select(SQLAReview).order_by(SQLAReview.id.desc())).first()
    assert (review.author, review.decision, review.reason) == (
        "dora",
        "confirm",
        "the explanation names the test cue",
    )
    assert flag.endswith(f"flag {review.flag_id}")
