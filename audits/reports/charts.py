"""Plotly charts of a report (and the dashboard), as figures or as HTML fragments that need the plotly.js
bundle inlined once. Labels are HTML-escaped (plotly reads a subset of HTML in text) and wrapped so no
label is cut off; every axis says what it measures; a report chart has no toolbar (it would print)."""

from __future__ import annotations

import html
import textwrap

import pandas as pd
import plotly.graph_objects as go

from audits.read_model.flags import cell_label
from audits.themes.definitions import Theme

CONFIG = {"displaylogo": False, "displayModeBar": False}
"""A report chart's plotly config: no toolbar (its icons would print), hover kept for the HTML."""
REPORT_WIDTH = 700
"""Pixels: the width of an A4 page inside its margins, so a printed chart is never cut."""
LABEL_WIDTH = 34
"""Characters per line of a wrapped axis label."""


def wrap_label(text: str, width: int = LABEL_WIDTH) -> str:
    """``text`` escaped for plotly and wrapped for an axis: each `` · ``-separated part on its own line(s),
    lines of about ``width`` characters broken at spaces and after commas, never inside a word."""
    lines = []
    for part in str(text).split(" · "):
        part = part.replace(",", ", ")
        lines += textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False) or [""]
    return "<br>".join(html.escape(line, quote=False) for line in lines)


def _fragment(figure: go.Figure) -> str:
    sized = go.Figure(figure).update_layout(width=REPORT_WIDTH, autosize=False)
    return sized.to_html(full_html=False, include_plotlyjs=False, config=CONFIG)


def rate_chart(rates: pd.DataFrame, theme: Theme) -> str:
    """Flag rate per scenario and condition (controls hatched) with Wilson intervals, for one theme."""
    return _fragment(rate_figure(rates, theme))


def rate_figure(rates: pd.DataFrame, theme: Theme) -> go.Figure:
    """The figure of :func:`rate_chart`: one horizontal bar per cell, each control named by its condition
    (two controls of one scenario get two bars)."""
    cells = rates[rates["theme_id"] == theme.id]
    labels = [
        wrap_label(f"{r.scenario_id} · {cell_label(r.condition, bool(r.is_control))}") for r in cells.itertuples()
    ]
    figure = go.Figure(
        go.Bar(
            y=labels, x=cells["rate"], orientation="h", marker_color=theme.colour,
            marker_pattern_shape=["/" if c else "" for c in cells["is_control"]],
            error_x={"type": "data", "symmetric": False, "array": cells["high"] - cells["rate"],
                     "arrayminus": cells["rate"] - cells["low"]},
            customdata=cells[["k", "n"]], hovertemplate="%{y}<br>%{x:.0%} (%{customdata[0]} of %{customdata[1]})",
        )
    )  # fmt: skip
    figure.update_layout(
        title=f"{html.escape(theme.name)}: flag rate (95% Wilson interval; controls hatched)",
        xaxis={"tickformat": ".0%", "range": [0, 1], "title": "flag rate (share of tokens flagged)"},
        yaxis={"title": "scenario · condition", "automargin": True, "autorange": "reversed"},
        height=150 + 48 * max(len(labels), 1), margin={"t": 50, "b": 50, "l": 10, "r": 20},
    )  # fmt: skip
    return figure


def difference_chart(comparison: pd.DataFrame, themes: dict[str, Theme]) -> str:
    """Condition minus control flag rate per scenario, theme and condition, with Newcombe intervals."""
    return _fragment(difference_figure(comparison, themes))


def difference_figure(comparison: pd.DataFrame, themes: dict[str, Theme]) -> go.Figure:
    """The figure of :func:`difference_chart`: a forest plot, one row per (scenario, condition), the themes
    of a row drawn side by side (offset), never on top of each other."""
    figure = go.Figure()
    rows = list(dict.fromkeys(wrap_label(f"{r.scenario_id} · {r.condition}") for r in comparison.itertuples()))
    for theme_id, cells in comparison.groupby("theme_id"):
        theme = themes.get(theme_id)
        figure.add_trace(
            go.Scatter(
                x=cells["diff"], y=[wrap_label(f"{r.scenario_id} · {r.condition}") for r in cells.itertuples()],
                mode="markers", orientation="h", offsetgroup=theme_id, alignmentgroup="themes",
                name=html.escape(theme.name if theme else theme_id),
                marker={"color": theme.colour if theme else None, "size": 10},
                error_x={"type": "data", "symmetric": False, "array": cells["diff_high"] - cells["diff"],
                         "arrayminus": cells["diff"] - cells["diff_low"]},
            )
        )  # fmt: skip
    figure.add_vline(x=0, line_dash="dot")
    figure.update_layout(
        title="Condition minus control (95% Newcombe interval)", scattermode="group", scattergap=0.3,
        xaxis={"tickformat": "+.0%", "range": [-1, 1], "title": "difference in flag rate (condition − control)"},
        yaxis={"title": "scenario · condition", "automargin": True, "categoryorder": "array", "categoryarray": rows,
               "autorange": "reversed"},
        height=max(300, 60 * len(rows) + 160), legend={"title": "theme"},
    )  # fmt: skip
    return figure
