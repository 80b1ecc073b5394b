"""Review: a queue of open flags, strongest first. Each shows its evidence (transcript excerpt, every
explanation sample with its fidelity, the visible-text check); the reviewer confirms, dismisses or
asks for follow-up with a reason. Decisions are appended, never edited; the history lists them all.
Keyboard: Alt+1 confirm, Alt+2 dismiss, Alt+3 follow up, Alt+S skip (after typing the reason)."""

from __future__ import annotations

import math

import streamlit as st

from audits.errors import SpecError
from audits.read_model.flags import cell_label
from audits.read_model.transcripts import evidence
from audits.review import add_review, review_history
from workbench.dashboard import cached
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

DECISIONS = {
    "confirm": ("Confirm", "Alt+1"),
    "dismiss": ("Dismiss", "Alt+2"),
    "follow_up": ("Follow up", "Alt+3"),
}

st.title("Review")
s = store()
campaign = pick_campaign(s)
if "flash" in st.session_state:
    st.success(st.session_state.pop("flash"), icon=":material/check_circle:")

with st.sidebar:
    reviewer = st.text_input("Reviewer name", key="reviewer", persist_state="session")
    follow_ups = st.toggle("Include flags marked for follow-up", False, key="follow_ups", bind="query-params")
    theme_filter = st.multiselect(
        "Theme", sorted(themes()), key="theme", bind="query-params", format_func=theme_name
    )
    hide_low = st.toggle("Hide low-fidelity flags", False, key="hide_low", bind="query-params")

queue = open_queue(cached.raised_flags(s, campaign), include_follow_up=follow_ups)
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
    with st.form("decision"):
        reason = st.text_area("Reason (required)", key=f"reason_{flag_id}", height=80)
        columns = st.columns(len(DECISIONS))
        pressed = [
            column.form_submit_button(label, key=f"decide_{decision}", shortcut=keys,
                                      type="primary" if decision == "confirm" else "secondary")
            for column, (decision, (label, keys)) in zip(columns, DECISIONS.items(), strict=True)
        ]  # fmt: skip
    if st.button("Skip", key="skip", shortcut="Alt+S"):
        skipped.append(flag_id)
        st.rerun()
    if not any(pressed):
        return
    decision = list(DECISIONS)[pressed.index(True)]
    try:
        add_review(s, flag_id, author=reviewer or "", decision=decision, reason=reason or "")
    except SpecError as error:
        st.error(md_escape(str(error)), icon=":material/error:")
        return
    st.session_state["flash"] = f"Recorded **{decision}** on flag {flag_id}."
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


current_flag()
history()
