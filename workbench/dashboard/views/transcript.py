"""Transcript: the messages in order, a token strip coloured by triage or theme score, and for a
selected token every explanation sample with its status, fidelity, theme scores and evidence, beside
the target's visible text for cross-checking."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from workbench.dashboard import queries
from workbench.dashboard.charts import token_strip
from workbench.dashboard.state import (
    hypothesis_note,
    linked_select,
    pick_campaign,
    store,
    theme_name,
    themes,
    untrained_banner,
)
from workbench.dashboard.text import highlighted, md_escape

st.title("Transcript")
s = store()
campaign = pick_campaign(s)
transcripts = queries.transcript_list(s, campaign)
if transcripts.empty:
    st.info("This campaign has no transcripts yet: start its run on the Campaigns page.")
    st.stop()
fidelity = queries.fidelity_summary(s, campaign)
untrained_banner(fidelity["stage"] == "init")
labels = {
    int(
        r.transcript_id
    ): f"{r.scenario_id} · {'control' if r.is_control else r.condition} · {r.raised_flags} flags"
    for r in transcripts.itertuples()
}
transcript = linked_select("Transcript", list(labels), "transcript", labels.get, st.sidebar)
tokens, scores = queries.token_scores(s, campaign, transcript)
raised_per_theme = scores[scores["raised"].astype(bool)]["theme_id"].value_counts()
theme_ids = sorted(
    scores["theme_id"].unique(), key=lambda t: (-raised_per_theme.get(t, 0), t)
)  # flagged first
kinds = ["flag", "triage"] if (scores["kind"] == "flag").any() else ["triage", "flag"]  # scored first
colourings = [f"{kind}:{t}" for kind in kinds for t in theme_ids]


def _colouring_label(value: str) -> str:
    kind, theme_id = value.split(":", 1)
    return f"{'Theme score' if kind == 'flag' else 'Triage z-score'}: {theme_name(theme_id)}"


def strip() -> None:
    if not colourings:
        st.caption("No scores yet for this transcript (themes are scored after verbalization).")
        return
    colouring = st.selectbox("Colour tokens by", colourings, key="colour", bind="query-params",
                             format_func=_colouring_label)  # fmt: skip
    kind, theme_id = colouring.split(":", 1)
    chosen = scores[(scores["kind"] == kind) & (scores["theme_id"] == theme_id)]
    by_position = tokens.set_index("token_position_id")["position"]
    values = pd.Series(
        chosen["score"].to_numpy(), index=chosen["token_position_id"].map(by_position).to_numpy()
    )
    theme = themes().get(theme_id)
    st.plotly_chart(
        token_strip(tokens, values, title="z" if kind == "triage" else "score",
                    colour=theme.colour if theme else "#d62728", signed=kind == "triage"),
        key="token_strip",
    )  # fmt: skip


def conversation() -> None:
    for m in queries.messages(s, transcript).itertuples():
        with st.chat_message("assistant" if m.role == "assistant" else "user",
                             avatar=":material/settings:" if m.role == "system" else None):  # fmt: skip
            st.caption(f"{m.role} · message {m.message_index}")
            st.markdown(md_escape(m.content))


def token_detail() -> None:
    explained = tokens[tokens["activation_key"].notna()]
    if explained.empty:
        st.info("No token of this transcript has been verbalized yet.")
        return
    raised = scores[(scores["kind"] == "flag") & scores["raised"].astype(bool)]
    flagged = set(raised["token_position_id"])
    names = {int(r.position): f"pos {r.position} · {r.token_text!r}" + (" · flagged" if r.token_position_id in flagged else "")
             for r in explained.itertuples()}  # fmt: skip
    position = linked_select("Token", list(names), "pos", names.get)
    token = explained[explained["position"] == position].iloc[0]
    st.caption(f"{token['role']} · message {token['message_index']} · selected by {token['selection']}")
    verdicts(int(token["token_position_id"]))
    samples(token["activation_key"])


def verdicts(token_position_id: int) -> None:
    flags = queries.token_flags(s, campaign, token_position_id)
    for f in flags[flags["raised"].astype(bool)].itertuples():
        seen = "in the reply" if f.in_reply else "in the prompt" if f.in_prompt else None
        line = f"**{md_escape(theme_name(f.theme_id))}** flag {f.flag_id}: score {f.score:.2f}, {f.n_hits}/{f.n_samples} samples"
        line += " · low fidelity" if f.low_fidelity else ""
        if seen:
            st.markdown(f"{line} · also visible {seen}: “{md_escape(f.visible_evidence or '')}”")
        else:
            st.markdown(f"{line} · **unverbalized**: the visible text does not express it")


def samples(activation_key: str) -> None:
    rows = queries.token_explanations(s, activation_key, fidelity["checkpoint"])
    scored = queries.explanation_theme_scores(s, rows["explanation_id"].tolist())
    for e in rows.itertuples():
        with st.container(border=True):
            fve = "-" if e.fve is None or math.isnan(e.fve) else f"{e.fve:.2f}"
            cos = "-" if e.cos is None or math.isnan(e.cos) else f"{e.cos:.2f}"
            st.caption(
                f"sample {e.sample_index} · {e.status} · AR FVE {fve} · cos {cos} · {e.n_tokens} tokens"
            )
            mine = scored[scored["explanation_id"] == e.explanation_id].sort_values("score", ascending=False)
            best = mine.iloc[0] if len(mine) else None
            text = e.text or e.raw_output
            if best is not None and e.text and best["score"] > 0:
                st.markdown(highlighted(text, best["evidence_start"], best["evidence_end"]))
            else:
                st.markdown(md_escape(text))
            if len(mine):
                top = mine[mine["score"] > 0].head(6)
                st.caption(" · ".join(f"{theme_name(r.theme_id)} ({r.detector}) {r.score:.2f}" for r in top.itertuples())
                           or "no theme scored above 0")  # fmt: skip


strip()
left, right = st.columns([1, 1])
with left:
    st.subheader("Conversation", anchor=False)
    conversation()
with right:
    st.subheader("Explanations", anchor=False)
    hypothesis_note()
    token_detail()
