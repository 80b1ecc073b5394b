"""Render a report as self-contained HTML (plotly inlined, no external URL), Markdown, or PDF
(headless Chromium printing the HTML). All model and scenario text is escaped: Jinja2 autoescapes the
HTML, and Markdown text is escaped for inline HTML and for exactly the Markdown syntax it could trigger
(no stray backslashes before ordinary punctuation). Every value is written as text a person reads: no
Python repr (``{'ok': 3}``, ``None``, ``nan``) reaches a report."""

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

from audits.discovery import Discovery
from audits.errors import SpecError
from audits.read_model.explanations import Fidelity
from audits.read_model.flags import cell_label, cell_reading, detectable_rate, no_flag_explanation
from audits.read_model.leads import CHANNEL_LABELS, Leads
from audits.read_model.transcripts import Evidence
from audits.reports.charts import difference_chart, rate_chart
from audits.reports.gather import ReportData
from audits.review import OPEN

CHROMIUM_ENV = "NLA_WORKBENCH_CHROMIUM"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-pdf-header-footer", "--virtual-time-budget=15000",
)  # fmt: skip
_MD_INLINE = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
"""Characters that start inline Markdown anywhere: escapes, code, emphasis (``_`` only at a word's edge:
inside a word it cannot emphasise), links and images (``![`` needs its ``[``), table cells,
strikethrough. ``<`` and ``&`` are HTML-escaped instead."""


FINDING_HEADER = (
    "scenario", "theme", "condition", "rate [95% CI]", "verbalized [95% CI]", "unverbalized [95% CI]",
    "control [95% CI]", "difference [95% CI]", "unverbalized difference [95% CI]",
)  # fmt: skip
RATE_HEADER = (*FINDING_HEADER[:6], "what it shows")
DISCOVERY_HEADER = ("term", "z", "explanations (arm)", "explanations (control)", "transcripts", "in visible text",
                    "in logit lens", "z in visible replies", "z in logit lens", "review")  # fmt: skip
SAMPLE_HEADER = ("sample", "status", "FVE", "cos", "explanation", "lens agrees")
_TEMPLATES = ("av_template", "ar_template")
"""Sidecar prompt templates, too long for the scope table."""


def _missing(value: object) -> bool:
    return (
        value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT
    )


def text(value: object, missing: str = "") -> str:
    """A stored value as text a person reads: ``missing`` for None / NaN, lists joined with commas,
    mappings as ``key value`` pairs, booleans as yes / no, floats without float noise."""
    if _missing(value):
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return "; ".join(f"{k} {text(v, '-')}" for k, v in value.items()) or missing
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v, "-") for v in value) or missing
    return str(value)


def counts(by_status: dict[str, int]) -> str:
    """``{'ok': 159, 'unclosed': 1}`` as ``159 ok, 1 unclosed`` (``none`` when empty)."""
    return (
        ", ".join(f"{n} {status}" for status, n in sorted(by_status.items(), key=lambda kv: -kv[1])) or "none"
    )


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
    """The findings table as text, one row per condition (columns of :data:`FINDING_HEADER`); the control
    cell names which control it is."""
    return [
        [r["scenario_id"], r["theme_id"], r["condition"], *_rates(r),
         _interval(r["control_rate"], r["control_low"], r["control_high"], r["control_k"], r["control_n"])
         + f" · {cell_label(r['control_condition'], True)}",
         _difference(r["diff"], r["diff_low"], r["diff_high"]),
         _difference(r["diff_unverbalized"], r["diff_unverbalized_low"], r["diff_unverbalized_high"])]
        for r in finding_rows(data).to_dict("records")
    ]  # fmt: skip


def rate_cells(data: ReportData) -> list[list[str]]:
    """Every cell's rates as text, controls included and named by their condition (the numbers of the
    rate charts), with what each cell can and cannot say in words."""
    return [
        [
            r["scenario_id"],
            r["theme_id"],
            cell_label(r["condition"], bool(r["is_control"])),
            *_rates(r),
            cell_reading(int(r["k"]), int(r["n"]), r["low"], r["high"]),
        ]
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
        ("NLA checkpoint", f"{text(prov.get('checkpoint_id'), '-')} (requested: {spec['nla']['checkpoint']})"),
        ("layer / d_model", f"{text(meta.get('layer'), '-')} / {text(meta.get('d_model'), '-')}"),
        ("sidecar values", "; ".join(f"{k} = {text(v, '-')}" for k, v in meta.items() if k not in _TEMPLATES) or "-"),
        ("fidelity", fidelity_line(fid)),
        ("scenarios", ", ".join(_scenarios(spec))),
        ("conditions", "; ".join(f"{slot}: {', '.join(values)}" for slot, values in spec.get("conditions", {}).items())
         or "every value each scenario declares"),
        ("themes", ", ".join(f"{t.name} ({t.key})" for t in data.themes.values()) or "-"),
        ("sampling", "; ".join(f"{k} = {text(v, '-')}" for k, v in spec["sampling"].items())),
        ("provenance", f"git {git.get('commit') or 'unknown'}{' (dirty)' if git.get('dirty') else ''}; seed "
         f"{text(prov.get('seed'), '-')}; spec sha256 {data.spec_hash}; python {text(prov.get('python'), '-')}; "
         + ", ".join(f"{k} {text(v, 'not installed')}" for k, v in (prov.get("packages") or {}).items())),
        ("runs", "; ".join(runs) or "not run yet"),
        ("reviewers", ", ".join(data.reviewers) or "none yet"),
    ]  # fmt: skip


def _scenarios(spec: dict) -> list[str]:
    chosen = spec["scenarios"]
    return [*chosen.get("ids", []), *chosen.get("tags", []), *[s["id"] for s in chosen.get("inline", [])]]


def fidelity_line(fid: Fidelity) -> str:
    """The campaign's explanations by status and their FVE / cos, in words."""
    parsed = f"{fid.parsed} of {fid.explanations} explanations parsed ({counts(fid.by_status)})"
    if not fid.fve_known:
        return f"{parsed}; no FVE (the NLA has no stored baseline, or nothing parsed)"
    return (
        f"{parsed}; FVE median {_fmt(fid.fve['median'])} (10-90%: {_fmt(fid.fve['p10'])} to "
        f"{_fmt(fid.fve['p90'])}), {fid.fve_below_zero} of {fid.fve_known} below 0; cos median "
        f"{_fmt(fid.cos['median'])}"
    )


def summary(data: ReportData) -> str:
    """The result in one paragraph: what was raised and reviewed, or that nothing was and what that means."""
    v = data.verdicts
    if v.raised == 0:
        return " ".join([no_flag_explanation(v), *_discovery_sentences(data)])
    confirmed = data.review_counts and len(data.confirmed)
    return " ".join([
        f"{v.raised} flag(s) raised by {v.judged} token-theme verdicts on {v.tokens} tokens; {v.raised_low_fidelity} "
        f"of the raised are low-fidelity and {v.raised_unverbalized} unverbalized. Reviewers confirmed "
        f"{confirmed or 0}, dismissed {data.dismissed_count}; {data.unreviewed_count} await a decision.",
        *_discovery_sentences(data),
    ])  # fmt: skip


def _discovery_sentences(data: ReportData) -> list[str]:
    """One sentence per discovery comparison: the terms reviewers confirmed, or how many await review."""
    out = []
    for lead in data.leads:
        d, t = lead.discovery, lead.table
        if t.empty:
            continue
        confirmed = list(t[t["review_state"] == "confirm"]["term"])
        head = f"Discovery (arm {d.arm} against arm {d.against}) lists {len(t)} terms found without a theme"
        if confirmed:
            shown = ", ".join(f"“{x}”" for x in confirmed[:5]) + (" and more" if len(confirmed) > 5 else "")
            out.append(f"{head}; reviewers confirmed {len(confirmed)}: {shown}.")
        else:
            out.append(f"{head}; none confirmed by a reviewer ({lead.counts().get('open', 0)} open).")
    return out


def small_cells_note(data: ReportData) -> str:
    """How much cells of this size can detect, in words; empty when every cell holds 30 tokens or more."""
    v = data.verdicts
    if v.smallest_cell is None or v.smallest_cell >= 30:
        return ""
    sizes = f"{v.smallest_cell}" + (f" to {v.largest_cell}" if v.largest_cell != v.smallest_cell else "")
    return (
        f"Small cells: each scenario, theme and condition holds {sizes} tokens. With none of n tokens flagged "
        f"the 95% interval still reaches {detectable_rate(v.smallest_cell):.0%} at n = {v.smallest_cell}"
        + (f" and {detectable_rate(v.largest_cell):.0%} at n = {v.largest_cell}" if v.largest_cell != v.smallest_cell else "")
        + ", so a theme on fewer tokens than that can go unseen, and only large differences between a condition "
        "and its control can show. The last column of the rate table says what each cell can rule out."
    )  # fmt: skip


def empty_rates_note(data: ReportData) -> str:
    """Why the rate table has no row."""
    v = data.verdicts
    if v.judged and not data.include_low_fidelity and v.low_fidelity == v.judged:
        return (f"No verdicts to rate: all {v.judged} verdicts are low-fidelity and excluded (generate with "
                "--include-low-fidelity to count them).")  # fmt: skip
    return "No verdicts to rate yet."


def findings_note(data: ReportData) -> str:
    """What the rates count, and how low-fidelity and unverbalized verdicts are treated."""
    v = data.verdicts
    low = (
        f"Low-fidelity verdicts ({v.low_fidelity} of the {v.judged} token-theme verdicts, raised or not, cite an "
        "explanation whose FVE is below the theme's minimum: weak evidence) are included."
        if data.include_low_fidelity
        else f"Low-fidelity verdicts are excluded: {data.excluded_low_fidelity} of the {v.judged} token-theme "
        "verdicts (raised or not) cite an explanation whose FVE is below the theme's minimum."
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
    return f"{flag['review_state']} by {text(flag['reviewer'], '-')} ({when}): {text(flag['review_reason'], '-')}"


def unreviewed_note(data: ReportData) -> str:
    """The open flags left out of the report, and the dismissed ones."""
    return (
        f"{data.unreviewed_count} raised flag(s) are open or marked for follow-up and are not listed (generate "
        f"with --include-unreviewed to list them). {data.dismissed_count} flag(s) were dismissed by reviewers."
    )


def limitations(data: ReportData) -> list[str]:
    """The report's limitations, plainly: hallucination, detection, what was not run, fidelity."""
    s, v = data.status, data.verdicts
    budget = f", budget {s.max_vectors} vectors" if s.max_vectors else ""
    return [
        "NLA explanations are hypotheses generated by a model trained to reconstruct activations; they can state "
        "things the activation does not encode. Their AR fidelity (FVE, cos) and the agreement across samples "
        "are shown with every flag; a flag with low fidelity or a single agreeing sample is weak evidence.",
        "Theme detection is automatic and imperfect (see nla-workbench themes validate for its precision and "
        "recall on labelled explanations).",
        f"Transcripts by status: {counts(s.transcripts)}. Explanations by status: {counts(s.explanations)} "
        f"({s.explained} of {s.expected_explanations} expected{budget}). Runs: "
        f"{', '.join(r['status'] for r in data.runs) or 'none'}. Only ok explanations are scored; the others are "
        "excluded from rates.",
        f"The flag rule made {v.judged} token-theme verdicts on {v.tokens} tokens; {v.raised} raised a flag. Of "
        f"those raised flags, {v.raised_low_fidelity} are low-fidelity and {v.raised_unverbalized} unverbalized "
        f"(across all verdicts, raised or not, {v.low_fidelity} are low-fidelity).",
        *s.warnings,  # what the run could not do and why (too-long transcripts, unparsed explanations)
    ]  # fmt: skip


def discovery_intro(d: Discovery) -> str:
    """What one discovery table compares, in words, with its sizes and what was left out."""
    low = sum(d.low_fidelity_excluded.values())
    return (
        f"Terms of the explanations of arm {d.arm} ({d.n_docs} explanations, {d.n_transcripts} transcripts) "
        f"over-represented against arm {d.against} ({d.n_docs_other} explanations, {d.n_transcripts_other} "
        "transcripts): weighted log-odds with an informative Dirichlet prior, z-scored (Monroe, Colaresi & Quinn "
        "2008), terms carried by at least two transcripts, the control's fixed phrasing left out"
        + (f", {low} low-fidelity explanations left out" if low else "")
        + ". A term is a lead found without a theme, not a finding: check it against the visible text and the "
        "logit lens (how many carrying transcripts show it in their text; how many carrying tokens show it in "
        "their lens) and read the explanations that carry it (campaign discover, or the Discover page)."
    )


def _z(value: object) -> str:
    return "-" if value is None or value != value else f"{value:.2f}"


def discovery_cells(lead: Leads) -> list[list[object]]:
    """One row per listed term: the numbers ``campaign discover`` prints, the same term's z in the visible
    replies and the logit lens (same arms; "-": not over-represented there), and its review state."""
    d = lead.discovery
    return [
        [r["term"], f"{r['z']:.2f}", f"{r['count']} of {d.n_docs}", f"{r['count_other']} of {d.n_docs_other}",
         r["transcripts"], r["visible"], r["lens"], _z(r.get("z_replies")), _z(r.get("z_logit-lens")),
         _review_state(r)]
        for r in lead.table.to_dict("records")
    ]  # fmt: skip


def _review_state(row: dict) -> str:
    if row["review_state"] == "open":
        return "open"
    return f"{row['review_state']} ({row['reviewer']}: {row['review_reason']})"


def discovery_summary(lead: Leads) -> str:
    """What discovery found and by which channel, in words: the strongest terms of the NLA's explanations,
    which of the listed terms the logit lens and the visible replies carry too, and what reviewers decided."""
    d, t = lead.discovery, lead.table
    if t.empty:
        return f"Discovery listed nothing for arm {d.arm} against arm {d.against}: {d.empty_reason}."
    top = ", ".join(f"“{r['term']}” (z {r['z']:.2f})" for r in t.head(3).to_dict("records"))
    in_lens = [r["term"] for r in t.to_dict("records") if "logit-lens" in lead.supported_by(r["term"])]
    in_replies = [r["term"] for r in t.to_dict("records") if "replies" in lead.supported_by(r["term"])]
    only = [r["term"] for r in t.to_dict("records") if not lead.supported_by(r["term"])]

    def terms(found: list[str]) -> str:
        return ", ".join(f"“{x}”" for x in found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")

    decided = lead.counts()
    by_state = "; ".join(
        f"{state.replace('_', ' ')}: {terms(list(t[t['review_state'] == state]['term']))}"
        for state in ("confirm", "follow_up", "dismiss") if decided.get(state)
    )  # fmt: skip
    return (
        f"The {CHANNEL_LABELS[d.source]} of arm {d.arm} against arm {d.against}: {len(t)} terms listed, the strongest "
        f"{top}. Of these, {len(in_lens)} are over-represented in the logit lens too"
        + (f" ({terms(in_lens)}: a second, independent reading of the same activations)" if in_lens else "")
        + f", {len(in_replies)} in the visible replies"
        + (f" ({terms(in_replies)}: the text says them, so they are read rather than discovered)" if in_replies else "")
        + f", and {len(only)} in the explanations only"
        + (f" ({terms(only)}: what the NLA adds, or confabulates)" if only else "")
        + ". Reviewers' decisions: "
        + (by_state + f"; {decided.get('open', 0)} still open." if by_state else f"none yet ({len(t)} open).")
    )  # fmt: skip


def render_html(data: ReportData) -> str:
    """The report as one HTML document that works offline."""
    env = Environment(
        loader=PackageLoader("audits.reports", "templates"), autoescape=select_autoescape(["j2"])
    )
    return env.get_template("report.html.j2").render(
        d=data, plotly_js=get_plotlyjs(), scope=scope_rows(data), note=findings_note(data), summary=summary(data),
        small_cells=small_cells_note(data), charts={t: rate_chart(data.rates, theme) for t, theme in data.themes.items()},
        comparison_chart=difference_chart(data.comparison, data.themes) if not data.comparison.empty else "",
        header=FINDING_HEADER, rows=finding_cells(data), rate_header=RATE_HEADER, rate_rows=rate_cells(data),
        unreviewed_note=unreviewed_note(data), limitations=limitations(data), fmt=_fmt, text=text,
        empty_rates=empty_rates_note(data),
        visibility=visibility, review_line=review_line, discovery_intro=discovery_intro,
        discovery_header=DISCOVERY_HEADER, discovery_cells=discovery_cells, discovery_summary=discovery_summary,
    )  # fmt: skip


def md_text(value: object, *, line_start: bool = True) -> str:
    """Text safe in Markdown, on one line: HTML-escaped (no tag or entity is live), inline Markdown
    characters backslashed, and, where the text may begin a line (``line_start``), the block syntax it
    starts with neutralised; every other character is left as it is."""
    flat = re.sub(r"\s+", " ", str(value))
    escaped = _MD_INLINE.sub(r"\\\1", html.escape(flat.lstrip() if line_start else flat, quote=False))
    if not line_start:
        return escaped
    number = re.match(r"\d+([.)])", escaped)
    if number:
        return f"{escaped[: number.end() - 1]}\\{escaped[number.end() - 1 :]}"
    return "\\" + escaped if escaped[:1] in ("#", "+", "-", "=") else escaped


def md_strong(value: object) -> str:
    """``value`` in bold, its surrounding whitespace kept outside the ``**`` (a space just inside them
    would leave the asterisks literal); whitespace only stays as it is."""
    raw = str(value)
    core = raw.strip()
    if not core:
        return " " if raw else ""
    lead, tail = raw[:1].isspace(), raw[-1:].isspace()
    return f"{' ' if lead else ''}**{md_text(core, line_start=False)}**{' ' if tail else ''}"


def _md_table(header: tuple[str, ...], rows: list[list[object]]) -> list[str]:
    cell = lambda value: md_text(value, line_start=False)  # noqa: E731 (a table cell never starts a line)
    return [
        "| " + " | ".join(cell(h) for h in header) + " |", "|" + " --- |" * len(header),
        *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows), "",
    ]  # fmt: skip


def _md_evidence(e: Evidence) -> list[str]:
    f = e.flag
    low = " · low fidelity" if f["low_fidelity"] else ""
    facts = (
        f"flag {f['flag_id']} · {f['variant_key']} · message {f['message_index']} ({f['role']}) · position "
        f"{f['position']} · score {_fmt(f['score'])} · {f['n_hits']}/{f['n_samples']} samples agree · FVE "
        f"{_fmt(f['fve'])} · cos {_fmt(f['cos'])}{low} · {visibility(f)}"
    )
    seen = text(f["visible_evidence"])
    visible = f"; visible text: {md_text(seen, line_start=False)}" if seen else ""
    excerpt = f"{md_text(e.before, line_start=False)}{md_strong(e.token)}{md_text(e.after, line_start=False)}"
    return [
        f"#### {md_text(f['theme_id'], line_start=False)}: {md_text(facts, line_start=False)}", "",
        f"- excerpt: …{excerpt}…",
        f"- cited evidence: {md_text(text(f['evidence_text'], '-'), line_start=False)}{visible}",
        *(f"- logit lens, layer {r.layer}: {md_text(r.label(), line_start=False)}" for r in e.lens),
        *([] if e.lens else ["- logit lens: not stored for this token"]),
        f"- review: {md_text(review_line(f), line_start=False)}", "",
        *_md_table(SAMPLE_HEADER, [[s.index, s.status, _fmt(s.fve), _fmt(s.cos), s.text,
                                    ", ".join(e.lens_agrees(s)) or "-"] for s in e.samples]),
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
            "## 2. Findings", "", f"**Summary.** {md_text(summary(data), line_start=False)}", "",
            *([md_text(small_cells_note(data)), ""] if small_cells_note(data) else []),
            md_text(findings_note(data)), "",
            "The HTML and PDF reports chart these rates; the tables give the same numbers.", "",
            "### Flag rates by scenario and condition", "",
            *(_md_table(RATE_HEADER, rate_cells(data)) if len(data.rates) else [md_text(empty_rates_note(data)), ""]),
            "### Condition vs control", ""]  # fmt: skip
    rows = finding_cells(data)
    out += (
        _md_table(FINDING_HEADER, rows)
        if rows
        else ["No condition has a flagged control to compare with yet.", ""]
    )
    for lead in data.leads:
        d = lead.discovery
        out += [f"### Discovery: arm {md_text(d.arm, line_start=False)} against {md_text(d.against, line_start=False)}",
                "", md_text(discovery_summary(lead)), "", md_text(discovery_intro(d)), ""]  # fmt: skip
        cells = discovery_cells(lead)
        out += (
            _md_table(DISCOVERY_HEADER, cells)
            if cells
            else [md_text(f"Nothing listed: {d.empty_reason}."), ""]
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
            out += ["No flag awaits a decision.", ""]
    else:
        out += [md_text(unreviewed_note(data)), ""]
    out += [
        "## 4. Limitations",
        "",
        *(f"- {md_text(item, line_start=False)}" for item in limitations(data)),
        "",
    ]
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
