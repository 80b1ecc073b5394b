"""Plotly charts of a report (and the dashboard), as figures or as HTML fragments that need the plotly.js
bundle inlined once. Labels are HTML-escaped: plotly reads a subset of HTML in text."""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

from audits.themes.definitions import Theme

CONFIG = {"displaylogo": False, "responsive": True}


def _fragment(figure: go.Figure) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, config=CONFIG)


def rate_chart(rates: pd.DataFrame, theme: Theme) -> str:
    """Flag rate per scenario and condition (controls hatched) with Wilson intervals, for one theme."""
    return _fragment(rate_figure(rates, theme))


def rate_figure(rates: pd.DataFrame, theme: Theme) -> go.Figure:
    """The figure of :func:`rate_chart`."""
    cells = rates[rates["theme_id"] == theme.id]
    labels = [
        html.escape(f"{r.scenario_id} · {'control' if r.is_control else r.condition}")
        for r in cells.itertuples()
    ]
    figure = go.Figure(
        go.Bar(
            x=labels, y=cells["rate"], marker_color=theme.colour,
            marker_pattern_shape=["/" if c else "" for c in cells["is_control"]],
            error_y={"type": "data", "symmetric": False, "array": cells["high"] - cells["rate"],
                     "arrayminus": cells["rate"] - cells["low"]},
            customdata=cells[["k", "n"]], hovertemplate="%{x}<br>%{y:.0%} (%{customdata[0]} of %{customdata[1]})",
        )
    )  # fmt: skip
    figure.update_layout(
        title=f"{theme.name}: flag rate (95% Wilson interval)", yaxis={"tickformat": ".0%", "range": [0, 1]},
        height=360, margin={"t": 50, "b": 120},
    )  # fmt: skip
    return figure


def difference_chart(comparison: pd.DataFrame, themes: dict[str, Theme]) -> str:
    """Condition minus control flag rate per scenario, theme and condition, with Newcombe intervals."""
    return _fragment(difference_figure(comparison, themes))


def difference_figure(comparison: pd.DataFrame, themes: dict[str, Theme]) -> go.Figure:
    """The figure of :func:`difference_chart`."""
    figure = go.Figure()
    for theme_id, rows in comparison.groupby("theme_id"):
        theme = themes.get(theme_id)
        figure.add_trace(
            go.Scatter(
                x=rows["diff"], y=[html.escape(f"{r.scenario_id} · {r.condition}") for r in rows.itertuples()], mode="markers",
                name=theme.name if theme else theme_id, marker={"color": theme.colour if theme else None, "size": 10},
                error_x={"type": "data", "symmetric": False, "array": rows["diff_high"] - rows["diff"],
                         "arrayminus": rows["diff"] - rows["diff_low"]},
            )
        )  # fmt: skip
    figure.add_vline(x=0, line_dash="dot")
    figure.update_layout(
        title="Condition minus control (95% Newcombe interval)", xaxis={"tickformat": "+.0%", "range": [-1, 1]},
        height=max(300, 40 * len(comparison) + 120),
    )  # fmt: skip
    return figure
