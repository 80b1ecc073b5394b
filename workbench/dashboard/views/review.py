"""Review: a queue of open flags, strongest first. Each shows its evidence (transcript excerpt, every
explanation sample with its fidelity, the visible-text check); the reviewer confirms, dismisses or
asks for follow-up with a reason. Decisions are appended, never edited; the history lists them all.
Keyboard: Alt+1 confirm, Alt+2 dismiss, Alt+3 follow up, Alt+S skip (after typing the reason)."""

from __future__ import annotations

import math

import streamlit as st

from audits.errors import SpecError
from audits.reports.gather import evidence
from audits.review import add_review, review_history
from workbench.dashboard import cached, queries
from workbench.dashboard.state import hypothesis_note, pick_campaign, store, theme_name, themes
from workbench.dashboard.text import md_escape

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

queue = queries.open_queue(cached.raised_flags(s, campaign), include_follow_up=follow_ups)
if theme_filter:
    queue = queue[queue["theme_id"].isin(theme_filter)]
if hide_low:
    queue = queue[~queue["low_fidelity"]]
skipped = st.session_state.setdefault("skipped", [])
queue = queue.assign(skipped=queue["flag_id"].isin(skipped)).sort_values("skipped", kind="stable")


def current_flag() -> None:
    if queue.empty:
        st.success("The queue is clear: no open flag matches. See the decisions below, or export the report.")
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
        f"Scenario **{md_escape(f['scenario_id'])}** · {md_escape(f['condition'])}"
        f"{' (control)' if f['is_control'] else ''} · position {f['position']} · score {f['score']:.2f} · "
        f"{f['n_hits']}/{f['n_samples']} samples agree · cited FVE {fve}"
        + (" · **low fidelity**" if f["low_fidelity"] else "")
    )
    if theme is not None:
        st.caption(md_escape(theme.description))
    with st.container(border=True):
        st.markdown(
            f"…{md_escape(shown.before)} :orange-background[**{md_escape(shown.token)}**] {md_escape(shown.after)}…"
        )
    if seen:
        st.markdown(f"Also visible {seen}: “{md_escape(f['visible_evidence'] or '')}”")
    else:
        st.markdown("**Unverbalized**: the target's visible text does not express this theme.")
    for sample in shown.samples:
        sample_fve = "-" if sample.fve is None else f"{sample.fve:.2f}"
        st.markdown(
            f"- sample {sample.index} ({md_escape(sample.status)}, FVE {sample_fve}): {md_escape(sample.text)}"
        )
    st.page_link(
        "views/transcript.py", label="Open in Transcript", icon=":material/forum:",
        query_params={"campaign": campaign, "transcript": str(f["transcript_id"]), "pos": str(f["position"])},
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
                 column_config={"created_at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss")})  # fmt: skip


current_flag()
history()
