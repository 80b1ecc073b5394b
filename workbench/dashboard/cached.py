"""Cached versions of the heavier read-model queries (``audits.read_model``). A cache entry is keyed by the store's URL and its data
version (the newest flag, review, explanation and campaign ids), so a new row anywhere makes the next
render read afresh, while re-renders of unchanged data (filters, sorting, paging) cost nothing."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import func, select

from audits.campaign_status import CampaignStatus
from audits.campaign_status import campaign_status as read_status
from audits.read_model import explanations, flags
from audits.read_model.leads import Leads
from audits.read_model.leads import leads as read_leads
from audits.review import term_review_history
from audits.store import (
    SQLAActivation,
    SQLACampaign,
    SQLAExplanation,
    SQLAFlag,
    SQLAReview,
    SQLARun,
    SQLATranscript,
    Store,
)
from workbench.dashboard.state import library

Version = tuple[object, ...]


def data_version(store: Store) -> Version:
    """The newest row id of each table the cached queries read, and the latest run end (index lookups
    and a scan of the small runs table): any write a campaign run or a reviewer makes changes it."""
    newest = [select(func.max(t.id)).scalar_subquery() for t in
              (SQLAFlag, SQLAReview, SQLAExplanation, SQLACampaign, SQLAActivation, SQLATranscript, SQLARun)]  # fmt: skip
    ended = select(func.max(SQLARun.finished_at)).scalar_subquery()
    with store.session() as session:
        return tuple(session.execute(select(*newest, ended)).one())


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _rates(
    _store: Store, url: str, version: Version, campaign: str, include_low: bool, unit: str
) -> pd.DataFrame:
    return flags.campaign_rates(_store, campaign, include_low_fidelity=include_low, unit=unit)


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _checkpoint_rates(
    _store: Store, url: str, version: Version, campaign: str, checkpoint: str, include_low: bool, unit: str
) -> pd.DataFrame:
    return flags.checkpoint_rates(_store, campaign, checkpoint, include_low_fidelity=include_low, unit=unit)


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _raised(_store: Store, url: str, version: Version, campaign: str) -> pd.DataFrame:
    return flags.raised_flags(_store, campaign)


def campaign_rates(
    store: Store, campaign: str, *, include_low_fidelity: bool, unit: str = "token"
) -> pd.DataFrame:
    """:func:`audits.read_model.flags.campaign_rates`, cached per data version."""
    return _rates(store, str(store.url), data_version(store), campaign, include_low_fidelity, unit)


def checkpoint_rates(
    store: Store, campaign: str, checkpoint: str, *, include_low_fidelity: bool, unit: str = "token"
) -> pd.DataFrame:
    """:func:`audits.read_model.flags.checkpoint_rates`, cached per data version."""
    version = data_version(store)
    return _checkpoint_rates(store, str(store.url), version, campaign, checkpoint, include_low_fidelity, unit)


def raised_flags(store: Store, campaign: str) -> pd.DataFrame:
    """:func:`audits.read_model.flags.raised_flags`, cached per data version."""
    return _raised(store, str(store.url), data_version(store), campaign)


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _status(_store: Store, url: str, version: Version, campaign: str) -> CampaignStatus:
    return read_status(_store, campaign, library())


def campaign_status(store: Store, campaign: str) -> CampaignStatus:
    """:func:`audits.campaign_status.campaign_status`, cached per data version (live progress stays live:
    every stored unit of work changes the version)."""
    return _status(store, str(store.url), data_version(store), campaign)


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _fidelity(_store: Store, url: str, version: Version, campaign: str, checkpoint: str | None):
    return explanations.fidelity_summary(_store, campaign, checkpoint)


def fidelity_summary(store: Store, campaign: str, checkpoint: str | None = None) -> explanations.Fidelity:
    """:func:`audits.read_model.explanations.fidelity_summary`, cached per data version."""
    return _fidelity(store, str(store.url), data_version(store), campaign, checkpoint)


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _verdicts(_store: Store, url: str, version: Version, campaign: str) -> flags.VerdictSummary:
    return flags.verdict_summary(_store, campaign)


def verdict_summary(store: Store, campaign: str) -> flags.VerdictSummary:
    """:func:`audits.read_model.flags.verdict_summary`, cached per data version."""
    return _verdicts(store, str(store.url), data_version(store), campaign)


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _leads(_store: Store, url: str, version: Version, campaign: str, options: tuple) -> Leads:
    return read_leads(_store, campaign, history=pd.DataFrame(), **dict(options))  # states: see leads()


def leads(store: Store, campaign: str, **options) -> Leads:
    """:func:`audits.read_model.leads.leads`: discovery cached per data version, review states read afresh
    (a decision never recomputes discovery)."""
    found = _leads(store, str(store.url), data_version(store), campaign, tuple(sorted(options.items())))
    return found.restated(term_review_history(store, campaign))
