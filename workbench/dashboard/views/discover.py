"""Discover: the terms one arm's explanations (or replies, or logit lens) use far more than another arm's,
found without a theme (``audits.discovery``). Each term opens the explanations and tokens that carry it,
with what the visible text and the logit lens say beside it: a lead to verify, not a finding. The
reviewer confirms, dismisses or marks it for follow-up with a reason (appended, as on Review)."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from audits.discovery import GROUPS, SOURCES, Discovery, discover
from audits.errors import SpecError
from audits.read_model.leads import CHANNEL_LABELS as SOURCE_LABELS
from audits.review import add_term_review, term_review_history
from workbench.dashboard import cached
from workbench.dashboard.cached import Version, data_version
from workbench.dashboard.decisions import decision_form
from workbench.dashboard.state import hypothesis_note, pick_campaign, store
from workbench.dashboard.text import md_escape


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

if "flash" in st.session_state:
    st.success(st.session_state.pop("flash"), icon=":material/check_circle:")
listed = cached.leads(s, campaign, arm=arm, against=against, source=source, positions=positions, top=top,
                      include_low_fidelity=include_low)  # fmt: skip
found = listed.discovery
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
    **{f"z in {SOURCE_LABELS[o]}": listed.table[f"z_{o}"] for o in listed.other_sources},
    "review": listed.table["review_state"],
    "open": [_link(first.loc[t]) if t in first.index else None for t in found.table["term"]],
})  # fmt: skip
st.dataframe(
    table, hide_index=True, key="terms",
    column_config={"z": st.column_config.NumberColumn(format="%.2f"),
                   **{f"z in {SOURCE_LABELS[o]}": st.column_config.NumberColumn(format="%.2f") for o in listed.other_sources},
                   "open": st.column_config.LinkColumn("first carrier", display_text="open transcript")},
)  # fmt: skip
st.caption(
    f"**visible text**: of the transcripts carrying the term, how many show it in the prompt or reply (a term the "
    f"text already shows is read, not discovered). **logit lens**: carrying tokens whose logit-lens top tokens "
    f"contain it (an independent reading of the same activation). **z in** another channel: the same term's z "
    f"there, same arms (empty: not over-represented). **review**: the latest decision on the term. Left out as the fixed phrasing of "
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
lead = listed.table[listed.table["term"] == term].iloc[0]
support = [
    f"{SOURCE_LABELS[o]}: " + (f"z {lead[f'z_{o}']:.2f}" if pd.notna(lead[f"z_{o}"]) else "not over-represented")
    for o in listed.other_sources
]
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


st.subheader("Decision on this term", anchor=False)
history = term_review_history(s, campaign)
mine = history[(history["term"] == term) & (history["source"] == source) & (history["arm"] == arm)
               & (history["against"] == against)] if not history.empty else history  # fmt: skip
if lead["review_state"] == "open":
    st.caption("No decision yet. Confirm it once the evidence above (explanations, their fidelity, the other "
               "channels, the visible text) supports it; dismiss it when it is the text, the templates or noise.")  # fmt: skip
else:
    st.markdown(f"Current: **{md_escape(lead['review_state'])}** by {md_escape(lead['reviewer'])}: "
                f"{md_escape(lead['review_reason'])}")  # fmt: skip
reviewer = st.text_input("Reviewer name", key="reviewer", persist_state="session")
decided = decision_form("term_decision", reason_key=f"reason_term_{term}", buttons="term_decide")
if decided is not None:
    decision, reason = decided
    try:
        add_term_review(s, campaign, term, source=source, arm=arm, against=against, author=reviewer or "",
                        decision=decision, reason=reason)  # fmt: skip
    except SpecError as error:
        st.error(md_escape(str(error)), icon=":material/error:")
    else:
        st.session_state["flash"] = f"Recorded **{decision}** on term “{md_escape(term)}”."
        st.rerun()
if not mine.empty:
    st.dataframe(mine.sort_values("created_at", ascending=False), hide_index=True, key="term_history",
                 column_order=["created_at", "decision", "author", "reason"],
                 column_config={"created_at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss")})  # fmt: skip
