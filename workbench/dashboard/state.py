"""What every page shares: the open store (from ``NLA_WORKBENCH_DB``), theme definitions, the
campaign picker, and empty states that say what to do next. Pickers are bound to query parameters,
so every view is a link."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import streamlit as st

from audits.read_model.campaigns import campaign_names
from audits.read_model.flags import VerdictSummary, no_flag_explanation
from audits.scenario_library import Scenario, load_library
from audits.store import Store, StoreError, open_store
from audits.themes.definitions import Theme, load_themes
from workbench.dashboard import DB_ENV
from workbench.dashboard.text import md_escape

DEFAULT_DB = "workbench.db"


def db_url() -> str:
    """The store this dashboard reads."""
    return os.environ.get(DB_ENV, DEFAULT_DB)


@st.cache_resource(show_spinner=False)
def _open(url: str) -> Store:
    return open_store(url)


def store() -> Store:
    """The open store; a missing or outdated one stops the page with what to do."""
    try:
        return _open(db_url())
    except StoreError as error:
        st.error(md_escape(str(error)))
        st.info(
            f"Create or migrate it with `nla-workbench db upgrade --db {md_escape(db_url())}`, "
            "or run the starter audit with `nla-workbench demo`."
        )
        st.stop()


@st.cache_resource(show_spinner=False)
def themes() -> dict[str, Theme]:
    """Theme definitions by id (their names and colours are used on every page)."""
    return load_themes()


@st.cache_resource(show_spinner=False)
def library() -> dict[str, Scenario]:
    """The scenario library by id."""
    return load_library()


def theme_name(theme_id: str) -> str:
    """A theme's display name (its id if unknown)."""
    theme = themes().get(theme_id)
    return theme.name if theme else theme_id


def pick_campaign(s: Store) -> str:
    """The sidebar campaign picker (``?campaign=``); with no campaign yet, say how to make one."""
    names = campaign_names(s)
    if not names:
        st.info(
            "No campaigns in this store yet. Create one on the **Campaigns** page (form or YAML upload), "
            "or run the starter audit: `nla-workbench demo`."
        )
        st.page_link("views/campaigns.py", label="Go to Campaigns", icon=":material/folder_open:")
        st.stop()
    return campaign_select(names)


PAGE = "current_page"
"""Session key of the page being run (set by the entry script)."""


def campaign_select(names: list[str]) -> str:
    """The sidebar campaign selectbox (``?campaign=``)."""
    return linked_select("Campaign", names, "campaign", str, st.sidebar)


def linked_select(
    label: str, options: list[Any], key: str, format_func: Callable[[Any], str], where=st
) -> Any:
    """A selectbox over ids whose query parameter ``key`` holds the id itself (a bound widget would put
    the formatted label in the URL, and fall back to its default on a page switch): the URL's id picks
    the initial value, else this session's last choice (the sidebar's page links drop the URL's query);
    a change updates the URL."""
    remembered, owner = f"last_{key}", f"page_of_{key}"
    if st.session_state.get(owner) != st.session_state.get(PAGE):
        st.session_state.pop(key, None)  # another page's widget state, which this page's widget ignores
    st.session_state[owner] = st.session_state.get(PAGE)
    wanted = st.query_params.get(key, st.session_state.get(remembered))
    ids = [str(option) for option in options]
    index = ids.index(wanted) if key not in st.session_state and wanted in ids else 0
    value = where.selectbox(label, options, index=index, key=key, format_func=format_func)
    if value is not None:
        st.query_params[key] = st.session_state[remembered] = str(value)
    return value


def untrained_banner(untrained: bool) -> None:
    """Warn plainly when explanations come from an untrained NLA."""
    if untrained:
        st.warning(
            "**Untrained NLA** (stage `init`): these explanations carry no information about the "
            "activations. Use a trained checkpoint before drawing conclusions."
        )


def hypothesis_note() -> None:
    """The standing caveat shown beside NLA explanations."""
    st.caption(
        "NLA explanations are hypotheses that can hallucinate: check each against the transcript, "
        "its fidelity (AR FVE / cos) and the agreement of its samples."
    )


def no_flags_notice(summary: VerdictSummary) -> None:
    """Say that the campaign raised no flag, how many verdicts it made, and what that can and cannot rule
    out (an info box: an empty result is not good news by itself)."""
    st.info(md_escape(no_flag_explanation(summary)), icon=":material/info:")


def fve_badge(fve: float | None, min_fve: float | None = None) -> str:
    """A markdown badge for an explanation's FVE: red below 0 (worse than predicting the mean vector), orange
    below the theme's minimum (low fidelity), nothing otherwise."""
    if fve is None or fve != fve:
        return ":gray-badge[no FVE]"
    if fve < 0:
        return f":red-badge[:material/warning: FVE {fve:.2f} below 0: worse than the mean vector]"
    if min_fve is not None and fve < min_fve:
        return f":orange-badge[:material/warning: FVE {fve:.2f} below the theme minimum {min_fve:.2f}]"
    return ""
