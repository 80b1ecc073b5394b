"""Explore: stress-test a claim interactively. Type a prompt or paste a chat, optionally let the
target reply, choose which tokens to verbalize (by role, or the triage top-K), and watch them being
verbalized; explanations, fidelity and theme scores appear together. Each exploration is stored as an
ad-hoc campaign (no control), so it can be reviewed and reported like any other."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import streamlit as st

from audits.campaign_spec import campaign_from_dict
from audits.errors import SpecError
from audits.reports.exports import stream_rows
from audits.runner import CampaignRunner, register_campaign
from nla.errors import NLAError
from workbench.dashboard import cached, queries
from workbench.dashboard.progress import streamlit_stage
from workbench.dashboard.state import hypothesis_note, store, theme_name, themes, untrained_banner
from workbench.dashboard.text import md_escape

st.title("Explore")
st.caption("Verbalize a prompt of your own. The run is saved as an ad-hoc campaign (tagged `explore`) "
           "that appears on every other page.")  # fmt: skip
s = store()


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
    return {
        "name": form["name"], "description": f"explore: {form['question'] or 'ad-hoc exploration'}",
        "target": {"model": form["target"], "max_new_tokens": form["reply_tokens"]},
        "nla": {"checkpoint": form["checkpoint"]},
        "scenarios": {"inline": [scenario], "controls": False}, "themes": form["themes"],
        "tokens": {"roles": form["roles"], "max_per_transcript": form["cap"], **triage},
        "sampling": {"samples": form["samples"], "temperature": form["temperature"], "max_new_tokens": form["explanation_tokens"]},
    }  # fmt: skip


def explore_form() -> dict[str, Any] | None:
    with st.form("explore"):
        text = st.text_area("Prompt, or a chat as JSON", key="explore_text", height=140,
                            placeholder='What are you hiding?   or   [{"role": "user", "content": "..."}]')  # fmt: skip
        question = st.text_input("What are you testing? (stored with the campaign)", key="explore_question")
        left, right = st.columns(2)
        target = left.text_input("Target model", "embedded:smollm2-135m-instruct", key="explore_target")
        checkpoint = right.text_input("NLA checkpoint", "default", key="explore_checkpoint")
        reply = left.toggle(
            "Let the target reply (when the chat ends with a user turn)", True, key="explore_reply"
        )
        reply_tokens = right.number_input("Reply tokens", 1, 512, 48, key="explore_reply_tokens")
        roles = left.multiselect("Verbalize tokens of", ["system", "user", "assistant"], ["user", "assistant"],
                                 key="explore_roles")  # fmt: skip
        cap = right.number_input("At most tokens", 1, 256, 8, key="explore_cap")
        top_k = left.number_input("…or the triage top-K (0: off)", 0, 256, 0, key="explore_top_k")
        chosen = right.multiselect("Themes", sorted(themes()), ["evaluation_awareness"], key="explore_themes",
                                   format_func=theme_name)  # fmt: skip
        samples = left.number_input("Samples per token", 1, 16, 2, key="explore_samples")
        temperature = right.number_input("Temperature", 0.0, 2.0, 1.0, 0.1, key="explore_temperature")
        explanation_tokens = left.number_input(
            "Explanation tokens", 8, 256, 48, key="explore_explanation_tokens"
        )
        name = right.text_input(
            "Save as campaign", f"explore-{datetime.now(UTC):%Y%m%d-%H%M%S}", key="explore_name"
        )
        if not st.form_submit_button("Verbalize", type="primary", icon=":material/play_arrow:"):
            return None
    if not text.strip():
        st.error("Type a prompt or paste a chat first.")
        return None
    return {"text": text, "question": question, "target": target, "checkpoint": checkpoint, "reply": reply,
            "reply_tokens": int(reply_tokens), "roles": roles, "cap": int(cap), "top_k": int(top_k),
            "themes": chosen, "samples": int(samples), "temperature": float(temperature),
            "explanation_tokens": int(explanation_tokens), "name": name}  # fmt: skip


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


def results(name: str) -> None:
    untrained_banner(queries.fidelity_summary(s, name)["stage"] == "init")
    hypothesis_note()
    rows = [row for chunk in stream_rows(s, name, "explanations") for row in chunk]
    flags = cached.raised_flags(s, name)
    st.subheader("Explanations", anchor=False)
    st.dataframe(
        [{"position": r["position"], "token": r["token"], "role": r["role"], "sample": r["sample_index"],
          "status": r["status"], "FVE": r["fve"], "cos": r["cos"], "explanation": r["text"]} for r in rows],
        hide_index=True, key="explore_explanations",
        column_config={"FVE": st.column_config.NumberColumn(format="%.2f"), "cos": st.column_config.NumberColumn(format="%.2f")},
    )  # fmt: skip
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
    done = run(submitted)
    if done is not None:
        st.session_state["explored"] = done
if st.session_state.get("explored") in queries.campaign_names(s):
    results(st.session_state["explored"])
