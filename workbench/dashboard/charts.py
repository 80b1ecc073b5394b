"""Dashboard figures: the scenario x theme heatmap of flag rates, the token strip, and the rate bars of
Compare. Every label that carries model or scenario text is escaped (plotly reads a subset of HTML in
text); every axis says what it measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from audits.reports.charts import wrap_label
from audits.themes.definitions import Theme
from workbench.dashboard.text import label, token_label

STRIP_WIDTH = 16
"""Tokens per row of a token strip."""
CELL_PX = 46
"""Width of one token's cell in the strip, in pixels."""
STRIP_TEXT = 7
"""Characters of a token shown in its cell (the hover shows it whole)."""


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
    figure.update_layout(
        height=140 + 40 * len(grid), margin={"t": 30, "l": 10, "r": 10, "b": 10},
        xaxis={"title": "theme", "automargin": True}, yaxis={"title": "scenario", "automargin": True},
    )  # fmt: skip
    return figure


def _short(token: str) -> str:
    shown = token_label(token)
    return shown if len(token) <= STRIP_TEXT else token_label(token[: STRIP_TEXT - 1]) + "…"


def token_strip(
    tokens: pd.DataFrame,
    values: pd.Series,
    *,
    title: str,
    colour: str,
    signed: bool,
    top: float = 1.0,
    selected: int | None = None,
) -> go.Figure:
    """The transcript's tokens laid out in rows of square cells, each coloured by ``values`` (indexed by
    token position; grey where a token has no score). ``top`` is the value drawn in full colour (scores
    above it saturate); ``selected`` is outlined. Cells are scatter points carrying their position, so a
    click selects one; the hover shows the position, role, whole token and score."""
    shown = tokens["shown"] if "shown" in tokens else tokens["token_text"]
    positions = tokens["position"].astype(int).to_numpy()
    index = np.arange(len(tokens))
    x, y = index % STRIP_WIDTH, index // STRIP_WIDTH
    score = np.array([values.get(p, np.nan) for p in positions], dtype=float)
    scored = ~np.isnan(score)
    hover = [
        f"pos {p} · {label(role)}<br>{token_label(text)}<br>{'-' if np.isnan(v) else f'{v:.2f}'}"
        for p, role, text, v in zip(positions, tokens["role"], shown, score, strict=True)
    ]
    text = [_short(t) for t in shown]
    bound = float(np.nanmax(np.abs(score), initial=1.0)) if signed else top
    scale = [[0, "#2166ac"], [0.5, "#f7f7f7"], [1, "#b2182b"]] if signed else [[0, "#ffffff"], [1, colour]]
    outline = ["#111" if p == selected else "#ccc" for p in positions]
    width = [3 if p == selected else 1 for p in positions]

    def cells(mask: np.ndarray, marker: dict) -> go.Scatter:
        return go.Scatter(
            x=x[mask], y=y[mask], mode="markers+text", text=np.array(text, dtype=object)[mask],
            textfont={"size": 11}, customdata=positions[mask],
            hovertext=np.array(hover, dtype=object)[mask], hovertemplate="%{hovertext}<extra></extra>",
            marker={"symbol": "square", "size": CELL_PX - 4, "line": {"color": np.array(outline)[mask],
                    "width": np.array(width)[mask]}, **marker},
            showlegend=False, selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
        )  # fmt: skip

    figure = go.Figure([
        cells(~scored, {"color": "#eeeeee"}),
        cells(scored, {"color": score[scored], "colorscale": scale, "cmin": -bound if signed else 0, "cmax": bound,
                       "showscale": True, "colorbar": {"title": title, "thickness": 12}}),
    ])  # fmt: skip
    rows = max(1, -(-len(tokens) // STRIP_WIDTH))
    figure.update_layout(
        width=STRIP_WIDTH * CELL_PX + 140, height=CELL_PX * rows + 30, margin={"t": 10, "l": 10, "r": 10, "b": 10},
        xaxis={"visible": False, "range": [-0.6, STRIP_WIDTH - 0.4], "fixedrange": True},
        yaxis={"visible": False, "range": [rows - 0.5, -0.5], "fixedrange": True},
        dragmode=False, plot_bgcolor="white", clickmode="event+select",
    )  # fmt: skip
    return figure


def _cell(*parts: str, theme_id: str, themes: dict[str, Theme]) -> str:
    """A bar's label: the parts with the theme's name, escaped for plotly and wrapped onto lines."""
    theme = themes[theme_id].name if theme_id in themes else theme_id
    return wrap_label(" · ".join([parts[0], theme, *parts[1:]]))


def _rate_bars(name: str, y: list[str], rate: pd.Series, low: pd.Series, high: pd.Series) -> go.Bar:
    """One horizontal bar trace of rates with asymmetric (Wilson) error bars."""
    error = {"type": "data", "symmetric": False, "array": high - rate, "arrayminus": rate - low}
    return go.Bar(name=label(name), y=y, x=rate, error_x=error, orientation="h")


def _rate_layout(figure: go.Figure, title: str, rows: int) -> go.Figure:
    figure.update_layout(
        barmode="group", height=160 + 60 * rows, title=title, legend={"orientation": "h", "y": -0.15},
        xaxis={"tickformat": ".0%", "title": "flag rate (share of tokens flagged)", "rangemode": "tozero"},
        yaxis={"title": "cell", "automargin": True, "autorange": "reversed"}, margin={"l": 10, "r": 10},
    )  # fmt: skip
    return figure


def arm_rates_figure(compared: pd.DataFrame, themes: dict[str, Theme]) -> go.Figure:
    """Each condition's flag rate beside its control's, each arm with its own Wilson interval (the rows of
    ``condition_vs_control`` with ``audits.read_model.flags.arm_intervals``)."""
    cells = [
        _cell(r.scenario_id, r.condition, theme_id=r.theme_id, themes=themes) for r in compared.itertuples()
    ]
    bars = [
        _rate_bars("condition", cells, compared["rate"], compared["low"], compared["high"]),
        _rate_bars(
            "its control", cells, compared["control_rate"], compared["control_low"], compared["control_high"]
        ),
    ]
    return _rate_layout(go.Figure(bars), "Flag rate of each arm (95% Wilson)", len(cells))


def side_by_side_figure(pooled: pd.DataFrame, themes: dict[str, Theme]) -> go.Figure:
    """Pooled flag rates per (scenario, theme) of two or more ``arm``s, grouped, with Wilson intervals."""
    bars = []
    for arm, rows in pooled.groupby("arm", sort=False):
        cells = [_cell(r.scenario_id, theme_id=r.theme_id, themes=themes) for r in rows.itertuples()]
        bars.append(_rate_bars(arm, cells, rows["rate"], rows["low"], rows["high"]))
    cells = pooled[["scenario_id", "theme_id"]].drop_duplicates()
    return _rate_layout(go.Figure(bars), "Flag rate (95% Wilson)", len(cells))
