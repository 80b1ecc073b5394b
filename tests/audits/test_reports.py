"""Reports and exports on a real store built by the runner (tiny taught NLA): untrusted text stays
text, the numbers equal the rates the dashboard reads, PDF pages render, exports round-trip."""

from __future__ import annotations

import html
import json
import os
import re
import stat
import subprocess
import sys
import weakref
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import markupsafe
import pandas as pd
import pyarrow.parquet as pq
import pytest
from markdown_it import MarkdownIt
from playwright.sync_api import sync_playwright
from sqlalchemy import delete, select

from audits.read_model.flags import campaign_rates, cell_label
from audits.read_model.lens import LensReading, shared_words
from audits.reports import exports
from audits.reports.gather import gather
from audits.reports.output import atomic_output
from audits.reports.render import (
    CHROMIUM_FLAGS,
    chromium,
    md_text,
    render_html,
    render_markdown,
    render_pdf,
    scope_rows,
)
from audits.store import (
    SQLAActivation,
    SQLAExplanation,
    SQLAFlag,
    SQLALogitLens,
    SQLARun,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    open_store,
)
from audits.themes.rates import campaign_id_of, condition_vs_control
from nla.checkpoint import save_released
from tests.audit_store import PAYLOADS, build_audit_store, build_demo_store

BROWSER_FLAGS = [f for f in CHROMIUM_FLAGS if f not in ("--headless", "--virtual-time-budget=15000")]


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
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append("")

    def handle_data(self, data: str) -> None:
        self.text += data
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
    parser = _Tags()  # rendered as a Markdown viewer would: the payloads are plain text, no tag is live
    parser.feed(MarkdownIt("commonmark").enable("table").render(text))
    assert {t for t, _ in parser.tags} <= {"h1", "h2", "h3", "h4", "p", "blockquote", "strong", "ul", "li",
                                           "table", "thead", "tbody", "tr", "th", "td"}  # fmt: skip
    assert all(attrs == {} for _, attrs in parser.tags)
    for payload in PAYLOADS:
        assert payload in parser.text


def test_report_numbers_equal_what_the_dashboard_shows(store) -> None:
    data = gather(store, "xss", {}, include_low_fidelity=True)  # the untrained AR: all low-fidelity
    rates = campaign_rates(store, "xss", include_low_fidelity=True)  # the Triage and Compare pages
    compared = condition_vs_control(rates)  # the Compare page's table
    pd.testing.assert_frame_equal(data.rates, rates)
    pd.testing.assert_frame_equal(data.comparison, compared)

    def cell(row: pd.Series, kind: str = "") -> str:
        k, n = row[f"k{kind}"], row["n"]
        return f"{row[f'rate{kind}']:.0%} [{row[f'low{kind}']:.0%}, {row[f'high{kind}']:.0%}] ({k}/{n})"

    expected = []
    for c in compared.to_dict("records"):
        same = (rates["scenario_id"] == c["scenario_id"]) & (rates["theme_id"] == c["theme_id"])
        main = rates[same & ~rates["is_control"] & (rates["condition"] == c["condition"])].iloc[0]
        control = rates[same & rates["is_control"] & (rates["condition"] == c["control_condition"])].iloc[0]
        expected.append([
            c["scenario_id"], c["theme_id"], c["condition"], cell(main), cell(main, "_verbalized"),
            cell(main, "_unverbalized"), f"{cell(control)} · {cell_label(c['control_condition'], True)}",
            f"{c['diff']:+.2f} [{c['diff_low']:+.2f}, {c['diff_high']:+.2f}]",
            f"{c['diff_unverbalized']:+.2f} [{c['diff_unverbalized_low']:+.2f}, {c['diff_unverbalized_high']:+.2f}]",
        ])  # fmt: skip
    assert expected
    assert _finding_rows(render_html(data)) == expected
    assert _md_finding_rows(render_markdown(data)) == expected


def _md_finding_rows(text: str) -> list[list[str]]:
    """The condition-vs-control table of a Markdown report, unescaped back to plain text."""
    section = text.split("### Condition vs control", 1)[1].split("## 3. Evidence", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][2:]  # past the header
    return [
        [html.unescape(re.sub(r"\\(.)", r"\1", c.strip())) for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in lines
    ]


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


def test_markdown_has_the_content_of_the_html(store) -> None:
    data = gather(store, "xss", {}, include_unreviewed=True, include_low_fidelity=True)
    text, page = render_markdown(data), render_html(data)
    scope = dict(scope_rows(data))
    prov = data.provenance
    facts = {
        "campaign": f"created {data.created_at:%Y-%m-%d %H:%M}",
        "scenarios": "xss-given",
        "conditions": "; ".join(f"{k}: {', '.join(v)}" for k, v in data.spec.get("conditions", {}).items())
        or "every value each scenario declares",
        "sidecar values": f"layer = {prov['nla_meta']['layer']}",
        "provenance": f"python {prov['python']}; "
        + ", ".join(f"{k} {v}" for k, v in prov["packages"].items()),
        "runs": f"run {data.runs[0]['id']}: {data.runs[0]['status']} on {data.runs[0]['executor']}",
        "reviewers": "ann <b>, bob",
    }
    for field, fact in facts.items():
        assert fact in scope[field]
    for field, value in scope.items():
        assert f"| {md_text(field)} | {md_text(value)} |" in text
        if field != "themes":  # shown as coloured badges in the HTML
            assert f"<th>{field}</th><td>{html.escape(value)}</td>" in page
    for header in ("verbalized \\[95% CI\\]", "unverbalized difference \\[95% CI\\]"):
        assert header in text
    confirmed, unreviewed = text.split("## 3. Evidence", 1)[1].split("### Unreviewed flags", 1)
    flag_ids = re.compile(r"^#### .*?: flag (\d+) ", re.M)
    assert [int(i) for i in flag_ids.findall(confirmed)] == [e.flag["flag_id"] for e in data.confirmed]
    assert [int(i) for i in flag_ids.findall(unreviewed)] == [e.flag["flag_id"] for e in data.unreviewed]
    assert unreviewed.startswith(f" ({data.unreviewed_count})") and data.unreviewed_count > 0
    assert (
        md_text("review: confirm by ann <b> (") in confirmed and md_text("aware " + PAYLOADS[2]) in confirmed
    )
    for sample in data.confirmed[0].samples:
        assert md_text(sample.text) in confirmed
    counted = render_markdown(gather(store, "xss", {}, include_low_fidelity=True))
    listed = counted.split("### Unreviewed flags", 1)[1].split("## 4. Limitations", 1)[0]
    assert listed.startswith(f" ({data.unreviewed_count})") and "are not listed" in listed
    assert not flag_ids.search(listed)


def test_fidelity_and_samples_are_the_campaigns_own(store) -> None:
    before = gather(store, "xss", {}, include_unreviewed=True, include_low_fidelity=True)
    assert before.fidelity.parsed == before.status.explanations["ok"] > 0
    prov, flag = before.provenance, before.confirmed[0].flag
    common = {"checkpoint_id": prov["checkpoint_id"], "sample_index": 0, "status": "ok", "finish": "stop",
              "n_tokens": 1, "cos": -0.9, "mse": 9.0, "fve": -50.0}  # fmt: skip
    with store.session() as s:
        run_id = s.scalar(select(SQLARun.id))
        added = [
            # another campaign's activation under the same checkpoint and sampling
            SQLAExplanation(run_id=run_id, activation_key="f" * 64, sampling_key=prov["sampling_key"],
                            text="another campaign", raw_output="", **common),
            # this flag's activation under another sampling
            SQLAExplanation(run_id=run_id, activation_key=flag["activation_key"], sampling_key="e" * 64,
                            text="another sampling", raw_output="", **common),
        ]  # fmt: skip
        s.add_all(added)
        s.flush()
        ids = [e.id for e in added]
    try:
        after = gather(store, "xss", {}, include_unreviewed=True, include_low_fidelity=True)
    finally:
        with store.session() as s:
            s.execute(delete(SQLAExplanation).where(SQLAExplanation.id.in_(ids)))
    assert after.fidelity == before.fidelity
    for old, new in zip(
        before.confirmed + before.unreviewed, after.confirmed + after.unreviewed, strict=True
    ):
        assert new.samples == old.samples
        assert len({s.index for s in new.samples}) == len(new.samples) >= new.flag["n_samples"]


def _read(path: Path, fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path) if fmt == "csv" else pd.read_json(path, lines=True)


def _store_values(store, what: str) -> pd.DataFrame:
    """A few columns of the campaign's rows, read from the store by the ORM, keyed by row id."""
    campaign_id = campaign_id_of(store, "xss")
    if what == "flags":
        f = SQLAFlag
        query = select(
            f.id.label("flag_id"), f.theme_id, f.raised, f.score, f.fve, f.evidence_text.label("evidence")
        )
        query = query.where(f.campaign_id == campaign_id)
    else:
        e = SQLAExplanation
        ours = (
            select(SQLAActivation.activation_key)
            .join(SQLATokenPosition, SQLATokenPosition.id == SQLAActivation.token_position_id)
            .join(SQLATranscript, SQLATranscript.id == SQLATokenPosition.transcript_id)
            .join(SQLAVariant, SQLAVariant.id == SQLATranscript.variant_id)
            .where(SQLAVariant.campaign_id == campaign_id)
        )
        query = select(e.id.label("explanation_id"), e.text, e.status, e.fve, e.created_at)
        query = query.where(e.activation_key.in_(ours))
    with store.session() as s:
        frame = pd.DataFrame(s.execute(query).all(), columns=list(query.selected_columns.keys()))
    return frame.set_index(frame.columns[0]).sort_index()


@pytest.mark.parametrize("what", ["flags", "explanations"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_values_round_trip_through_pandas(store, what: str, fmt: str, tmp_path: Path) -> None:
    expected = _store_values(store, what)
    path = tmp_path / f"{what}.{fmt}"
    exports.write_export(exports.stream_rows(store, "xss", what), what, fmt, path)
    got = _read(path, fmt).drop_duplicates(expected.index.name).set_index(expected.index.name).sort_index()
    got = got[list(expected.columns)]
    if "created_at" in got:
        got["created_at"] = pd.to_datetime(got["created_at"], utc=True)
        expected["created_at"] = pd.to_datetime(expected["created_at"], utc=True)
    assert len(expected) > 3
    pd.testing.assert_frame_equal(
        got, expected.astype({c: float for c in ("score", "fve") if c in expected}), check_dtype=False,
        check_index_type=False,
    )  # fmt: skip


class _Chunk(list):
    """A chunk of rows that a weak reference can watch."""


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_write_export_holds_one_chunk_at_a_time(store, fmt: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(exports, "CHUNK", 2)
    given: list[weakref.ref[_Chunk]] = []
    peak_rows = 0

    def watched() -> Iterator[list[dict[str, Any]]]:
        nonlocal peak_rows
        for rows in exports.stream_rows(store, "xss", "tokens"):  # the real generator, read lazily
            held = sum(len(ref() or ()) for ref in given)  # rows of the chunks the writer still holds
            peak_rows = max(peak_rows, held)
            chunk = _Chunk(rows)
            given.append(weakref.ref(chunk))
            yield chunk
            del chunk

    path = tmp_path / f"tokens.{fmt}"
    count = exports.write_export(watched(), "tokens", fmt, path)
    assert count == len(_read(path, fmt)) and len(given) == -(-count // 2) > 5
    assert peak_rows <= 2  # one chunk at most, however long the table


def test_cli_write_failures_name_the_path_without_a_traceback(store, tmp_path: Path) -> None:
    db = str(store.url.database)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    # /proc refuses new files even to root, for whom os.access says every folder is writable
    for out in ("folder", "file/r.md", "/proc/r.md"):
        done = _cli("report", "xss", "--format", "md", "--out", out, "--db", db, cwd=tmp_path)
        assert done.returncode == 2 and out in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"] and not any(
        (tmp_path / "folder").iterdir()
    )
    with pytest.raises(OSError) as failed, atomic_output(Path("/proc/r.md")):
        pass
    assert failed.value.filename == "/proc/r.md"


@pytest.fixture(scope="module")
def demo_store(tiny_dirs, tiny_calm_dir, tmp_path_factory):
    """A demo-like campaign that raised no flag: small cells, two controls of one scenario."""
    db = build_demo_store(tmp_path_factory.mktemp("demo-report") / "store.db", tiny_dirs, tiny_calm_dir)
    with open_store(db) as opened:
        yield opened


PYTHON_REPR = re.compile(r"\{'|'\}|\bNone\b|\bnan\b|\bNaN\b|\bNaT\b|\[\d+, \d+")
MD_NEEDS = set("\\`*[]|~")
"""What Markdown needs escaped anywhere (``_`` only at a word's edge; block syntax only at a line's start)."""


def _stray_escapes(markdown: str) -> list[str]:
    """Backslash escapes a Markdown viewer does not need: before ordinary punctuation, a ``_`` inside a
    word, or block syntax that does not start a line."""
    stray = []
    for line in markdown.splitlines():
        for match in re.finditer(r"\\(.)", line):
            char, at = match.group(1), match.start()
            if char in MD_NEEDS:
                continue
            if char == "_" and not (line[at - 1 : at].isalnum() and line[at + 2 : at + 3].isalnum()):
                continue
            if char in "#+-=" and at == 0 or char in ".)" and re.fullmatch(r"\d+", line[:at]):
                continue
            stray.append(line[max(0, at - 20) : at + 20])
    return stray


def _pdf_text(pdf: Path, *args: str) -> str:
    return subprocess.run(
        ["pdftotext", *args, str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize("which", ["store", "demo_store"])
def test_reports_show_no_python_repr_and_no_stray_markdown_escapes(
    which: str, request, tmp_path: Path
) -> None:
    opened = request.getfixturevalue(which)
    name = "xss" if which == "store" else "demo"
    data = gather(opened, name, {}, include_unreviewed=True, include_low_fidelity=which == "store")
    text = render_markdown(data)
    parser = _Tags()
    parser.feed(re.sub(r"<script.*?</script>", "", render_html(data).split("</head>", 1)[1], flags=re.S))
    pdf = tmp_path / "report.pdf"
    render_pdf(render_html(data), pdf)
    for shown in (text, parser.text, _pdf_text(pdf)):
        assert not PYTHON_REPR.search(shown), PYTHON_REPR.search(shown)
    assert not _stray_escapes(text), _stray_escapes(text)
    assert "\\-" not in text and "d_model" in text  # hyphens and words left alone
    rendered = _Tags()  # escapes that remain are the ones Markdown needs: the text reads back unchanged
    rendered.feed(MarkdownIt("commonmark").enable("table").render(text))
    for scenario in _scenarios_of(data):
        assert scenario in rendered.text


def _scenarios_of(data) -> list[str]:
    return sorted(set(data.rates["scenario_id"]))


def test_a_report_that_raised_nothing_says_so_and_what_its_cells_can_detect(demo_store) -> None:
    data = gather(demo_store, "demo", {})
    assert data.verdicts.raised == 0
    text = render_markdown(data).replace("\\", "")
    assert data.verdicts.low_fidelity == data.verdicts.judged  # the tiny untrained AR: every verdict
    assert f"No verdicts to rate: all {data.verdicts.judged} verdicts are low-fidelity" in text
    summary = text.split("**Summary.** ", 1)[1].split("\n", 1)[0]
    assert summary.startswith(f"The campaign raised no flags: {data.verdicts.judged} token-theme verdicts")
    assert "not evidence of absence" in summary
    small = data.verdicts.smallest_cell
    assert small < 30 and f"Small cells: each scenario, theme and condition holds {small}" in text
    counted = render_markdown(gather(demo_store, "demo", {}, include_low_fidelity=True)).replace("\\", "")
    rows = [line.split(" | ") for line in counted.split("### Flag rates by scenario and condition", 1)[1]
            .split("### Condition vs control", 1)[0].splitlines() if line.startswith("| ")][2:]  # fmt: skip
    readings = [row[-1].rstrip(" |") for row in rows]
    assert readings and all(
        re.fullmatch(r"none of \d+ flagged: a rate up to \d+% is not ruled out", r) for r in readings
    )
    assert {row[2] for row in rows} >= {"goal=explicit (control)", "goal=latent (control)"}  # two controls
    low = data.verdicts.low_fidelity
    assert (
        f"Low-fidelity verdicts are excluded: {low} of the {data.verdicts.judged} token-theme verdicts"
        in text
    )
    assert f"{data.verdicts.raised} raised a flag. Of those raised flags, 0 are low-fidelity" in text


def test_pdf_prints_charts_without_toolbar_cut_labels_or_orphan_headers(demo_store, tmp_path: Path) -> None:
    data = gather(demo_store, "demo", {}, include_low_fidelity=True)
    html = render_html(data)
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    with sync_playwright() as p:  # the page Chromium prints, as it lays it out
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=BROWSER_FLAGS)
        view = browser.new_page()
        view.goto(page.as_uri())
        view.wait_for_selector(".main-svg")
        assert view.locator(".modebar, .modebar-btn").count() == 0  # no toolbar to print
        cut = view.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot => {
            const box = plot.getBoundingClientRect();
            return [...plot.querySelectorAll('.ytick text, .xtick text, .g-xtitle text, .g-ytitle text')]
              .map(t => t.getBoundingClientRect())
              .filter(r => r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1
                           || r.bottom > box.bottom + 1).length; })""")
        assert sum(cut) == 0  # every axis label inside its chart
        browser.close()
    pdf = tmp_path / "report.pdf"
    render_pdf(html, pdf)
    text = _pdf_text(pdf)
    assert "goal=explicit (control)" in text and "goal=latent (control)" in text  # labels whole, told apart
    pages = int(re.search(r"Pages:\s+(\d+)", subprocess.run(["pdfinfo", str(pdf)], capture_output=True,
                                                             text=True, check=True).stdout).group(1))  # fmt: skip
    header = re.compile(r"\[95% CI\]|^(what it shows|sample|status|FVE|cos|explanation)$")
    for number in range(1, pages + 1):
        lines = [
            ln.strip()
            for ln in _pdf_text(pdf, "-f", str(number), "-l", str(number)).splitlines()
            if ln.strip()
        ]
        assert not any(header.search(line) for line in lines[-2:]), (number, lines[-4:])  # no orphan header


def test_shared_files_follow_the_umask(store, tiny_nla, tmp_path: Path) -> None:
    db = str(store.url.database)

    def written(*args: str) -> int:
        done = subprocess.run([sys.executable, "-m", "workbench.cli", *args, "--db", db], cwd=tmp_path,
                              capture_output=True, text=True, preexec_fn=lambda: os.umask(0o027))  # fmt: skip
        assert done.returncode == 0, done.stderr
        return stat.S_IMODE((tmp_path / args[args.index("--out") + 1]).stat().st_mode)

    for fmt in ("md", "html", "pdf"):
        assert written("report", "xss", "--format", fmt, "--out", f"r.{fmt}") == 0o640
    assert written("export", "xss", "--format", "csv", "--out", "x.csv") == 0o640
    old = os.umask(0o022)
    try:
        out = save_released(tiny_nla("llama"), tmp_path / "nla")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    assert modes["model.safetensors"] == 0o644 and set(modes.values()) <= {0o644, 0o755}  # weights too


def test_evidence_shows_the_logit_lens_of_the_flagged_activation(store) -> None:
    """Each flag's evidence carries the logit lens stored for its own activation (the campaign's, at the
    flag's token), shown in the HTML and Markdown reports beside the samples, escaped like any model text."""
    data = gather(store, "xss", {}, include_unreviewed=True, include_low_fidelity=True)
    evidence = data.confirmed + data.unreviewed
    assert evidence, "the audit store raises flags"
    cid = campaign_id_of(store, "xss")
    page, md = render_html(data), render_markdown(data)
    for e in evidence:
        with store.session() as s:
            expected = s.execute(
                select(SQLALogitLens.layer, SQLALogitLens.tokens)
                .join(SQLAActivation, SQLAActivation.id == SQLALogitLens.activation_id)
                .where(SQLAActivation.campaign_id == cid,
                       SQLAActivation.token_position_id == int(e.flag["token_position_id"]))
            ).all()  # fmt: skip
        assert expected, "the runner stores the lens for every selected token"
        assert [(r.layer, r.tokens) for r in e.lens] == [(layer, list(tokens)) for layer, tokens in expected]
        assert f"logit lens, layer {e.lens[0].layer}: {markupsafe.escape(e.lens[0].label())}" in page
        assert f"- logit lens, layer {e.lens[0].layer}: " in md


def test_lens_agreement_counts_whole_words_only() -> None:
    reading = LensReading(
        12, [" Gold", "gold", "ng", " the", "\n", " 42", "Moon"], [0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    )
    assert reading.words() == ["gold", "the", "moon"]
    assert shared_words([reading], "A golden hint about the Moon's glow") == ["the", "moon"]
    assert shared_words([reading], "Gold, gold everywhere.") == ["gold"]
    assert shared_words([reading], None) == []


def test_term_reviews_export_the_campaigns_decisions_with_formulas_defused(store, tmp_path: Path) -> None:
    rows = [r for chunk in exports.stream_rows(store, "xss", "term_reviews") for r in chunk]
    assert [(r["term"], r["decision"], r["arm"], r["against"]) for r in rows] == [
        ("cat", "dismiss", "main", "control"), ("assistant", "follow_up", "main", "control"),
        ("cat", "confirm", "main", "control"),
    ]  # fmt: skip
    path = tmp_path / "terms.csv"
    exports.write_export(exports.stream_rows(store, "xss", "term_reviews"), "term_reviews", "csv", path)
    reasons = list(pd.read_csv(path)["reason"])
    assert reasons[1] == "'=HYPERLINK(\"http://x\")" and reasons[2] == "<script>alert('xss')</script>"
