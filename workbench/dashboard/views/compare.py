"""Compare: each condition against its paired control (each arm's flag rate with its Wilson interval,
the difference with a Newcombe interval), and two campaigns or two NLA checkpoints side by side: another
run of the same scenarios, another checkpoint, or one campaign whose checkpoint changed between runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from audits.read_model.campaigns import comparison_arms
from audits.read_model.flags import arm_intervals, cell_label, pooled_rates
from audits.reports.charts import difference_figure
from audits.themes.rates import condition_vs_control
from workbench.dashboard import cached
from workbench.dashboard.charts import arm_rates_figure, side_by_side_figure
from workbench.dashboard.state import linked_select, pick_campaign, store, theme_name, themes
from workbench.dashboard.text import md_escape

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
arms = comparison_arms(s)
checkpoints_of = arms.groupby("campaign")["checkpoint"].nunique()


def rates_of(name: str, checkpoint: str | None = None) -> pd.DataFrame:
    """A campaign's flag rates; one checkpoint's when given and the campaign's runs used several."""
    if checkpoint is None or checkpoints_of.get(name, 1) == 1:
        rates = cached.campaign_rates(s, name, include_low_fidelity=include_low, unit=unit)
    else:
        rates = cached.checkpoint_rates(s, name, checkpoint, include_low_fidelity=include_low, unit=unit)
    return rates[rates["theme_id"].isin(theme_filter)] if theme_filter else rates


def against_controls() -> None:
    st.subheader("Condition vs control", anchor=False)
    if checkpoints_of.get(campaign, 1) > 1:
        st.warning(f"This campaign's runs used {checkpoints_of[campaign]} NLA checkpoints and these rates count "
                   "the verdicts of each: compare the checkpoints side by side below.")  # fmt: skip
    rates = rates_of(campaign)
    compared = condition_vs_control(rates)
    if compared.empty:
        st.info("Nothing to compare yet: the campaign needs flag verdicts in a condition and its control"
                + ("." if include_low else " (or count low-fidelity verdicts with the sidebar toggle)."))  # fmt: skip
        return
    compared = arm_intervals(compared, rates)
    st.plotly_chart(difference_figure(compared, themes()), key="difference_chart")
    st.plotly_chart(arm_rates_figure(compared, themes()), key="arm_rates_chart")
    shown = compared.assign(theme=compared["theme_id"].map(theme_name),
                            control=[cell_label(c, True) for c in compared["control_condition"]])  # fmt: skip
    percent = {c: st.column_config.NumberColumn(label, format="percent") for c, label in RATE_COLUMNS.items()}
    st.dataframe(
        shown, hide_index=True, key="comparison_table", column_order=["scenario_id", "theme", *COUNT_COLUMNS, *RATE_COLUMNS, *DIFF_COLUMNS],
        column_config={"scenario_id": "scenario", **COUNT_COLUMNS, **percent,
                       **{c: st.column_config.NumberColumn(label, format="%+.3f") for c, label in DIFF_COLUMNS.items()}},
    )  # fmt: skip
    st.caption("Rates are the share of tokens flagged, with 95% Wilson intervals per arm; differences are "
               "condition minus control with 95% Newcombe intervals. Unverbalized: flags whose theme the "
               "visible text does not express.")  # fmt: skip


COUNT_COLUMNS = {"condition": "condition", "n": "tokens", "control": "control", "control_n": "control tokens"}
RATE_COLUMNS = {"rate": "rate", "low": "rate low", "high": "rate high", "control_rate": "control rate",
                "control_low": "control low", "control_high": "control high"}  # fmt: skip
DIFF_COLUMNS = {"diff": "difference", "diff_low": "difference low", "diff_high": "difference high",
                "diff_unverbalized": "unverbalized difference"}  # fmt: skip
# The comparison table's columns and the names people read (never the frame's raw column names).


def arm_label(arm: str) -> str:
    row = arms[arms["arm"] == arm].iloc[0]
    return f"{row['campaign']} · {row['checkpoint']}" + (" (untrained)" if row["stage"] == "init" else "")


def side_by_side() -> None:
    st.subheader("Side by side", anchor=False)
    st.caption("Two campaigns that ran the same scenarios (another run, another NLA checkpoint), or the "
               "checkpoints of one campaign whose checkpoint changed between runs.")  # fmt: skip
    mine = arms.loc[arms["campaign"] == campaign, "arm"].tolist()
    if not mine:
        st.info("This campaign has not run yet: start its run on the Campaigns page.")
        return
    if len(arms) < 2:
        st.info("Only one campaign and checkpoint in this store: create another campaign (e.g. the same "
                "scenarios with another checkpoint) to compare with.")  # fmt: skip
        return
    left, right = st.columns(2)
    arm = linked_select("Checkpoint", mine, "arm", arm_label, left)
    other = linked_select("Against", [a for a in arms["arm"] if a != arm], "against", arm_label, right)
    for column, chosen in ((left, arm), (right, other)):
        with column, st.container(border=True):
            summary(chosen)
    pooled = []
    for chosen in (arm, other):
        name, checkpoint = chosen.split(":", 1)
        pooled.append(pooled_rates(rates_of(name, checkpoint)).assign(arm=arm_label(chosen)))
    both = pd.concat(pooled, ignore_index=True)
    if both.empty:
        st.info("No flag verdicts to compare yet.")
        return
    st.plotly_chart(side_by_side_figure(both, themes()), key="side_by_side_chart")
    wide = both.pivot_table(index=["scenario_id", "theme_id"], columns="arm", values="rate", sort=False)
    wide = wide.reindex(columns=both["arm"].unique())  # an arm without rates still gets its column
    wide = wide.reset_index()
    st.dataframe(wide, hide_index=True, key="side_by_side_table",
                 column_config={"scenario_id": "scenario", "theme_id": "theme",
                                **{a: st.column_config.NumberColumn(a, format="percent") for a in both["arm"].unique()}})  # fmt: skip


def summary(arm: str) -> None:
    """One arm's checkpoint and the fidelity of the campaign's explanations under it."""
    name, checkpoint = arm.split(":", 1)
    fidelity = cached.fidelity_summary(s, name, checkpoint)
    meta = fidelity.setting
    st.markdown(f"**{md_escape(name)}**")
    st.caption(f"checkpoint {md_escape(checkpoint)} · stage {md_escape(meta.stage or 'unknown')} · layer "
               f"{'-' if meta.layer is None else meta.layer} · {meta.samples} sample(s) per vector")  # fmt: skip
    m1, m2, m3 = st.columns(3)
    m1.metric("parsed", f"{fidelity.parsed} / {fidelity.explanations}")
    m2.metric("median FVE", "-" if fidelity.fve["median"] is None else f"{fidelity.fve['median']:.2f}")
    m3.metric("median cos", "-" if fidelity.cos["median"] is None else f"{fidelity.cos['median']:.2f}")


against_controls()
side_by_side()
