"""Compare: each condition against its paired control (flag rates with Wilson intervals, the
difference with a Newcombe interval), and two campaigns (runs, or the same scenarios under two NLA
checkpoints) side by side."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from audits.reports.charts import difference_figure
from audits.themes.rates import condition_vs_control
from workbench.dashboard import cached, queries
from workbench.dashboard.state import pick_campaign, store, theme_name, themes
from workbench.dashboard.text import label

st.title("Compare")
s = store()
campaign = pick_campaign(s)
with st.sidebar:
    include_low = st.toggle("Count low-fidelity verdicts", False, key="low_fidelity", bind="query-params")
    unit = st.selectbox("Unit", ["token", "transcript"], key="unit", bind="query-params",
                        help="transcript: a transcript counts once, flagged if any token is (conservative)")  # fmt: skip
    theme_filter = st.multiselect(
        "Theme", sorted(themes()), key="theme", bind="query-params", format_func=theme_name
    )


def rates_of(name: str) -> pd.DataFrame:
    rates = cached.campaign_rates(s, name, include_low_fidelity=include_low, unit=unit)
    return rates[rates["theme_id"].isin(theme_filter)] if theme_filter else rates


def against_controls() -> None:
    st.subheader("Condition vs control", anchor=False)
    compared = condition_vs_control(rates_of(campaign))
    if compared.empty:
        st.info("Nothing to compare yet: the campaign needs flag verdicts in a condition and its control"
                + ("." if include_low else " (or count low-fidelity verdicts with the sidebar toggle)."))  # fmt: skip
        return
    st.plotly_chart(difference_figure(compared, themes()), key="difference_chart")
    st.dataframe(
        compared.assign(theme=compared["theme_id"].map(theme_name)), hide_index=True, key="comparison_table",
        column_order=["scenario_id", "theme", "condition", "n", "rate", "control_n", "control_rate", "diff",
                      "diff_low", "diff_high", "diff_unverbalized"],
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                       ("rate", "control_rate", "diff", "diff_low", "diff_high", "diff_unverbalized")},
    )  # fmt: skip


def side_by_side() -> None:
    st.subheader("Two campaigns side by side", anchor=False)
    st.caption("Pick campaigns that ran the same scenarios: another run, or another NLA checkpoint.")
    names = queries.campaign_names(s)
    others = [n for n in names if n != campaign]
    if not others:
        st.info(
            "Only one campaign in this store: create another (e.g. the same scenarios with another checkpoint)."
        )
        return
    other = st.selectbox("Against", others, key="against", bind="query-params")
    a, b = st.columns(2)
    for column, name in ((a, campaign), (b, other)):
        summary = queries.fidelity_summary(s, name)
        with column, st.container(border=True):
            st.markdown(f"**{label(name)}**")
            st.caption(
                f"checkpoint `{summary['checkpoint']}` · stage {summary['stage']} · layer {summary['layer']}"
            )
            m1, m2, m3 = st.columns(3)
            m1.metric("parsed", f"{summary['parsed']} / {summary['explanations']}")
            m2.metric("mean FVE", "-" if summary["mean_fve"] is None else f"{summary['mean_fve']:.2f}")
            m3.metric("mean cos", "-" if summary["mean_cos"] is None else f"{summary['mean_cos']:.2f}")
    pooled = [queries.pooled_rates(rates_of(name)).assign(campaign=name) for name in (campaign, other)]
    both = pd.concat(pooled, ignore_index=True)
    if both.empty:
        st.info("No flag verdicts to compare yet.")
        return
    figure = go.Figure([
        go.Bar(name=label(name), x=[label(f"{r.scenario_id} · {theme_name(r.theme_id)}") for r in rows.itertuples()],
               y=rows["rate"], error_y={"type": "data", "symmetric": False, "array": rows["high"] - rows["rate"],
                                        "arrayminus": rows["rate"] - rows["low"]})
        for name, rows in both.groupby("campaign", sort=False)
    ])  # fmt: skip
    figure.update_layout(
        barmode="group", yaxis={"tickformat": ".0%"}, height=380, title="Flag rate (95% Wilson)"
    )
    st.plotly_chart(figure, key="side_by_side_chart")
    wide = both.pivot_table(
        index=["scenario_id", "theme_id"], columns="campaign", values="rate"
    ).reset_index()
    st.dataframe(wide, hide_index=True, key="side_by_side_table")


against_controls()
side_by_side()
