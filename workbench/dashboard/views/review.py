"""Review: a queue of open flags, strongest first, or of open discovered terms (what one arm's explanations
say that the control arm's do not, found without a theme). Each shows its evidence (transcript excerpt,
every explanation sample with its fidelity, the visible-text check; for a term, its counts, the other
channels and the explanations that carry it); the reviewer confirms, dismisses or asks for follow-up with
a reason. Decisions are appended, never edited; the history lists them all. A campaign that raised no flag
opens on its discovered terms. Keyboard: Alt+1 confirm, Alt+2 dismiss, Alt+3 follow up, Alt+S skip (after
typing the reason)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pandas as pd
import streamlit as st

from audits.errors import SpecError
from audits.read_model.flags import cell_label
from audits.read_model.leads import CHANNEL_LABELS, Leads
from audits.read_model.transcripts import evidence
from audits.review import add_review, add_term_review, review_history, term_review_history
from workbench.dashboard import cached
from workbench.dashboard.decisions import decision_form
from workbench.dashboard.filters import open_queue
from workbench.dashboard.state import (
    fve_badge,
    hypothesis_note,
    no_flags_notice,
    pick_campaign,
    store,
    theme_name,
    themes,
)
from workbench.dashboard.text import highlighted, md_escape

QUEUES = {"flags": "Theme flags", "terms": "Discovered terms"}
TERMS_SHOWN = 20  # discovered terms offered for review: the strongest of the default comparison

st.title("Review")
s = store()
campaign = pick_campaign(s)
if "flash" in st.session_state:
    st.success(st.session_state.pop("flash"), icon=":material/check_circle:")

raised_all = cached.raised_flags(s, campaign)


def _terms() -> Leads | None:
    """The default comparison's discovered terms (explanations, first arm against the control), or None
    when the campaign has nothing to compare yet."""
    try:
        return cached.leads(s, campaign, top=TERMS_SHOWN, include_low_fidelity=low_terms)
    except SpecError:
        return None


with st.sidebar:
    default_queue = "terms" if raised_all.empty else "flags"
    which = st.radio("Queue", list(QUEUES), index=list(QUEUES).index(default_queue), format_func=QUEUES.get,
                     key="queue", bind="query-params",
                     help="Theme flags: tokens a theme's detectors flagged. Discovered terms: what one arm's "
                          "explanations say that the control arm's do not (the Discover page).")  # fmt: skip
    reviewer = st.text_input("Reviewer name", key="reviewer", persist_state="session")
    follow_ups = st.toggle(
        f"Include {'terms' if which == 'terms' else 'flags'} marked for follow-up", False, key="follow_ups",
        bind="query-params",
    )  # fmt: skip
    if which == "terms":
        theme_filter, hide_low = [], False
        low_terms = st.toggle(
            "Include low-fidelity explanations (FVE < 0) in discovery", False, key="low", bind="query-params"
        )
    else:
        theme_filter = st.multiselect(
            "Theme", sorted(themes()), key="theme", bind="query-params", format_func=theme_name
        )
        hide_low = st.toggle("Hide low-fidelity flags", False, key="hide_low", bind="query-params")
        low_terms = False

queue = open_queue(raised_all, include_follow_up=follow_ups)
if theme_filter:
    queue = queue[queue["theme_id"].isin(theme_filter)]
if hide_low:
    queue = queue[~queue["low_fidelity"]]
skipped = st.session_state.setdefault("skipped", [])
queue = queue.assign(skipped=queue["flag_id"].isin(skipped)).sort_values("skipped", kind="stable")


def _empty_queue() -> None:
    """Why the queue is empty, plainly: nothing raised (and what that means), everything decided, or
    everything filtered out."""
    raised = cached.raised_flags(s, campaign)
    if raised.empty:
        no_flags_notice(cached.verdict_summary(s, campaign))
        st.caption("Discovered terms can still be reviewed: choose **Discovered terms** as the queue.")
    elif (raised["review_state"] == "open").any() or (follow_ups and (raised["review_state"] == "follow_up").any()):
        st.info(f"No open flag matches the sidebar filters ({len(raised)} raised in all): widen them.")
    else:
        st.success(f"Every one of the {len(raised)} raised flags has a decision. See them below, or export the "
                   "report.")  # fmt: skip


def current_flag() -> None:
    if queue.empty:
        _empty_queue()
        return
    st.caption(f"{len(queue)} flag(s) in the queue")
    hypothesis_note()
    shown = evidence(s, queue.head(1))[0]
    f = shown.flag
    theme = themes().get(f["theme_id"])
    st.subheader(f"{theme_name(f['theme_id'])} · flag {f['flag_id']}", anchor=False)
    seen = "in the reply" if f["in_reply"] else "in the prompt" if f["in_prompt"] else None
    fve = "-" if f["fve"] is None or math.isnan(f["fve"]) else f"{f['fve']:.2f}"
    st.markdown(
        f"Scenario **{md_escape(f['scenario_id'])}** · {md_escape(cell_label(f['condition'], bool(f['is_control'])))}"
        f" · position {f['position']} · score {f['score']:.2f} · "
        f"{f['n_hits']}/{f['n_samples']} samples agree · cited FVE {fve}"
        + (" · **low fidelity**" if f["low_fidelity"] else "")
    )
    if theme is not None:
        st.caption(md_escape(theme.description))
    with st.container(border=True):
        excerpt = shown.before + shown.token + shown.after
        st.markdown(f"…{highlighted(excerpt, len(shown.before), len(shown.before) + len(shown.token))}…")
    if seen:
        st.markdown(f"Also visible {seen}: “{md_escape(f['visible_evidence'] or '')}”")
    else:
        st.markdown("**Unverbalized**: the target's visible text does not express this theme.")
    for sample in shown.samples:
        with st.container(border=True):
            sample_fve = "-" if sample.fve is None or math.isnan(sample.fve) else f"{sample.fve:.2f}"
            score = "" if sample.score is None else f" · {theme_name(f['theme_id'])} score {sample.score:.2f}"
            st.caption(f"sample {sample.index} · {sample.status} · FVE {sample_fve}{score}")
            badge = fve_badge(sample.fve, theme.flag.min_fve if theme else None) if sample.status == "ok" else ""
            if badge:
                st.markdown(badge)
            start, end = sample.evidence or (None, None)
            st.markdown(highlighted(sample.text, start, end))
    st.page_link(
        "views/transcript.py", label="Open in Transcript", icon=":material/forum:",
        query_params={"campaign": campaign, "transcript": str(f["transcript_id"]), "pos": str(f["position"]),
                      "colour": f"flag:{f['theme_id']}"},
    )  # fmt: skip
    decide(int(f["flag_id"]))


def decide(flag_id: int) -> None:
    record(
        "decision", f"reason_{flag_id}", "decide", "skip", lambda: skipped.append(flag_id), f"flag {flag_id}",
        lambda decision, reason: add_review(s, flag_id, author=reviewer or "", decision=decision, reason=reason),
    )  # fmt: skip


def record(form: str, reason_key: str, buttons: str, skip_key: str, skip: Callable[[], None], what: str,
           append: Callable[[str, str], object]) -> None:  # fmt: skip
    """The decision form and a Skip button; a pressed decision is appended by ``append(decision, reason)``
    (bad input is shown, nothing written) and the page moves on to the next item."""
    decided = decision_form(form, reason_key=reason_key, buttons=buttons)
    if st.button("Skip", key=skip_key, shortcut="Alt+S"):
        skip()
        st.rerun()
    if decided is None:
        return
    decision, reason = decided
    try:
        append(decision, reason)
    except SpecError as error:
        st.error(md_escape(str(error)), icon=":material/error:")
        return
    st.session_state["flash"] = f"Recorded **{decision}** on {what}."
    st.rerun()


def history() -> None:
    st.subheader("Decisions (append-only)", anchor=False)
    rows = review_history(s, campaign)
    if rows.empty:
        st.caption("No decisions yet.")
        return
    rows = rows.sort_values("created_at", ascending=False)
    st.dataframe(rows.assign(theme=rows["theme_id"].map(theme_name)), hide_index=True, key="history",
                 column_order=["created_at", "flag_id", "theme", "decision", "author", "reason", "variant_key", "position"],
                 column_config={"created_at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss"),
                                "flag_id": "flag", "variant_key": "variant", "position": "token position"})  # fmt: skip


def current_term() -> None:
    if raised_all.empty:
        no_flags_notice(cached.verdict_summary(s, campaign))
    found = _terms()
    if found is None or found.discovery.empty_reason:
        why = "the campaign has no two arms with documents to compare yet" if found is None else found.discovery.empty_reason
        st.info(f"No discovered term to review: {md_escape(why)}.", icon=":material/info:")
        return
    d = found.discovery
    skipped_terms = st.session_state.setdefault("skipped_terms", [])
    terms = found.open_terms(include_follow_up=follow_ups)
    terms = terms.assign(skipped=terms["term"].isin(skipped_terms)).sort_values("skipped", kind="stable")
    if raised_all.empty:
        st.caption("With no theme flag to review, the queue holds the terms discovery found without a theme.")
    if terms.empty:
        st.success(f"Every one of the {len(found.table)} listed terms has a decision. See them below, or export "
                   "the report.")  # fmt: skip
        return
    st.caption(f"{len(terms)} term(s) in the queue: {md_escape(CHANNEL_LABELS[d.source])} of arm "
               f"{md_escape(d.arm)} against arm {md_escape(d.against)}, strongest first")  # fmt: skip
    hypothesis_note()
    row = terms.iloc[0]
    term = str(row["term"])
    st.subheader(f"Discovered term · “{md_escape(term)}”", anchor=False)
    support = [
        f"{CHANNEL_LABELS[o]}: " + (f"z {row[f'z_{o}']:.2f}" if pd.notna(row[f"z_{o}"]) else "not over-represented")
        for o in found.other_sources
    ]
    st.markdown(
        f"z **{row['z']:.2f}** · in {row['count']} of {d.n_docs} {md_escape(d.arm)} explanations against "
        f"{row['count_other']} of {d.n_docs_other} {md_escape(d.against)} explanations · {row['transcripts']} "
        f"transcripts, the visible text shows it in {row['visible']} · the logit lens shows it at {row['lens']} "
        f"carrying tokens"
    )
    st.caption("Same term, same arms, in the other channels: " + md_escape("; ".join(support)) + ". A term the "
               "replies carry too is read from the text; one only the explanations carry is what the NLA adds.")  # fmt: skip
    carriers = d.evidence[d.evidence["term"] == term].sort_values("fve", ascending=False, na_position="last")
    for _, c in carriers.head(3).iterrows():
        with st.container(border=True):
            c_fve = "-" if pd.isna(c["fve"]) else f"{c['fve']:.2f}"
            st.caption(f"transcript {int(c['transcript_id'])} · position {c['position']} · {c['group']} · FVE {c_fve}")
            hit = re.search(r"\b" + r"\W+".join(map(re.escape, term.split())) + r"\b", str(c["text"]), re.IGNORECASE)
            st.markdown(highlighted(str(c["text"]), *(hit.span() if hit else (None, None))))
    if len(carriers) > 3:
        st.caption(f"{len(carriers) - 3} more carrying explanations on the Discover page.")
    st.page_link(
        "views/discover.py", label="Open on Discover", icon=":material/travel_explore:",
        query_params={"campaign": campaign, "arm": d.arm, "against": d.against, "source": d.source, "term": term},
    )  # fmt: skip
    record(
        "term_decision", f"reason_term_{term}", "term_decide", "skip_term", lambda: skipped_terms.append(term),
        f"term “{md_escape(term)}”",
        lambda decision, reason: add_term_review(s, campaign, term, source=d.source, arm=d.arm, against=d.against,
                                                 author=reviewer or "", decision=decision, reason=reason),
    )  # fmt: skip


def term_history() -> None:
    rows = term_review_history(s, campaign)
    if rows.empty:
        return
    st.subheader("Decisions on discovered terms (append-only)", anchor=False)
    st.dataframe(rows.sort_values("created_at", ascending=False), hide_index=True, key="term_history",
                 column_order=["created_at", "term", "decision", "author", "reason", "source", "arm", "against"],
                 column_config={"created_at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss")})  # fmt: skip


if which == "terms":
    current_term()
else:
    current_flag()
history()
term_history()
