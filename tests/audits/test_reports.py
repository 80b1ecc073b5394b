"""Reports and exports on a real store built by the runner (tiny taught NLA): untrusted text stays
text, the numbers equal the rates the dashboard reads, PDF pages render, exports round-trip."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from audits.reports import exports
from audits.reports.gather import gather
from audits.reports.render import render_html, render_markdown, render_pdf
from audits.store import open_store
from audits.themes.rates import condition_vs_control, flag_frame, flag_rates
from tests.audit_store import PAYLOADS, build_audit_store


@pytest.fixture(scope="module")
def store(tiny_dirs, tiny_taught_dir, tmp_path_factory):
    db = build_audit_store(tmp_path_factory.mktemp("reports") / "store.db", tiny_dirs, tiny_taught_dir)
    with open_store(db) as opened:
        yield opened


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append("")

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1][0] == "script":
            self.scripts[-1] += data


def test_html_has_no_live_payload_and_no_external_url(store) -> None:
    html = render_html(gather(store, "xss", {}, include_unreviewed=True, include_low_fidelity=True))
    parser = _Tags()
    parser.feed(html)
    bundle, *charts = parser.scripts  # the inlined plotly.js, then one plotting call per chart
    assert "plotly.js" in bundle[:2000] and len(charts) == 3  # two themes + the difference chart
    assert all(c.lstrip().startswith("window.PLOTLYENV") and "alert" not in c for c in charts)
    assert [t for t, _ in parser.tags].count("style") == 1
    assert [t for t, _ in parser.tags if t in ("img", "a", "iframe", "link", "object", "embed")] == []
    for _, attrs in parser.tags:
        assert not any(name.startswith("on") for name in attrs)
        assert not any(
            (v or "").strip().lower().startswith(("javascript:", "http:", "https:", "//"))
            for v in attrs.values()
        )
    for payload in PAYLOADS:
        assert payload not in html
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in html  # shown, as text
    assert "ann &lt;b&gt;" in html and "Confirmed flags (1)" in html


def test_markdown_escapes_untrusted_text(store) -> None:
    text = render_markdown(gather(store, "xss", {}, include_unreviewed=True, include_low_fidelity=True))
    assert "<script" not in text and "<img" not in text and "</style>" not in text
    assert "&lt;script&gt;" in text


def test_report_numbers_equal_the_rates_the_dashboard_reads(store) -> None:
    rates = flag_rates(
        flag_frame(store, "xss"), include_low_fidelity=True
    )  # the untrained AR: all low-fidelity
    comparison = condition_vs_control(rates)
    html = render_html(gather(store, "xss", {}, include_low_fidelity=True))
    rows = _finding_rows(html)
    assert len(rows) == len(comparison) > 0
    for row, expected in zip(rows, comparison.itertuples(), strict=True):
        assert row[:3] == [expected.scenario_id, expected.theme_id, expected.condition]
        assert row[3].startswith(f"{expected.rate:.0%}") and f"/{expected.n})" in row[3]
        assert row[7].startswith(
            f"{expected.diff:+.2f} [{expected.diff_low:+.2f}, {expected.diff_high:+.2f}]"
        )


def _finding_rows(html: str) -> list[list[str]]:
    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.inside = False

        def handle_starttag(self, tag, attrs) -> None:
            if tag == "tr" and ("class", "finding") in attrs:
                self.inside, self.rows = True, [*self.rows, []]
            elif tag == "td" and self.inside:
                self.rows[-1].append("")

        def handle_endtag(self, tag) -> None:
            if tag == "tr":
                self.inside = False

        def handle_data(self, data) -> None:
            if self.inside and self.rows[-1]:
                self.rows[-1][-1] += data

    parser = Rows()
    parser.feed(html)
    return parser.rows


def test_pdf_renders_pages_with_the_key_text(store, tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    render_pdf(render_html(gather(store, "xss", {}, include_low_fidelity=True)), pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert len(pages) >= 2 and re.search(r"Pages:\s+(\d+)", info).group(1) == str(len(pages))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for key in (
        "Audit report: xss",
        "1. Scope",
        "2. Findings",
        "3. Evidence",
        "4. Limitations",
        "Untrained NLA",
    ):
        assert key in text


@pytest.mark.parametrize("what", list(exports.COLUMNS))
def test_exports_round_trip_with_documented_columns(store, what: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(exports, "CHUNK", 3)  # force several chunks: rows stream, never all at once
    chunks = list(exports.stream_rows(store, "xss", what))
    names = [name for name, _, _ in exports.COLUMNS[what]]
    total = sum(len(c) for c in chunks)
    assert total > 0 and all(len(c) <= 3 for c in chunks)
    for fmt in ("csv", "jsonl", "parquet"):
        path = tmp_path / f"{what}.{fmt}"
        assert exports.write_export(iter(chunks), what, fmt, path) == total
        if fmt == "parquet":
            table = pq.read_table(path)
            assert table.schema.names == names
            assert [str(f.type) for f in table.schema] == [str(t) for _, t, _ in exports.COLUMNS[what]]
            assert len(pd.read_parquet(path)) == total
        elif fmt == "csv":
            assert list(pd.read_csv(path).columns) == names and len(pd.read_csv(path)) == total
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            assert len(rows) == total and list(rows[0]) == names


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def test_cli_refuses_overwrite_unknown_campaign_and_unwritable_paths(store, tmp_path: Path) -> None:
    db = str(store.url.database)
    done = _cli("report", "xss", "--format", "md", "--out", "r.md", "--db", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = _cli("report", "xss", "--format", "md", "--out", "r.md", "--db", db, cwd=tmp_path)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    assert (
        _cli(
            "report", "xss", "--format", "md", "--out", "r.md", "--force", "--db", db, cwd=tmp_path
        ).returncode
        == 0
    )
    unknown = _cli("export", "nope", "--db", db, "--out", "x.csv", cwd=tmp_path)
    assert (
        unknown.returncode == 2
        and "no campaign named 'nope'" in unknown.stderr
        and not (tmp_path / "x.csv").exists()
    )
    missing = _cli("export", "xss", "--db", db, "--out", "no/such/dir/x.csv", cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad = _cli("export", "xss", "--format", "xlsx", "--db", db, cwd=tmp_path)
    assert bad.returncode == 2 and "choose one of csv, jsonl, parquet" in bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md"]  # nothing partial left behind
