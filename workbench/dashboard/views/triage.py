"""Triage: the raised flags of a campaign with filters and sorting, and a scenario x theme heatmap
of flag rates. Every flag is a lead to verify; the table shows its evidence and fidelity."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from audits.read_model.flags import cell_label, pooled_rates
from workbench.dashboard import cached
from workbench.dashboard.charts import rate_heatmap
from workbench.dashboard.filters import FlagFilter, filter_flags
from workbench.dashboard.state import (
    hypothesis_note,
    no_flags_notice,
    pick_campaign,
    store,
    theme_name,
    themes,
)

PAGE_SIZES = [25, 100, 200, 500]
SORTS = {"score": "score", "agreement": "agreement", "fidelity (FVE)": "fve", "position": "position"}

st.title("Triage")
s = store()
campaign = pick_campaign(s)
flags = cached.raised_flags(s, campaign)
hypothesis_note()

with st.sidebar:
    st.subheader("Filters", anchor=False)
    f = FlagFilter(
        themes=st.multiselect("Theme", sorted(themes()), key="theme", bind="query-params", format_func=theme_name),
        scenarios=st.multiselect("Scenario", sorted(flags["scenario_id"].unique()), key="scenario", bind="query-params"),
        conditions=st.multiselect("Condition", sorted(flags["condition"].unique()), key="condition", bind="query-params"),
        visibility={"all": None, "unverbalized only": "unverbalized", "verbalized only": "verbalized"}[
            st.selectbox("Visible text", ["all", "unverbalized only", "verbalized only"], key="visible", bind="query-params")
        ],
        min_fve=st.number_input("Minimum FVE", -10.0, 1.0, None, 0.05, key="min_fve", bind="query-params",
                                placeholder="any"),
        include_low_fidelity=st.toggle("Show low-fidelity flags", True, key="low_fidelity", bind="query-params"),
        review_states=st.multiselect("Review state", ["open", "confirm", "dismiss", "follow_up"], key="state",
                                     bind="query-params"),
    )  # fmt: skip

shown = filter_flags(flags, f)
left, mid, right, last = st.columns(4)
left.metric("flags shown", f"{len(shown)} of {len(flags)}")
mid.metric("unverbalized", int((~shown["verbalized"]).sum()) if len(shown) else 0)
right.metric("low fidelity", int(shown["low_fidelity"].sum()) if len(shown) else 0)
last.metric("still open", int((shown["review_state"] == "open").sum()) if len(shown) else 0)


def flag_table(rows: pd.DataFrame) -> None:
    if flags.empty:  # nothing was raised: say what the campaign judged and what that rules out
        no_flags_notice(cached.verdict_summary(s, campaign))
        st.page_link(
            "views/review.py", label="Review what discovery found without a theme", icon=":material/travel_explore:",
            query_params={"campaign": campaign, "queue": "terms"},
        )  # fmt: skip
        return
    if rows.empty:
        st.info(f"None of the {len(flags)} raised flags matches these filters: widen them in the sidebar.")
        return
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    sort = c1.selectbox("Sort by", list(SORTS), key="sort", bind="query-params")
    ascending = c2.toggle("Ascending", False, key="ascending", bind="query-params")
    size = c3.selectbox("Rows per page", PAGE_SIZES, index=2, key="per_page", bind="query-params")
    pages = max(1, -(-len(rows) // size))
    page = c4.number_input(f"Page (of {pages})", 1, pages, 1, key="page", bind="query-params")
    rows = rows.sort_values([SORTS[sort], "flag_id"], ascending=[ascending, True], na_position="last")
    rows = rows.iloc[(page - 1) * size : page * size]
    view = pd.DataFrame({
        "flag": rows["flag_id"], "theme": rows["theme_id"].map(theme_name), "score": rows["score"],
        "samples": rows["n_hits"].astype(str) + "/" + rows["n_samples"].astype(str), "FVE": rows["fve"],
        "low fidelity": rows["low_fidelity"], "visible": rows.apply(_visibility, axis=1),
        "scenario": rows["scenario_id"],
        "condition": [cell_label(c, bool(k)) for c, k in zip(rows["condition"], rows["is_control"], strict=True)],
        "position": rows["position"], "token": rows["token_text"], "explanation": rows["explanation"],
        "evidence": rows["evidence_text"], "review": rows["review_state"],
        "open": [f"./transcript?{urlencode({'campaign': campaign, 'transcript': t, 'pos': p, 'colour': f'flag:{th}'})}"
                 for t, p, th in zip(rows["transcript_id"], rows["position"], rows["theme_id"], strict=True)],
    })  # fmt: skip
    colours = {theme_name(t): f"color: {th.colour}; font-weight: 600" for t, th in themes().items()}
    st.dataframe(
        view.style.map(lambda name: colours.get(name, ""), subset=["theme"]), hide_index=True, key="flag_table",
        column_config={
            "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.2f"),
            "FVE": st.column_config.NumberColumn(format="%.2f"),
            "open": st.column_config.LinkColumn("transcript", display_text="open"),
        },
    )  # fmt: skip


def _visibility(row: pd.Series) -> str:
    return "in reply" if row["in_reply"] else "in prompt" if row["in_prompt"] else "unverbalized"


def heatmap() -> None:
    st.subheader("Flag rate by scenario and theme", anchor=False)
    include_low = st.toggle("Count low-fidelity verdicts", False, key="rates_low", bind="query-params")
    rates = cached.campaign_rates(s, campaign, include_low_fidelity=include_low)
    if f.conditions:
        rates = rates[rates["condition"].isin(f.conditions)]
    if rates.empty or rates["n"].sum() == 0:
        excluded = "" if include_low else " (all verdicts may be low-fidelity: count them with the toggle)"
        st.info(f"No verdicts to rate yet{excluded}.")
        return
    st.plotly_chart(rate_heatmap(pooled_rates(rates), themes()), key="rate_heatmap")
    st.caption("Per-token flag rate pooled over each scenario's variants (controls included); "
               "the Compare page sets each condition against its control with intervals.")  # fmt: skip


flag_table(shown)
heatmap()
