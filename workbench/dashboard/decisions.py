"""The reviewer's decision form, shared by every page that records a decision (a flag on Review, a
discovered term on Review and Discover): a required reason and one button per decision, with keyboard
shortcuts. Decisions are appended by ``audits.review``; this only collects them."""

from __future__ import annotations

import streamlit as st

DECISIONS = {
    "confirm": ("Confirm", "Alt+1"),
    "dismiss": ("Dismiss", "Alt+2"),
    "follow_up": ("Follow up", "Alt+3"),
}
"""Decision -> (button label, keyboard shortcut)."""


def decision_form(form: str, *, reason_key: str, buttons: str) -> tuple[str, str] | None:
    """A reason box (widget key ``reason_key``) and the decision buttons (keys ``<buttons>_<decision>``) in
    form ``form``; ``(decision, reason)`` when a button was pressed."""
    with st.form(form):
        reason = st.text_area("Reason (required)", key=reason_key, height=80)
        columns = st.columns(len(DECISIONS))
        pressed = [
            column.form_submit_button(label, key=f"{buttons}_{decision}", shortcut=keys,
                                      type="primary" if decision == "confirm" else "secondary")
            for column, (decision, (label, keys)) in zip(columns, DECISIONS.items(), strict=True)
        ]  # fmt: skip
    if not any(pressed):
        return None
    return list(DECISIONS)[pressed.index(True)], reason or ""
