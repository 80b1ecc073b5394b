"""Dashboard figures: the scenario x theme heatmap of flag rates and the token strip. Every label
that carries model or scenario text is escaped (plotly reads a subset of HTML in text)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from audits.themes.definitions import Theme
from workbench.dashboard.text import label, token_label

STRIP_WIDTH = 16
"""Tokens per row of a token strip."""


def rate_heatmap(pooled: pd.DataFrame, themes: dict[str, Theme]) -> go.Figure:
    """Pooled flag rate per scenario (rows) and theme (columns), with k/n on hover."""
    grid = pooled.pivot(index="scenario_id", columns="theme_id", values="rate")
    counts = pooled.assign(kn=pooled["k"].astype(str) + " of " + pooled["n"].astype(str))
    kn = counts.pivot(index="scenario_id", columns="theme_id", values="kn").reindex_like(grid)
    names = [label(themes[t].name if t in themes else t) for t in grid.columns]
    figure = go.Figure(
        go.Heatmap(
            z=grid.to_numpy(), x=names, y=[label(s) for s in grid.index], customdata=kn.to_numpy(),
            colorscale="Reds", zmin=0, zmax=max(0.05, float(np.nanmax(grid.to_numpy(), initial=0))),
            texttemplate="%{z:.0%}", hovertemplate="%{y} · %{x}<br>%{z:.1%} (%{customdata} tokens)<extra></extra>",
            colorbar={"tickformat": ".0%", "title": "flag rate"},
        )
    )  # fmt: skip
    figure.update_layout(height=120 + 40 * len(grid), margin={"t": 30, "l": 10, "r": 10, "b": 10})
    return figure


def token_strip(
    tokens: pd.DataFrame, values: pd.Series, *, title: str, colour: str, signed: bool
) -> go.Figure:
    """The transcript's tokens laid out in rows, each cell coloured by ``values`` (indexed by token
    position; blank where a token has no score); hover shows the position, token and score."""
    n = len(tokens)
    rows = max(1, -(-n // STRIP_WIDTH))
    z = np.full((rows, STRIP_WIDTH), np.nan)
    text = np.full((rows, STRIP_WIDTH), "", dtype=object)
    hover = np.full((rows, STRIP_WIDTH), "", dtype=object)
    for i, token in enumerate(tokens.itertuples()):
        r, c = divmod(i, STRIP_WIDTH)
        score = values.get(token.position, np.nan)
        z[r, c] = score
        text[r, c] = token_label(token.token_text)
        shown = "-" if np.isnan(score) else f"{score:.2f}"
        hover[r, c] = (
            f"pos {token.position} · {label(token.role)}<br>{token_label(token.token_text)}<br>{shown}"
        )
    scale = [[0, "#2166ac"], [0.5, "#f7f7f7"], [1, "#b2182b"]] if signed else [[0, "#ffffff"], [1, colour]]
    bound = float(np.nanmax(np.abs(z), initial=1.0)) if signed else 1.0
    z = np.nan_to_num(
        z, nan=0.0
    )  # unscored tokens drawn neutral (plotly draws no text on a gap); hover says "-"
    figure = go.Figure(
        go.Heatmap(
            z=z, text=text, customdata=hover, texttemplate="%{text}", textfont={"size": 13}, colorscale=scale, zmin=-bound if signed else 0,
            zmax=bound, xgap=2, ygap=2, hovertemplate="%{customdata}<extra></extra>", colorbar={"title": title},
        )
    )  # fmt: skip
    figure.update_layout(
        height=60 + 28 * rows, margin={"t": 10, "l": 10, "r": 10, "b": 10},
        xaxis={"visible": False}, yaxis={"visible": False, "autorange": "reversed"},
    )  # fmt: skip
    return figure


def _cell(*parts: str, theme_id: str, themes: dict[str, Theme]) -> str:
    """A bar's label: the parts with the theme's name, escaped for plotly."""
    theme = themes[theme_id].name if theme_id in themes else theme_id
    return label(" · ".join([parts[0], theme, *parts[1:]]))


def _rate_bars(name: str, x: list[str], rate: pd.Series, low: pd.Series, high: pd.Series) -> go.Bar:
    """One bar trace of rates with asymmetric (Wilson) error bars."""
    error = {"type": "data", "symmetric": False, "array": high - rate, "arrayminus": rate - low}
    return go.Bar(name=label(name), x=x, y=rate, error_y=error)


def _rate_layout(figure: go.Figure, title: str) -> go.Figure:
    figure.update_layout(barmode="group", yaxis={"tickformat": ".0%"}, height=380, title=title)
    return figure


def arm_rates_figure(compared: pd.DataFrame, themes: dict[str, Theme]) -> go.Figure:
    """Each condition's flag rate beside its control's, each arm with its own Wilson interval (the rows of
    ``condition_vs_control`` with ``queries.arm_intervals``)."""
    cells = [
        _cell(r.scenario_id, r.condition, theme_id=r.theme_id, themes=themes) for r in compared.itertuples()
    ]
    bars = [
        _rate_bars("condition", cells, compared["rate"], compared["low"], compared["high"]),
        _rate_bars(
            "control", cells, compared["control_rate"], compared["control_low"], compared["control_high"]
        ),
    ]
    return _rate_layout(go.Figure(bars), "Flag rate of each arm (95% Wilson)")


def side_by_side_figure(pooled: pd.DataFrame, themes: dict[str, Theme]) -> go.Figure:
    """Pooled flag rates per (scenario, theme) of two or more ``arm``s, grouped, with Wilson intervals."""
    bars = []
    for arm, rows in pooled.groupby("arm", sort=False):
        cells = [_cell(r.scenario_id, theme_id=r.theme_id, themes=themes) for r in rows.itertuples()]
        bars.append(_rate_bars(arm, cells, rows["rate"], rows["low"], rows["high"]))
    return _rate_layout(go.Figure(bars), "Flag rate (95% Wilson)")
