"""Transcript: the messages in order (code blocks as code), a token strip coloured by a named, stored score
(flag score, best detector score, or triage z-score) where a click selects the token, and for the selected
token every explanation sample with its status, fidelity (low or negative FVE marked), each detector's
score beside its threshold, the evidence span highlighted, and the logit lens of the same activation (with the
words a sample shares with it), beside the target's visible text."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from audits.read_model.explanations import nla_setting
from audits.read_model.flags import token_flags
from audits.read_model.lens import LensReading, shared_words, token_lens
from audits.read_model.transcripts import (
    explanation_theme_scores,
    messages,
    token_explanations,
    token_scores,
    transcript_list,
)
from workbench.dashboard.charts import token_strip
from workbench.dashboard.state import (
    fve_badge,
    hypothesis_note,
    linked_select,
    pick_campaign,
    store,
    theme_name,
    themes,
    untrained_banner,
)
from workbench.dashboard.text import highlighted, md_escape, message_blocks, visible

KINDS = {
    "flag": "Flag score",
    "detector": "Detector score",
    "triage": "Triage z-score",
}
MEANING = {
    "flag": "the flag rule's score: the mean detector score of this token's explanation samples that reached "
    "their threshold, 0 when none did (a flag is raised when enough samples agree and neighbours hit too)",
    "detector": "the highest score any detector gave one of this token's explanation samples (0 to 1); full "
    "colour at the detector's threshold, where a sample starts counting toward a flag",
    "triage": "the activation's projection on the theme's direction in standard deviations, computed for every "
    "content token before any explanation (red above the mean, blue below)",
}

st.title("Transcript")
s = store()
campaign = pick_campaign(s)
transcripts = transcript_list(s, campaign)
if transcripts.empty:
    st.info("This campaign has no transcripts yet: start its run on the Campaigns page.")
    st.stop()
setting = nla_setting(s, campaign)
untrained_banner(setting.untrained)
labels = {
    int(r.transcript_id): f"{r.scenario_id} · {r.cell} · {r.raised_flags} flag(s) · #{r.transcript_id}"
    for r in transcripts.itertuples()
}
transcript = linked_select("Transcript", list(labels), "transcript", labels.get, st.sidebar)
tokens, scores = token_scores(s, campaign, transcript, setting)
by_position = tokens.set_index("token_position_id")["position"]


def _colourings() -> list[str]:
    """``kind:theme`` choices with scores in this transcript: flagged themes and stored kinds first."""
    raised = scores[scores["raised"].astype(bool)]["theme_id"].value_counts()
    best = scores[scores["kind"] == "detector"].groupby("theme_id")["score"].max()
    theme_ids = sorted(scores["theme_id"].unique(), key=lambda t: (-raised.get(t, 0), -best.get(t, 0.0), t))
    kinds = [k for k in KINDS if (scores["kind"] == k).any()]
    if not len(raised) and "flag" in kinds:  # every flag score is 0 here: lead with what the samples scored
        kinds.remove("flag")
        kinds.append("flag")
    return [
        f"{kind}:{t}"
        for kind in kinds
        for t in theme_ids
        if ((scores["kind"] == kind) & (scores["theme_id"] == t)).any()
    ]


def _colouring_label(value: str) -> str:
    kind, theme_id = value.split(":", 1)
    return f"{KINDS[kind]} · {theme_name(theme_id)}"


def _thresholds(theme_id: str) -> dict[str, float]:
    return setting.thresholds.get(theme_id, {})


def _threshold_text(theme_id: str) -> str:
    found = _thresholds(theme_id)
    return ", ".join(f"{d} {t:.2f}" for d, t in sorted(found.items())) or "not recorded"


def strip() -> str | None:
    """The token strip; returns the theme it is coloured by. A click on a token selects it below."""
    colourings = _colourings()
    if not colourings:
        st.caption("No scores yet for this transcript (themes are scored after verbalization).")
        return None
    colouring = linked_select("Colour tokens by", colourings, "colour", _colouring_label)
    kind, theme_id = colouring.split(":", 1)
    chosen = scores[(scores["kind"] == kind) & (scores["theme_id"] == theme_id)]
    values = pd.Series(
        chosen["score"].to_numpy(), index=chosen["token_position_id"].map(by_position).to_numpy()
    )
    theme = themes().get(theme_id)
    top = max(_thresholds(theme_id).values(), default=1.0) if kind == "detector" else 1.0
    _select_clicked(st.session_state.get("token_strip"))
    st.plotly_chart(
        token_strip(tokens, values, title=KINDS[kind].split()[0].lower() if kind != "triage" else "z",
                    colour=theme.colour if theme else "#d62728", signed=kind == "triage", top=top,
                    selected=_selected()),
        key="token_strip", on_select="rerun", selection_mode="points", config={"displayModeBar": False},
    )  # fmt: skip
    st.caption(
        f"**{md_escape(_colouring_label(colouring))}**: {MEANING[kind]}. Detector thresholds for "
        f"{md_escape(theme_name(theme_id))}: {md_escape(_threshold_text(theme_id))}. Grey: not scored. "
        "Click a token to select it."
    )
    return theme_id


def _selected() -> int | None:
    wanted = st.query_params.get("pos", st.session_state.get("last_pos"))
    return int(wanted) if wanted is not None and str(wanted).lstrip("-").isdigit() else None


def _select_clicked(event) -> None:
    """Make a clicked token the selected one, before the token picker is drawn (once per click: a later
    pick in the picker stands). The strip's selection is read from the session, so the outline drawn on
    the strip already follows the click."""
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    if not points:
        return
    data = points[0].get("customdata")  # the token's position (a list or mapping if plotly nests it)
    clicked = int(
        data[0] if isinstance(data, list) else next(iter(data.values())) if isinstance(data, dict) else data
    )
    if st.session_state.get("strip_click") == (transcript, clicked):
        return
    st.session_state["strip_click"] = (transcript, clicked)
    if clicked in set(tokens.loc[tokens["activation_key"].notna(), "position"].astype(int)):
        st.session_state["pos"] = clicked
        st.query_params["pos"] = st.session_state["last_pos"] = str(clicked)
    else:
        st.session_state["unexplained_click"] = clicked


def conversation() -> None:
    for m in messages(s, transcript).itertuples():
        with st.chat_message("assistant" if m.role == "assistant" else "user",
                             avatar=":material/settings:" if m.role == "system" else None):  # fmt: skip
            st.caption(f"{m.role} · message {m.message_index}")
            for block in message_blocks(m.content):
                if block.code:
                    st.code(block.text, language=block.language, wrap_lines=True)
                else:
                    st.markdown(md_escape(block.text))


def token_detail(theme_id: str | None) -> None:
    explained = tokens[tokens["activation_key"].notna()]
    clicked = st.session_state.pop("unexplained_click", None)
    if clicked is not None:
        st.info(f"Token {clicked} was not verbalized (the campaign's token selection left it out).")
    if explained.empty:
        st.info("No token of this transcript has been verbalized yet.")
        return
    raised = scores[(scores["kind"] == "flag") & scores["raised"].astype(bool)]
    flagged = set(raised["token_position_id"])
    names = {int(r.position): f"pos {r.position} · “{visible(r.shown)}” · {r.role}"
             + (" · flagged" if r.token_position_id in flagged else "") for r in explained.itertuples()}  # fmt: skip
    position = linked_select("Token", list(names), "pos", names.get)
    token = explained[explained["position"] == position].iloc[0]
    st.caption(f"{token['role']} · message {token['message_index']} · selected by {token['selection']}")
    verdicts(int(token["token_position_id"]))
    lens = token_lens(s, campaign, int(token["token_position_id"]))
    for r in lens:
        st.caption(
            md_escape(
                f"Logit lens, layer {r.layer} (the target's own prediction from this activation): {r.label()}"
            )
        )
    if not lens:
        st.caption("Logit lens: not stored for this token (a campaign run without it).")
    samples(token["activation_key"], theme_id, lens)


def verdicts(token_position_id: int) -> None:
    flags = token_flags(s, campaign, token_position_id)
    for f in flags[flags["raised"].astype(bool)].itertuples():
        seen = "in the reply" if f.in_reply else "in the prompt" if f.in_prompt else None
        line = (f"**{md_escape(theme_name(f.theme_id))}** flag {f.flag_id}: score {f.score:.2f}, "
                f"{f.n_hits}/{f.n_samples} samples agree")  # fmt: skip
        line += " · low fidelity" if f.low_fidelity else ""
        if seen:
            st.markdown(f"{line} · also visible {seen}: “{md_escape(f.visible_evidence or '')}”")
        else:
            st.markdown(f"{line} · **unverbalized**: the visible text does not express it")


def _detector_line(theme_id: str, rows: pd.DataFrame) -> str:
    """``Theme: semantic 0.21 / 0.35 · lexicon 0.00 / 0.50`` (score / threshold per detector)."""
    limits = _thresholds(theme_id)
    parts = []
    for r in rows.sort_values("detector").itertuples():
        limit = limits.get(r.detector)
        hit = limit is not None and r.score >= limit
        parts.append(f"{r.detector} {r.score:.2f}" + (f" / threshold {limit:.2f}" if limit is not None else "")
                     + (" (hit)" if hit else ""))  # fmt: skip
    return f"{theme_name(theme_id)}: " + " · ".join(parts)


def samples(activation_key: str, colour_theme: str | None, lens: list[LensReading]) -> None:
    rows = token_explanations(s, activation_key, setting)
    scored = explanation_theme_scores(s, rows["explanation_id"].tolist())
    for e in rows.itertuples():
        mine = scored[scored["explanation_id"] == e.explanation_id]
        with st.container(border=True):
            fve = "-" if e.fve is None or math.isnan(e.fve) else f"{e.fve:.2f}"
            cos = "-" if e.cos is None or math.isnan(e.cos) else f"{e.cos:.2f}"
            st.caption(
                f"sample {e.sample_index} · {e.status} · AR FVE {fve} · cos {cos} · {e.n_tokens} tokens"
            )
            theme = themes().get(colour_theme) if colour_theme else None
            badge = fve_badge(None if fve == "-" else e.fve, theme.flag.min_fve if theme else None)
            if e.status == "ok" and badge:
                st.markdown(badge)
            text = e.text or e.raw_output
            best = _best_span(mine, colour_theme)
            if e.text and best is not None:
                st.markdown(highlighted(text, best["evidence_start"], best["evidence_end"]))
            else:
                st.markdown(md_escape(text))
            agree = shared_words(lens, e.text)
            if agree:
                st.caption(md_escape("logit lens agrees: " + ", ".join(agree)))
            if len(mine):
                shown = [
                    t
                    for t, rows_ in mine.groupby("theme_id")
                    if t == colour_theme or rows_["score"].max() > 0
                ]
                lines = [
                    _detector_line(t, mine[mine["theme_id"] == t])
                    for t in sorted(shown, key=lambda t: t != colour_theme)
                ]
                st.caption(md_escape("\n".join(lines[:6])) if lines else "no theme scored above 0")  # fmt: skip


def _best_span(mine: pd.DataFrame, theme_id: str | None) -> pd.Series | None:
    """The evidence span to highlight: where the best-scoring detector that reached its threshold found the
    strip's theme (else any theme); None when no detector reached its threshold (a low score's span is not
    evidence, so it is not highlighted)."""
    if mine.empty:  # no theme scored this sample (a campaign without themes)
        return None
    limits = [_thresholds(t).get(d) for t, d in zip(mine["theme_id"], mine["detector"], strict=True)]
    hits = mine[
        [limit is not None and score >= limit for score, limit in zip(mine["score"], limits, strict=True)]
    ]
    if theme_id is not None and (hits["theme_id"] == theme_id).any():
        hits = hits[hits["theme_id"] == theme_id]
    hits = hits.dropna(subset=["evidence_start", "evidence_end"]).sort_values("score", ascending=False)
    return hits.iloc[0] if len(hits) else None


colour_theme = strip()
left, right = st.columns([1, 1])
with left:
    st.subheader("Conversation", anchor=False)
    conversation()
with right:
    st.subheader("Explanations", anchor=False)
    hypothesis_note()
    token_detail(colour_theme)
