"""Render a report as self-contained HTML (plotly inlined, no external URL), Markdown, or PDF
(headless Chromium printing the HTML). All model and scenario text is escaped: Jinja2 autoescapes the
HTML, and Markdown text is escaped for both Markdown and inline HTML."""

from __future__ import annotations

import html
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from plotly.offline import get_plotlyjs

from audits.errors import SpecError
from audits.reports.charts import difference_chart, rate_chart
from audits.reports.gather import ReportData

CHROMIUM_ENV = "NLA_WORKBENCH_CHROMIUM"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-pdf-header-footer", "--virtual-time-budget=15000",
)  # fmt: skip
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~>])")


def _fmt(value: object, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _pct(value: object) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"


def _signed(value: object) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:+.2f}"


def finding_rows(data: ReportData) -> pd.DataFrame:
    """Condition-vs-control rows with each side's counts and the verbalized / unverbalized rates."""
    if data.comparison.empty:
        return data.comparison
    main = data.rates[~data.rates["is_control"]].drop(columns=["is_control", "variant_key", "rate", "n"])
    control = data.rates[data.rates["is_control"]][["scenario_id", "theme_id", "condition", "k"]].rename(
        columns={"condition": "control_condition", "k": "control_k"}
    )
    rows = data.comparison.merge(main, on=["scenario_id", "theme_id", "condition"], how="left")
    return rows.merge(control, on=["scenario_id", "theme_id", "control_condition"], how="left")


def render_html(data: ReportData) -> str:
    """The report as one HTML document that works offline."""
    env = Environment(
        loader=PackageLoader("audits.reports", "templates"), autoescape=select_autoescape(["j2"])
    )
    spec = data.spec
    scenarios = [*spec["scenarios"].get("ids", []), *spec["scenarios"].get("tags", []),
                 *[s["id"] for s in spec["scenarios"].get("inline", [])]]  # fmt: skip
    conditions = [f"{slot}: {', '.join(values)}" for slot, values in spec.get("conditions", {}).items()] or [
        "every value each scenario declares"
    ]
    rows = finding_rows(data)
    return env.get_template("report.html.j2").render(
        d=data, plotly_js=get_plotlyjs(), scenarios=scenarios, conditions=conditions,
        charts={t: rate_chart(data.rates, theme) for t, theme in data.themes.items()},
        comparison_chart=difference_chart(data.comparison, data.themes) if not data.comparison.empty else "",
        rows=rows.to_dict("records"),
        fmt=_fmt, pct=_pct, signed=_signed,
    )  # fmt: skip


def md_text(value: object) -> str:
    """Text safe in Markdown: HTML-escaped, Markdown punctuation backslashed, kept on one line."""
    text = html.escape(str(value), quote=True)
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def render_markdown(data: ReportData) -> str:
    """The report as Markdown (tables and evidence, no charts)."""
    out = [f"# Audit report: {md_text(data.campaign)}", "", md_text(data.description), ""]
    if data.untrained:
        out += ["> **Untrained NLA**: its explanations carry no information about the activations.", ""]
    out += ["> NLA explanations are hypotheses that can hallucinate; every flag is a lead to verify.", "",
            "## 1. Scope", "", "| field | value |", "| --- | --- |"]  # fmt: skip
    prov = data.provenance
    for field, value in (
        ("target model", data.spec["target"]["model"]), ("NLA checkpoint", prov.get("checkpoint_id")),
        ("layer", (prov.get("nla_meta") or {}).get("layer")), ("fidelity", f"{data.fidelity['n']} parsed explanations, FVE median {_fmt(data.fidelity['fve_median'])}"),
        ("themes", ", ".join(t.key for t in data.themes.values())), ("git", (prov.get("git") or {}).get("commit")),
        ("seed", prov.get("seed")), ("spec sha256", data.spec_hash), ("reviewers", ", ".join(data.reviewers) or "none yet"),
    ):  # fmt: skip
        out.append(f"| {field} | {md_text(value)} |")
    out += ["", "## 2. Findings", "", "| scenario | theme | condition | rate [95% CI] | unverbalized | control | difference [95% CI] |",
            "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in finding_rows(data).to_dict("records"):
        out.append(
            f"| {md_text(r['scenario_id'])} | {md_text(r['theme_id'])} | {md_text(r['condition'])} | "
            f"{_pct(r['rate'])} \\[{_pct(r['low'])}, {_pct(r['high'])}\\] ({r['k']}/{r['n']}) | {_pct(r['rate_unverbalized'])} | "
            f"{_pct(r['control_rate'])} ({r['control_k']}/{r['control_n']}) | {_signed(r['diff'])} \\[{_signed(r['diff_low'])}, {_signed(r['diff_high'])}\\] |"
        )  # fmt: skip
    out += ["", "## 3. Evidence", "", f"### Confirmed flags ({len(data.confirmed)})", ""]
    for e in [*data.confirmed, *data.unreviewed]:
        f = e.flag
        out += [f"- **{md_text(f['theme_id'])}** flag {f['flag_id']}, {md_text(f['variant_key'])}, position {f['position']} "
                f"(score {_fmt(f['score'])}, {f['n_hits']}/{f['n_samples']} samples, FVE {_fmt(f['fve'])}, review {md_text(f['review_state'])}"
                + (f": {md_text(f['review_reason'])}" if f["review_state"] != "open" else "") + ")",
                f"  - excerpt: {md_text(e.before)} **{md_text(e.token)}** {md_text(e.after)}"]  # fmt: skip
        out += [
            f"  - sample {s.index} ({md_text(s.status)}, FVE {_fmt(s.fve)}): {md_text(s.text)}"
            for s in e.samples
        ]
    if not data.include_unreviewed:
        out += [
            "",
            f"{data.unreviewed_count} unreviewed flag(s) not listed; {data.dismissed_count} dismissed.",
        ]
    s = data.status
    out += ["", "## 4. Limitations", "",
            "- NLA explanations can hallucinate; fidelity and sample agreement are shown with every flag.",
            f"- Transcripts by status: {md_text(s.transcripts)}; explanations by status: {md_text(s.explanations)} "
            f"({s.explained} of {s.expected_explanations} expected); runs: {md_text(', '.join(r['status'] for r in data.runs))}.",
            f"- {s.flags['raised']} raised flags, {s.flags['low_fidelity']} low-fidelity (excluded from rates), {s.flags['unverbalized']} unverbalized.",
            ""]  # fmt: skip
    return "\n".join(out)


def chromium() -> str:
    """The Chromium binary used for PDF printing (``$NLA_WORKBENCH_CHROMIUM`` or on PATH)."""
    for candidate in (os.environ.get(CHROMIUM_ENV), "chromium", "chromium-browser", "google-chrome"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    raise SpecError(
        f"PDF reports are printed by headless Chromium, which was not found: install Debian's chromium "
        f"(`make system-deps`) or set {CHROMIUM_ENV}"
    )


def render_pdf(html_text: str, out: Path) -> None:
    """Print the HTML report to ``out`` with headless Chromium (charts drawn before printing)."""
    binary = chromium()
    with tempfile.TemporaryDirectory(prefix="nla-report-") as tmp:
        page, pdf = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        cmd = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp}/profile",
            f"--print-to-pdf={pdf}",
            page.as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if done.returncode != 0 or not pdf.is_file():
            raise SpecError(
                f"Chromium could not print the report: {(done.stderr or done.stdout).strip()[-400:]}"
            )
        shutil.move(pdf, out)
