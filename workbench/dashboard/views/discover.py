"""Discover: the terms one arm's explanations (or replies, or logit lens) use far more than another arm's,
found without a theme (``audits.discovery``). Each term opens the explanations and tokens that carry it,
with what the visible text and the logit lens say beside it: a lead to verify, not a finding."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from audits.discovery import GROUPS, SOURCES, Discovery, discover
from workbench.dashboard.cached import Version, data_version
from workbench.dashboard.state import hypothesis_note, pick_campaign, store
from workbench.dashboard.text import md_escape

SOURCE_LABELS = {"explanations": "NLA explanations", "replies": "visible replies", "logit-lens": "logit lens"}


@st.cache_data(ttl=3600, max_entries=32, show_spinner=False)
def _discover(_store, url: str, version: Version, campaign: str, **options) -> Discovery:
    return discover(_store, campaign, **options)


def _arms(s, campaign: str) -> list[str]:
    return _discover(s, str(s.url), data_version(s), campaign, source="replies", min_transcripts=1).arms


st.title("Discover")
s = store()
campaign = pick_campaign(s)
st.caption(
    "Terms over-represented in one arm's documents against another's: weighted log-odds with an informative "
    "Dirichlet prior, z-scored (Monroe, Colaresi & Quinn 2008), terms carried by at least two transcripts, the "
    "comparison arm's fixed phrasing left out. No theme is needed: this is where a hidden behaviour nobody wrote "
    "a theme for can show."
)
hypothesis_note()
arms = _arms(s, campaign)
if len(arms) < 2:
    st.info(
        f"Campaign {md_escape(campaign)} has no transcripts in two arms yet. Discovery compares target arms "
        "(`arms:` in the spec: a fine-tune and its base, or the base reading the fine-tune's transcripts) or, "
        "in a campaign without arms, each scenario against its paired control. Run the campaign first."
    )
    st.stop()
with st.sidebar:
    st.subheader("Compare", anchor=False)
    arm = st.selectbox("Arm", arms, index=0, key="arm", bind="query-params")
    against = st.selectbox("Against", [a for a in arms if a != arm], key="against", bind="query-params")
    source = st.radio("Documents", SOURCES, format_func=SOURCE_LABELS.get, key="source", bind="query-params")
    positions = st.radio("Tokens", list(GROUPS), key="positions", bind="query-params",
                         help="before-reply: the prompt, the reply's header and its first tokens (the model has said "
                              "nothing yet); in-reply: the rest of the reply.")  # fmt: skip
    top = st.slider("Terms", 5, 50, 20, key="top", bind="query-params")
    include_low = st.toggle("Include low-fidelity explanations (FVE < 0)", False, key="low", bind="query-params")

found = _discover(
    s, str(s.url), data_version(s), campaign, arm=arm, against=against, source=source, positions=positions,
    top=top, include_low_fidelity=include_low,
)  # fmt: skip
c1, c2, c3 = st.columns(3)
c1.metric(f"{arm}: documents", f"{found.n_docs}", f"{found.n_transcripts} transcripts", delta_color="off")
c2.metric(f"{against}: documents", f"{found.n_docs_other}", f"{found.n_transcripts_other} transcripts", delta_color="off")
c3.metric("terms listed", len(found.table))
if found.empty_reason:
    st.info(f"Nothing discovered: {md_escape(found.empty_reason)}.", icon=":material/info:")
    st.stop()


def _link(row: pd.Series) -> str:
    query = {"campaign": campaign, "transcript": int(row["transcript_id"])}
    if row.get("position") == row.get("position") and row.get("position") is not None:
        query["pos"] = int(row["position"])
    return "./transcript?" + urlencode(query)


first = found.evidence.groupby("term", sort=False).first()
table = pd.DataFrame({
    "term": found.table["term"], "z": found.table["z"],
    f"in {arm}": [f"{c} ({s_:.0%})" for c, s_ in zip(found.table["count"], found.table["share"], strict=True)],
    f"in {against}": [f"{c} ({s_:.0%})" for c, s_ in zip(found.table["count_other"], found.table["share_other"], strict=True)],
    "transcripts": found.table["transcripts"],
    "visible text": [f"{v} of {t}" for v, t in zip(found.table["visible"], found.table["transcripts"], strict=True)],
    "logit lens": [f"{n} tokens" if source == "explanations" else "-" for n in found.table["lens"]],
    "open": [_link(first.loc[t]) if t in first.index else None for t in found.table["term"]],
})  # fmt: skip
st.dataframe(
    table, hide_index=True, key="terms",
    column_config={"z": st.column_config.NumberColumn(format="%.2f"),
                   "open": st.column_config.LinkColumn("first carrier", display_text="open transcript")},
)  # fmt: skip
st.caption(
    f"**visible text**: of the transcripts carrying the term, how many show it in the prompt or reply (a term the "
    f"text already shows is read, not discovered). **logit lens**: carrying tokens whose logit-lens top tokens "
    f"contain it (an independent reading of the same activation). Left out as the fixed phrasing of "
    f"{md_escape(against)}: {md_escape(', '.join(found.scaffolding[:12]) or 'nothing')}."
)

st.subheader("Evidence", anchor=False)
term = st.selectbox("Term", list(found.table["term"]), key="term", bind="query-params")
row = found.standing(term)
carriers = found.evidence[found.evidence["term"] == term]
st.markdown(
    f"**{md_escape(term)}**: z {row['z']:.2f}; {row['count']} of {found.n_docs} {md_escape(arm)} documents against "
    f"{row['count_other']} of {found.n_docs_other} {md_escape(against)} documents; {row['transcripts']} transcripts; "
    f"visible in {row['visible']} of them."
)
others = [src for src in SOURCES if src != source]
support = []
for other in others:
    check = _discover(s, str(s.url), data_version(s), campaign, arm=arm, against=against, source=other,
                      positions=positions if other != "replies" else "all", top=200, include_low_fidelity=include_low)  # fmt: skip
    standing = check.standing(term)
    support.append(f"{SOURCE_LABELS[other]}: " + (f"z {standing['z']:.2f}" if standing else "not over-represented"))
st.caption("The same term in the other channels, same arms: " + md_escape("; ".join(support)) + ".")
shown = pd.DataFrame({
    "transcript": carriers["transcript_id"], "position": carriers["position"], "tokens": carriers["group"],
    "text": carriers["text"], "FVE": carriers["fve"], "open": [_link(r) for _, r in carriers.iterrows()],
})  # fmt: skip
st.dataframe(
    shown, hide_index=True, key="carriers",
    column_config={"FVE": st.column_config.NumberColumn(format="%.2f"),
                   "open": st.column_config.LinkColumn("transcript", display_text="open")},
)  # fmt: skip
