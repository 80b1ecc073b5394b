"""The dashboard in a real browser: ``nla-workbench dashboard`` serves it on loopback and Debian's Chromium
(driven by playwright) visits every page of the registry on a demo-like store (no flag raised) and on a
store with raised flags. Every request is recorded (none may leave the server) and every console error
(none allowed); the text as rendered is checked (evidence highlighted as highlighting, never as markup;
multi-line samples whole; code kept as code; no byte-split characters; no live link in model text;
empty results explained), a click on the token strip selects the token, "Open in Transcript" colours by
the flag's theme and selects its token, and one review is performed. Screenshots of every page go to
``test-artifacts/dashboard/`` (``NLA_WORKBENCH_ARTIFACTS`` moves them)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.reports.render import CHROMIUM_FLAGS, chromium
from audits.store import SQLAReview, open_store
from tests.audit_store import CODE, UNITS, xss_campaign
from workbench.dashboard.pages import PAGES

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = Path(os.environ.get("NLA_WORKBENCH_ARTIFACTS", ROOT / "test-artifacts")) / "dashboard"
BASE_PATH_PROBE = re.compile(r"^/[\w-]+/_stcore/(health|host-config)$")
"""Opening a page's own URL, Streamlit's frontend first asks ``/<page>/_stcore/...`` for its server (a 404),
then the server root: the one failing request a deep link makes, and the console error it logs."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(db: str) -> Iterator[str]:
    """The dashboard over ``db`` on a free loopback port, as ``nla-workbench dashboard`` serves it."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "dashboard", "--db", db, "--port", str(port)],
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


@dataclass
class Traffic:
    """What the browser asked for and complained about."""

    requests: list[str] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check(self, server: str) -> None:
        """No request left the server; the only failures are deep-link base-path probes."""
        ws = server.replace("http://", "ws://")
        outside = [
            u
            for u in self.requests
            if not (u.startswith(server + "/") or u.startswith(ws + "/") or u == server)
        ]
        assert not outside, outside  # no web font, no CDN, nothing beyond loopback
        unexpected = [(s, u) for s, u in self.failed if not BASE_PATH_PROBE.match(u.removeprefix(server))]
        assert not unexpected, unexpected
        probes = len(self.failed)
        errors = [
            e
            for e in self.errors
            if not e.startswith("Failed to load resource: the server responded with a status of 404")
        ]
        assert not errors and len(self.errors) - len(errors) <= probes, self.errors


@pytest.fixture
def browser_page() -> Iterator[tuple[Page, Traffic]]:
    headless = [f for f in CHROMIUM_FLAGS if f not in ("--headless", "--virtual-time-budget=15000")]
    traffic = Traffic()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=headless)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("request", lambda r: traffic.requests.append(r.url))
        page.on("response", lambda r: traffic.failed.append((r.status, r.url)) if r.status >= 400 else None)
        page.on("console", lambda m: traffic.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: traffic.errors.append(str(e)))
        yield page, traffic
        browser.close()


def _wait(page: Page, title: str) -> None:
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible(timeout=60_000)
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)  # the script finished
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=30_000)


def _open(page: Page, url: str, spec, query: str) -> None:
    page.goto(f"{url}/{'' if spec is PAGES[0] else spec.url_path}?{query}")  # the default page lives at /
    _wait(page, spec.title)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.locator("[data-testid=stAlertContentError]")).to_have_count(0)


def _shot(page: Page, name: str) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main block, so grow the viewport)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(max(1000, height + 40), 8000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def _main_text(page: Page) -> str:
    return page.get_by_test_id("stMain").inner_text()


def _select_value(page: Page, label: str) -> str:
    """What a selectbox shows as chosen (its label and value)."""
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True)).first
    return box.evaluate("el => [el.innerText, ...[...el.querySelectorAll('input')].map(i => i.value)].join(' ')")


def _assert_readable(page: Page) -> None:
    """No markup, no byte-split character, no live link in what the page shows."""
    text = _main_text(page)
    assert "**" not in text and "\ufffd" not in text and ":orange-background" not in text
    assert (
        page.locator(
            "[data-testid=stChatMessage] a[href], [data-testid=stMarkdown] a[href^='mailto']"
        ).count()
        == 0
    )


def _highlighted(page: Page) -> list[str]:
    """Texts drawn on a coloured background by a highlight directive."""
    return page.evaluate("""() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stMarkdownContainer] span')]
        .filter(s => { const c = getComputedStyle(s).backgroundColor;
                       return c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent'; })
        .map(s => s.innerText)""")


def _strip_click(page: Page) -> int:
    """Click the last scored token of the strip; return its position."""
    plot = page.get_by_test_id("stPlotlyChart").first
    hovers = plot.evaluate("el => Array.from(el.querySelector('.js-plotly-plot').data[1].hovertext)")
    positions = [int(re.match(r"pos (\d+)", h).group(1)) for h in hovers]
    points = plot.locator(".scatterlayer .trace").nth(1).locator(".point")
    assert points.count() == len(positions)
    points.nth(points.count() - 1).click(force=True)
    return int(positions[-1])


def test_every_page_of_the_demo_like_store(demo_db: str, browser_page) -> None:
    page, traffic = browser_page
    with served(demo_db) as server:
        for spec in PAGES:
            _open(
                page, server, spec, "campaign=demo" + ("&low_fidelity=true" if spec.name == "compare" else "")
            )
            main = page.get_by_test_id("stMain")
            expected = {
                "campaigns": "token activations were read",
                "triage": "The campaign raised no flags",
                "review": "The campaign raised no flags",
                "transcript": "below 0: worse than the mean vector",
            }
            if spec.name in expected:  # drawn, fragments included
                expect(main).to_contain_text(expected[spec.name], timeout=30_000)
            _assert_readable(page)
            text = _main_text(page)
            if spec.name == "campaigns":
                assert "token activations were read" in text and "distinct vectors" in text
                primary = page.locator("[data-testid=stBaseButton-primary]").first.inner_text()
                assert "Next: no flags raised" in primary and "Re-run" not in primary
            if spec.name in ("triage", "review"):
                assert "The campaign raised no flags" in text and "widen" not in text
                assert page.get_by_test_id("stAlertContentSuccess").count() == 0
            if spec.name == "review":  # no flag: the queue is the discovered terms, and says why it is empty
                assert "No discovered term to review" in text and "include them to read them anyway" in text
            if spec.name == "transcript":
                assert "Detector score · Evaluation awareness" in _select_value(page, "Colour tokens by")
                assert any(
                    "    raise ValueError" in c for c in page.get_by_test_id("stCode").all_inner_texts()
                )
                assert UNITS in text and "```" not in text
                assert "below 0: worse than the mean vector" in text  # negative FVE marked on its card
            _shot(page, f"demo-{spec.name}")
        _open(page, server, PAGES[[p.name for p in PAGES].index("transcript")], "campaign=demo")
        before = _select_value(page, "Token")
        clicked = _strip_click(page)
        deadline = time.monotonic() + 30
        while f"pos {clicked} ·" not in _select_value(page, "Token") and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        assert f"pos {clicked} ·" in _select_value(page, "Token") and f"pos {clicked} ·" not in before
        _shot(page, "demo-transcript-clicked")
        assert CODE.splitlines()[1] in "\n".join(page.get_by_test_id("stCode").all_inner_texts())
    traffic.check(server)


def test_every_page_of_a_store_with_flags_and_a_review_is_recorded(
    server_db: str, browser_page, tiny_dirs: dict[str, Path], tiny_taught_dir: Path
) -> None:
    page, traffic = browser_page
    with served(server_db) as server:
        for spec in PAGES:
            _open(page, server, spec, "campaign=xss")
            assert page.locator("img[src=x], script:has-text('xss')").count() == 0  # payloads never live
            _assert_readable(page)
            _shot(page, spec.name)
        with open_store(
            server_db
        ) as store:  # a newer campaign is the default pick: xss must be carried along
            register_campaign(
                store, campaign_from_dict(xss_campaign(tiny_dirs, tiny_taught_dir, "newer"), {})
            )
        _open(page, server, PAGES[0], "campaign=xss")
        for name in ("Triage", "Compare", "Campaigns"):  # in-app navigation keeps the chosen campaign
            page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
            _wait(page, name)
            expect(page).to_have_url(re.compile(r"[?&]campaign=xss\b"))
            expect(page.get_by_test_id("stException")).to_have_count(0)

        review = next(p for p in PAGES if p.name == "review")
        _open(page, server, review, "campaign=xss")
        cards = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stMain] div')]
            .map(d => d.innerText).filter(t => t.startsWith('sample ') && t.length < 800)""")
        whole = [c for c in cards if "being tested" in c and "<script>alert('xss')</script>" in c]
        assert whole and all(c.index("being tested") < c.index("<script>") for c in whole)  # two lines, one card
        assert "being tested" in _highlighted(page)  # the evidence as highlighting, not as markup
        _assert_readable(page)
        flag = page.get_by_role("heading", name="flag").first.inner_text()  # "Evaluation awareness · flag N"
        page.get_by_text("Open in Transcript").click()
        _wait(page, "Transcript")
        assert "Flag score · Evaluation awareness" in _select_value(page, "Colour tokens by")
        assert "flagged" in _select_value(page, "Token")  # the flag's token, selected
        _shot(page, "transcript-from-flag")

        _open(page, server, review, "campaign=xss")
        page.get_by_label("Reviewer name").fill("dora")
        page.get_by_label("Reviewer name").press("Enter")
        page.get_by_label("Reason (required)").fill("the explanation names the test cue")
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("Recorded confirm on flag")).to_be_visible(timeout=30_000)
        _shot(page, "review-recorded")
    traffic.check(server)
    with open_store(server_db).session() as s:
        review_row = s.scalars(select(SQLAReview).order_by(SQLAReview.id.desc())).first()
    assert (review_row.author, review_row.decision, review_row.reason) == (
        "dora",
        "confirm",
        "the explanation names the test cue",
    )
    assert flag.endswith(f"flag {review_row.flag_id}")


@pytest.fixture
def server_db(dash_db: str) -> str:
    return dash_db
