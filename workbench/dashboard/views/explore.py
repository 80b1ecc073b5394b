"""Explore: stress-test a claim interactively. Type a prompt or paste a chat, optionally let the
target reply, choose which tokens to verbalize (by role, the triage top-K, or picked one by one from the
transcript's tokens), and watch them being verbalized; explanations, fidelity and each explanation's
theme scores appear together. The form's inputs are bound to the URL. Each exploration is stored as an
ad-hoc campaign (no control), so it can be reviewed and reported like any other."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import streamlit as st

from audits.campaign_registry import register_campaign
from audits.campaign_spec import CampaignSpec, campaign_from_dict
from audits.errors import SpecError
from audits.reports.exports import stream_rows
from audits.runner import CampaignRunner, variant_transcript
from audits.variants import expand_variants
from nla.activations import tokenize_transcript
from nla.dtypes import torch_dtype
from nla.errors import NLAError
from nla.pipeline import Target, load_target
from workbench.dashboard import cached, queries
from workbench.dashboard.progress import streamlit_stage
from workbench.dashboard.state import hypothesis_note, store, theme_name, themes, untrained_banner
from workbench.dashboard.text import md_escape

st.title("Explore")
st.caption("Verbalize a prompt of your own. The run is saved as an ad-hoc campaign (tagged `explore`) "
           "that appears on every other page.")  # fmt: skip
s = store()
# Session key of the shown tokens: the chat they belong to and each token's position, role and text.
PREVIEW = "explore_preview"
TRANSCRIPT_PROBLEMS = {
    "too_long": "it does not fit the target's context",
    "target_empty": "the target's reply is empty",
}


def parse_chat(text: str) -> list[dict[str, str]]:
    """A pasted chat (JSON list of {role, content}, or {"messages": [...]}) or plain text as one user turn."""
    stripped = text.strip()
    if not stripped.startswith(("[", "{")):
        return [{"role": "user", "content": stripped}]
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as error:
        raise SpecError(
            f"pasted chat: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise SpecError(
            'pasted chat: give a JSON list of {"role": ..., "content": ...} or {"messages": [...]}'
        )
    return [{"role": m.get("role"), "content": m.get("content")} for m in messages]


def spec_data(form: dict[str, Any]) -> dict[str, Any]:
    """The ad-hoc campaign: one inline scenario, no control run."""
    chat = parse_chat(form["text"])
    reply = "generate" if form["reply"] and chat[-1]["role"] == "user" else "given"
    scenario = {
        "id": "explore-prompt", "version": 1, "title": "Ad-hoc exploration", "tags": ["explore"],
        "question": form["question"] or "What does the target represent here?", "themes": form["themes"] or ["evaluation_awareness"],
        "reply": reply, "messages": chat,
        "control": {"note": "Ad-hoc exploration: no control is run.", "messages": chat},
    }  # fmt: skip
    triage = {"triage": {"top_k": form["top_k"], "random": 0}} if form["top_k"] else {}
    picked = {"positions": form["positions"]} if form["positions"] else {}
    return {
        "name": form["name"], "description": f"explore: {form['question'] or 'ad-hoc exploration'}",
        "target": {"model": form["target"], "max_new_tokens": form["reply_tokens"]},
        "nla": {"checkpoint": form["checkpoint"]},
        "scenarios": {"inline": [scenario], "controls": False}, "themes": form["themes"],
        "tokens": {"roles": form["roles"], "max_per_transcript": form["cap"], **triage, **picked},
        "sampling": {"samples": form["samples"], "temperature": form["temperature"], "max_new_tokens": form["explanation_tokens"]},
    }  # fmt: skip


def _chat_of(form: dict[str, Any]) -> tuple[object, ...]:
    """What decides the transcript's tokens: picked positions are only valid for the same chat and target."""
    return form["text"], form["target"], form["reply"], form["reply_tokens"]


def explore_form() -> tuple[str, dict[str, Any]] | None:
    """The form, bound to the URL; ``("show" | "verbalize", values)`` once submitted."""
    preview = st.session_state.get(PREVIEW)
    tokens = {t["position"]: t for t in preview["tokens"]} if preview else {}
    with st.form("explore"):
        text = st.text_area("Prompt, or a chat as JSON", key="explore_text", height=140, bind="query-params",
                            placeholder='What are you hiding?   or   [{"role": "user", "content": "..."}]')  # fmt: skip
        question = st.text_input("What are you testing? (stored with the campaign)", key="explore_question",
                                 bind="query-params")  # fmt: skip
        left, right = st.columns(2)
        target = left.text_input("Target model", "embedded:smollm2-135m-instruct", key="explore_target",
                                 bind="query-params")  # fmt: skip
        checkpoint = right.text_input(
            "NLA checkpoint", "default", key="explore_checkpoint", bind="query-params"
        )
        reply = left.toggle("Let the target reply (when the chat ends with a user turn)", True, key="explore_reply",
                            bind="query-params")  # fmt: skip
        reply_tokens = right.number_input(
            "Reply tokens", 1, 512, 48, key="explore_reply_tokens", bind="query-params"
        )
        roles = left.multiselect("Verbalize tokens of", ["system", "user", "assistant"], ["user", "assistant"],
                                 key="explore_roles", bind="query-params")  # fmt: skip
        cap = right.number_input("At most tokens", 1, 256, 8, key="explore_cap", bind="query-params")
        top_k = left.number_input(
            "…or the triage top-K (0: off)", 0, 256, 0, key="explore_top_k", bind="query-params"
        )
        chosen = right.multiselect("Themes", sorted(themes()), ["evaluation_awareness"], key="explore_themes",
                                   format_func=theme_name, bind="query-params")  # fmt: skip
        positions = st.multiselect(
            "…or pick tokens (press Show tokens first)", list(tokens), key="explore_positions",
            format_func=lambda p: f"{p} · {tokens[p]['role']} · {tokens[p]['text']!r}",
            placeholder="Show tokens, then pick" if not tokens else "Choose tokens",
        )  # fmt: skip
        samples = left.number_input("Samples per token", 1, 16, 2, key="explore_samples", bind="query-params")
        temperature = right.number_input("Temperature", 0.0, 2.0, 1.0, 0.1, key="explore_temperature",
                                         bind="query-params")  # fmt: skip
        explanation_tokens = left.number_input("Explanation tokens", 8, 256, 48, key="explore_explanation_tokens",
                                               bind="query-params")  # fmt: skip
        name = right.text_input(
            "Save as campaign", f"explore-{datetime.now(UTC):%Y%m%d-%H%M%S}", key="explore_name"
        )
        show_col, run_col = st.columns(2)
        show = show_col.form_submit_button("Show tokens", icon=":material/visibility:")
        verbalize = run_col.form_submit_button("Verbalize", type="primary", icon=":material/play_arrow:")
    if not (show or verbalize):
        return None
    if not text.strip():
        st.error("Type a prompt or paste a chat first.")
        return None
    form = {"text": text, "question": question, "target": target, "checkpoint": checkpoint, "reply": reply,
            "reply_tokens": int(reply_tokens), "roles": roles, "cap": int(cap), "top_k": int(top_k),
            "themes": chosen, "samples": int(samples), "temperature": float(temperature),
            "explanation_tokens": int(explanation_tokens), "name": name, "positions": sorted(positions)}  # fmt: skip
    if verbalize and positions and preview["chat"] != _chat_of(form):
        st.error(
            "The chat or target changed since its tokens were shown: press Show tokens again to pick anew."
        )
        return None
    return ("show" if show else "verbalize"), form


@st.cache_resource(max_entries=1, show_spinner="Loading the target model…")
def target_model(ref: str, dtype: str, device: str, trust_remote_code: bool) -> Target:
    """The target, kept loaded for the next preview."""
    return load_target(ref, dtype=torch_dtype(dtype), device=device, trust_remote_code=trust_remote_code)


def transcript_tokens(spec: CampaignSpec) -> list[dict[str, Any]]:
    """The tokens a run of ``spec`` verbalizes from: its transcript as the runner makes it (a reply generated
    with the same settings and seed), templated by the target's tokenizer."""
    t = spec.target
    target = target_model(t.model, t.dtype, t.device, t.trust_remote_code)
    transcript, status = variant_transcript(target, expand_variants(spec, {})[0], spec)
    if status != "ok":
        raise SpecError(f"the chat gives no tokens to verbalize: {TRANSCRIPT_PROBLEMS[status]}")
    tokens = tokenize_transcript(target.tokenizer, transcript).tokens
    return [{"position": token.position, "role": token.role, "text": token.text} for token in tokens]


def show_tokens(form: dict[str, Any]) -> None:
    """Tokenize the chat (and let the target reply) so its tokens can be picked."""
    try:
        spec = campaign_from_dict(spec_data({**form, "positions": [], "top_k": 0}), {}, "exploration")
        with st.spinner("Templating the chat…"):
            tokens = transcript_tokens(spec)
    except (SpecError, NLAError, ValueError) as error:
        st.error(md_escape(str(error)), icon=":material/error:")
        return
    st.session_state[PREVIEW] = {"chat": _chat_of(form), "tokens": tokens}
    st.session_state.pop("explore_positions", None)
    st.rerun()


def run(form: dict[str, Any]) -> str | None:
    """Register and run the exploration with live progress. Errors are shown; a campaign registered before
    its run failed stays (re-run it from the Campaigns page once the cause is fixed)."""
    try:
        spec = campaign_from_dict(spec_data(form), {}, "exploration")
        register_campaign(s, spec)
        with st.status("Running the target and the NLA…", expanded=True) as status:
            result = CampaignRunner(s, spec.name, {}, stage=streamlit_stage).run()
            status.update(label=f"Run {result.run_id} {result.status}: {result.new_explanations} explanations",
                          state="complete")  # fmt: skip
    except (SpecError, NLAError, ValueError) as error:
        st.error(md_escape(str(error)), icon=":material/error:")
        return None
    return spec.name


def explanation_table(name: str) -> pd.DataFrame:
    """The exploration's explanations, one row per sample, with each detector's theme score beside it."""
    rows = pd.DataFrame([row for chunk in stream_rows(s, name, "explanations") for row in chunk])
    if rows.empty:
        return rows
    scores = queries.theme_score_columns(queries.explanation_theme_scores(s, rows["explanation_id"].tolist()))
    scores.columns = [f"{theme_name(theme_id)} ({detector})" for theme_id, detector in scores.columns]
    table = rows.rename(columns={"sample_index": "sample", "fve": "FVE", "text": "explanation"})
    table = table[
        ["explanation_id", "position", "token", "role", "sample", "status", "FVE", "cos", "explanation"]
    ]
    return table.join(scores, on="explanation_id")


def results(name: str) -> None:
    untrained_banner(queries.fidelity_summary(s, name)["stage"] == "init")
    hypothesis_note()
    table = explanation_table(name)
    flags = cached.raised_flags(s, name)
    st.subheader("Explanations and theme scores", anchor=False)
    if table.empty:
        st.info("No explanation is stored for this exploration: run it again from the Campaigns page.")
    else:
        st.dataframe(table.drop(columns="explanation_id"), hide_index=True, key="explore_explanations",
                     column_config={c: st.column_config.NumberColumn(format="%.2f") for c in table.columns
                                    if table[c].dtype.kind == "f"})  # fmt: skip
        st.caption(
            "Theme scores: each detector's score of the explanation (0 to 1); a flag needs agreeing samples."
        )
    st.subheader(f"Raised flags ({len(flags)})", anchor=False)
    if flags.empty:
        st.caption("No theme flag raised on these tokens.")
    else:
        st.dataframe(flags[["flag_id", "theme_id", "position", "token_text", "score", "fve", "low_fidelity", "explanation"]],
                     hide_index=True, key="explore_flags")  # fmt: skip
    transcript = int(queries.transcript_list(s, name)["transcript_id"].iloc[0])
    st.page_link("views/transcript.py", label="Open in Transcript (token strip, samples, evidence)", icon=":material/forum:",
                 query_params={"campaign": name, "transcript": str(transcript)})  # fmt: skip


submitted = explore_form()
if submitted is not None:
    action, values = submitted
    if action == "show":
        show_tokens(values)
    elif (done := run(values)) is not None:
        st.session_state["explored"] = done
if st.session_state.get("explored") in queries.campaign_names(s):
    results(st.session_state["explored"])
