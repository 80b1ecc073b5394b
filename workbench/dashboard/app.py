"""The dashboard's entry script: one ``st.navigation`` app over the audit store.

Run it with ``nla-workbench dashboard [--db URL]`` (which sets ``NLA_WORKBENCH_DB``)."""

from __future__ import annotations

import streamlit as st

from workbench.dashboard.state import PAGE, db_url

st.set_page_config(page_title="NLA Audit Workbench", page_icon=":material/troubleshoot:", layout="wide")

PAGES = {
    "Audit": [
        st.Page("views/campaigns.py", title="Campaigns", icon=":material/folder_open:", default=True),
        st.Page("views/triage.py", title="Triage", icon=":material/flag:", url_path="triage"),
        st.Page("views/transcript.py", title="Transcript", icon=":material/forum:", url_path="transcript"),
        st.Page("views/review.py", title="Review", icon=":material/rule:", url_path="review"),
        st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    ],
    "Tools": [
        st.Page("views/explore.py", title="Explore", icon=":material/science:", url_path="explore"),
        st.Page("views/export.py", title="Export", icon=":material/download:", url_path="export"),
    ],
}  # fmt: skip

page = st.navigation(PAGES)
st.session_state[PAGE] = page.url_path
st.sidebar.caption(f"Store: `{db_url()}`")
page.run()
