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
from audits.reports.gather import Evidence, ReportData
from audits.review import OPEN

CHROMIUM_ENV = "NLA_WORKBENCH_CHROMIUM"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-pdf-header-footer", "--virtual-time-budget=15000",
)  # fmt: skip
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-!|~>])")


FINDING_HEADER = (
    "scenario", "theme", "condition", "rate [95% CI]", "verbalized [95% CI]", "unverbalized [95% CI]",
    "control [95% CI]", "difference [95% CI]", "unverbalized difference [95% CI]",
)  # fmt: skip
RATE_HEADER = FINDING_HEADER[:6]
SAMPLE_HEADER = ("sample", "status", "FVE", "cos", "explanation")
_TEMPLATES = ("av_template", "ar_template")
"""Sidecar prompt templates, too long for the scope table."""


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: object, digits: int = 2) -> str:
    return "-" if _missing(value) else f"{value:.{digits}f}"


def _pct(value: object) -> str:
    return "-" if _missing(value) else f"{value:.0%}"


def _signed(value: object) -> str:
    return "-" if _missing(value) else f"{value:+.2f}"


def _when(value: object) -> str:
    return "-" if pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M UTC}"


def _interval(rate: object, low: object, high: object, k: object, n: object) -> str:
    """A rate with its Wilson interval and counts: ``40% [12%, 74%] (2/5)``."""
    return f"{_pct(rate)} [{_pct(low)}, {_pct(high)}] ({k}/{n})"


def _difference(diff: object, low: object, high: object) -> str:
    """A difference of rates with its Newcombe interval: ``+0.20 [-0.10, +0.45]``."""
    return f"{_signed(diff)} [{_signed(low)}, {_signed(high)}]"


def _rates(r: dict) -> list[str]:
    """The overall, verbalized and unverbalized rate cells of a rates row."""
    return [
        _interval(r[f"rate{kind}"], r[f"low{kind}"], r[f"high{kind}"], r[f"k{kind}"], r["n"])
        for kind in ("", "_verbalized", "_unverbalized")
    ]


def finding_rows(data: ReportData) -> pd.DataFrame:
    """Condition-vs-control rows with both sides' counts and intervals, verbalized and unverbalized apart."""
    if data.comparison.empty:
        return data.comparison
    main = data.rates[~data.rates["is_control"]].drop(columns=["is_control", "variant_key", "rate", "n"])
    control = data.rates[data.rates["is_control"]][
        ["scenario_id", "theme_id", "condition", "k", "low", "high"]
    ]
    control = control.rename(
        columns={
            "condition": "control_condition",
            "k": "control_k",
            "low": "control_low",
            "high": "control_high",
        }
    )
    rows = data.comparison.merge(main, on=["scenario_id", "theme_id", "condition"], how="left")
    return rows.merge(control, on=["scenario_id", "theme_id", "control_condition"], how="left")


def finding_cells(data: ReportData) -> list[list[str]]:
    """The findings table as text, one row per condition (columns of :data:`FINDING_HEADER`)."""
    return [
        [r["scenario_id"], r["theme_id"], r["condition"], *_rates(r),
         _interval(r["control_rate"], r["control_low"], r["control_high"], r["control_k"], r["control_n"]),
         _difference(r["diff"], r["diff_low"], r["diff_high"]),
         _difference(r["diff_unverbalized"], r["diff_unverbalized_low"], r["diff_unverbalized_high"])]
        for r in finding_rows(data).to_dict("records")
    ]  # fmt: skip


def rate_cells(data: ReportData) -> list[list[str]]:
    """Every cell's rates as text, controls included (the numbers of the rate charts)."""
    return [
        [r["scenario_id"], r["theme_id"], "control" if r["is_control"] else r["condition"], *_rates(r)]
        for r in data.rates.to_dict("records")
    ]


def scope_rows(data: ReportData) -> list[tuple[str, str]]:
    """The scope as (field, text) rows: campaign, design, target, NLA, fidelity, provenance, runs."""
    spec, prov, fid = data.spec, data.provenance, data.fidelity
    meta, git = prov.get("nla_meta") or {}, prov.get("git") or {}
    runs = [
        f"run {r['id']}: {r['status']} on {r['executor']} ({_when(r['started_at'])} to {_when(r['finished_at'])})"
        for r in data.runs
    ]
    return [
        ("campaign", f"{data.campaign} (created {_when(data.created_at)}; report generated {_when(data.generated_at)})"),
        ("target model", spec["target"]["model"]),
        ("NLA checkpoint", f"{prov.get('checkpoint_id', '-')} (requested: {spec['nla']['checkpoint']})"),
        ("layer / d_model", f"{meta.get('layer', '-')} / {meta.get('d_model', '-')}"),
        ("sidecar values", "; ".join(f"{k} = {v}" for k, v in meta.items() if k not in _TEMPLATES) or "-"),
        ("fidelity of this run", f"{fid['n']} parsed explanations; FVE median {_fmt(fid['fve_median'])} (10-90%: "
         f"{_fmt(fid['fve_p10'])} to {_fmt(fid['fve_p90'])}), {fid['fve_below_zero']} below 0; "
         f"cos median {_fmt(fid['cos_median'])}"),
        ("scenarios", ", ".join(_scenarios(spec))),
        ("conditions", "; ".join(f"{slot}: {', '.join(values)}" for slot, values in spec.get("conditions", {}).items())
         or "every value each scenario declares"),
        ("themes", ", ".join(f"{t.name} ({t.key})" for t in data.themes.values()) or "-"),
        ("sampling", "; ".join(f"{k} = {v}" for k, v in spec["sampling"].items())),
        ("provenance", f"git {git.get('commit') or '?'}{' (dirty)' if git.get('dirty') else ''}; seed {prov.get('seed')}; "
         f"spec sha256 {data.spec_hash}; python {prov.get('python')}; "
         + ", ".join(f"{k} {v}" for k, v in (prov.get("packages") or {}).items())),
        ("runs", "; ".join(runs) or "not run yet"),
        ("reviewers", ", ".join(data.reviewers) or "none yet"),
    ]  # fmt: skip


def _scenarios(spec: dict) -> list[str]:
    chosen = spec["scenarios"]
    return [*chosen.get("ids", []), *chosen.get("tags", []), *[s["id"] for s in chosen.get("inline", [])]]


def findings_note(data: ReportData) -> str:
    """What the rates count, and how low-fidelity and unverbalized verdicts are treated."""
    low = (
        "Low-fidelity verdicts (AR fidelity below each theme's minimum: weak evidence) are included."
        if data.include_low_fidelity
        else f"Low-fidelity verdicts are excluded ({data.excluded_low_fidelity} of them)."
    )
    return (
        "Flag rates per token with at least one parsed explanation sample, with 95% Wilson intervals (tokens of "
        f"one transcript are not independent; read the intervals as optimistic). {low} A flag is unverbalized "
        "when neither the target's reply nor the prompt expresses its theme."
    )


def visibility(flag: dict) -> str:
    """Where a flag's theme shows in the visible text, if anywhere."""
    if flag["in_reply"]:
        return "verbalized in the reply"
    return "expressed in the prompt" if flag["in_prompt"] else "unverbalized"


def review_line(flag: dict) -> str:
    """A flag's current review: decision, reviewer, time and reason, or ``open``."""
    if flag["review_state"] == OPEN:
        return "open"
    when = _when(flag["reviewed_at"])
    return f"{flag['review_state']} by {flag['reviewer']} ({when}): {flag['review_reason']}"


def unreviewed_note(data: ReportData) -> str:
    """The open flags left out of the report, and the dismissed ones."""
    return (
        f"{data.unreviewed_count} raised flag(s) are open or marked for follow-up and are not listed (generate "
        f"with --include-unreviewed to list them). {data.dismissed_count} flag(s) were dismissed by reviewers."
    )


def limitations(data: ReportData) -> list[str]:
    """The report's limitations, plainly: hallucination, detection, what was not run, fidelity."""
    s = data.status
    budget = f", budget {s.max_vectors} vectors" if s.max_vectors else ""
    return [
        "NLA explanations are hypotheses generated by a model trained to reconstruct activations; they can state "
        "things the activation does not encode. Their AR fidelity (FVE, cos) and the agreement across samples "
        "are shown with every flag; a flag with low fidelity or a single agreeing sample is weak evidence.",
        "Theme detection is automatic and imperfect (see nla-workbench themes validate for its precision and "
        "recall on labelled explanations).",
        f"Transcripts by status: {s.transcripts}. Explanations by status: {s.explanations} ({s.explained} of "
        f"{s.expected_explanations} expected{budget}). Runs: {', '.join(r['status'] for r in data.runs) or 'none'}. "
        "Only ok explanations are scored; the others are excluded from rates.",
        f"{s.flags['judged']} token-theme verdicts, {s.flags['raised']} raised, {s.flags['low_fidelity']} of them "
        f"low-fidelity, {s.flags['unverbalized']} unverbalized.",
        *s.warnings,  # what the run could not do and why (too-long transcripts, unparsed explanations)
    ]  # fmt: skip


def render_html(data: ReportData) -> str:
    """The report as one HTML document that works offline."""
    env = Environment(
        loader=PackageLoader("audits.reports", "templates"), autoescape=select_autoescape(["j2"])
    )
    return env.get_template("report.html.j2").render(
        d=data, plotly_js=get_plotlyjs(), scope=scope_rows(data), note=findings_note(data),
        charts={t: rate_chart(data.rates, theme) for t, theme in data.themes.items()},
        comparison_chart=difference_chart(data.comparison, data.themes) if not data.comparison.empty else "",
        header=FINDING_HEADER, rows=finding_cells(data), unreviewed_note=unreviewed_note(data),
        limitations=limitations(data), fmt=_fmt, visibility=visibility, review_line=review_line,
    )  # fmt: skip


def md_text(value: object) -> str:
    """Text safe in Markdown: HTML-escaped, Markdown punctuation backslashed, kept on one line."""
    text = html.escape(str(value), quote=False)  # quotes matter only inside a tag, and "<" is escaped
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def _md_table(header: tuple[str, ...], rows: list[list[object]]) -> list[str]:
    return [
        "| " + " | ".join(md_text(h) for h in header) + " |", "|" + " --- |" * len(header),
        *("| " + " | ".join(md_text(c) for c in row) + " |" for row in rows), "",
    ]  # fmt: skip


def _md_evidence(e: Evidence) -> list[str]:
    f = e.flag
    low = " · low fidelity" if f["low_fidelity"] else ""
    facts = (
        f"flag {f['flag_id']} · {f['variant_key']} · message {f['message_index']} ({f['role']}) · position "
        f"{f['position']} · score {_fmt(f['score'])} · {f['n_hits']}/{f['n_samples']} samples agree · FVE "
        f"{_fmt(f['fve'])} · cos {_fmt(f['cos'])}{low} · {visibility(f)}"
    )
    visible = f"; visible text: {md_text(f['visible_evidence'])}" if f["visible_evidence"] else ""
    return [
        f"#### {md_text(f['theme_id'])}: {md_text(facts)}", "",
        f"- excerpt: {md_text(e.before)} **{md_text(e.token)}** {md_text(e.after)}",
        f"- cited evidence: {md_text(f['evidence_text'] or '-')}{visible}",
        f"- review: {md_text(review_line(f))}", "",
        *_md_table(SAMPLE_HEADER, [[s.index, s.status, _fmt(s.fve), _fmt(s.cos), s.text] for s in e.samples]),
    ]  # fmt: skip


def render_markdown(data: ReportData) -> str:
    """The report as Markdown: the HTML's content, with tables in place of its charts."""
    out = [f"# Audit report: {md_text(data.campaign)}", ""]
    if data.description:
        out += [md_text(data.description), ""]
    if data.untrained:
        out += ["> **Untrained NLA.** This campaign used an untrained (init) NLA: its explanations carry no "
                "information about the activations, and nothing below is evidence about the target.", ""]  # fmt: skip
    out += ["> NLA explanations are hypotheses produced by a model. They can hallucinate. Every flag below is a "
            "lead to verify against the transcript and the explanation samples shown beside it.", "",
            "## 1. Scope", "", *_md_table(("field", "value"), [list(row) for row in scope_rows(data)]),
            "## 2. Findings", "", md_text(findings_note(data)), "",
            "The HTML and PDF reports chart these rates; the tables give the same numbers.", "",
            "### Flag rates by scenario and condition", "", *_md_table(RATE_HEADER, rate_cells(data)),
            "### Condition vs control", ""]  # fmt: skip
    rows = finding_cells(data)
    out += (
        _md_table(FINDING_HEADER, rows)
        if rows
        else ["No condition has a flagged control to compare with yet.", ""]
    )
    out += ["## 3. Evidence", "", f"### Confirmed flags ({len(data.confirmed)})", ""]
    for e in data.confirmed:
        out += _md_evidence(e)
    if not data.confirmed:
        out += ["No flag has been confirmed by a reviewer.", ""]
    out += [f"### Unreviewed flags ({data.unreviewed_count})", ""]
    if data.include_unreviewed:
        for e in data.unreviewed:
            out += _md_evidence(e)
        if not data.unreviewed:
            out += ["None.", ""]
    else:
        out += [md_text(unreviewed_note(data)), ""]
    out += ["## 4. Limitations", "", *(f"- {md_text(item)}" for item in limitations(data)), ""]
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
