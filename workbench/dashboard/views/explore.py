"""Explore: stress-test a claim interactively. Type a prompt or paste a chat, let the target reply and read
the reply, choose which tokens to verbalize (by role, the triage top-K, or picked one by one), and watch
them being verbalized; explanations, fidelity and each explanation's theme scores appear together. The
target and the NLA stay loaded between runs (one resource cache per model and checkpoint), so only the
first run pays for loading them. The form's inputs are bound to the URL. Each exploration is stored as
an ad-hoc campaign (no control), so it can be reviewed and reported like any other."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from audits.campaign_registry import register_campaign
from audits.campaign_spec import CampaignSpec, SamplingSpec, campaign_from_dict
from audits.errors import SpecError
from audits.read_model.campaigns import campaign_names
from audits.read_model.explanations import nla_setting
from audits.read_model.transcripts import (
    explanation_rows,
    explanation_theme_scores,
    theme_score_columns,
    transcript_list,
)
from audits.runner import CampaignRunner, arm_targets, variant_transcript
from audits.variants import expand_variants
from nla.activations import tokenize_transcript
from nla.checkpoint import NLA, load_nla
from nla.checkpoint.bundled import DEFAULT, is_default_ref, resolve_default
from nla.dtypes import DTYPE_NAMES, torch_dtype
from nla.errors import NLAError
from nla.pipeline import Target, load_target
from nla.sidecar import SIDECAR, read_sidecar
from workbench.dashboard import cached
from workbench.dashboard.progress import streamlit_stage
from workbench.dashboard.state import hypothesis_note, store, theme_name, themes, untrained_banner
from workbench.dashboard.text import md_escape, message_blocks, visible

st.title("Explore")
st.caption("Verbalize a prompt of your own. The run is saved as an ad-hoc campaign (tagged `explore`) "
           "that appears on every other page.")  # fmt: skip
s = store()
# Session key of the shown tokens: the chat they belong to, the transcript (with the target's reply) and
# each token's position, role and text.
PREVIEW = "explore_preview"
TRANSCRIPT_PROBLEMS = {
    "too_long": "it does not fit the target's context",
    "target_empty": "the target's reply is empty",
}
LENGTH_KEYS = (("generation", "max_new_tokens"), ("max_new_tokens",), ("rl", "max_new_tokens"))
# Where an NLA sidecar may record the explanation length it was trained to write.


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


def nla_explanation_length(checkpoint: str, target: str) -> int:
    """The explanation length the NLA was made for: its sidecar's, where it records one, else the campaign
    default (the bundled NLA writes about 60 tokens; a shorter cap leaves its explanations unclosed)."""
    fallback = SamplingSpec.model_fields["max_new_tokens"].default
    try:
        ref = resolve_default(target, None, checkpoint) if is_default_ref(checkpoint) else checkpoint
        raw = read_sidecar(Path(ref) / "av" / SIDECAR)
    except (NLAError, OSError, TypeError):
        return fallback
    for path in LENGTH_KEYS:
        value: Any = raw
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return fallback


def spec_data(form: dict[str, Any], replied: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The ad-hoc campaign: one inline scenario, no control run. ``replied`` is the chat with the reply the
    target wrote in the preview: the run verbalizes exactly that transcript instead of writing it again."""
    chat = replied or parse_chat(form["text"])
    reply = "generate" if replied is None and form["reply"] and chat[-1]["role"] == "user" else "given"
    note = " (the assistant's last turn was written by the target in Explore's preview)" if replied else ""
    scenario = {
        "id": "explore-prompt", "version": 1, "title": "Ad-hoc exploration", "tags": ["explore"],
        "question": (form["question"] or "What does the target represent here?") + note,
        "themes": form["themes"] or ["evaluation_awareness"], "reply": reply, "messages": chat,
        "control": {"note": "Ad-hoc exploration: no control is run.", "messages": chat},
    }  # fmt: skip
    triage = {"triage": {"top_k": form["top_k"], "random": 0}} if form["top_k"] else {}
    picked = {"positions": form["positions"]} if form["positions"] else {}
    return {
        "name": form["name"], "description": f"explore: {form['question'] or 'ad-hoc exploration'}",
        "target": {"model": form["target"], "max_new_tokens": form["reply_tokens"], "dtype": form["dtype"]},
        "nla": {"checkpoint": form["checkpoint"]},
        "scenarios": {"inline": [scenario], "controls": False}, "themes": form["themes"],
        "tokens": {"roles": form["roles"], "max_per_transcript": form["cap"], **triage, **picked},
        "sampling": {"samples": form["samples"], "temperature": form["temperature"], "max_new_tokens": form["explanation_tokens"]},
    }  # fmt: skip


def _chat_of(form: dict[str, Any]) -> tuple[object, ...]:
    """What decides the transcript's tokens: picked positions are only valid for the same chat and target."""
    return form["text"], form["target"], form["reply"], form["reply_tokens"], form["dtype"]


def _token_label(token: dict[str, Any]) -> str:
    return f"{token['position']} · {token['role']} · “{visible(token['text'])}”"


def _current(key: str, default: str) -> str:
    """A bound text input's value before the widget is drawn: this session's, else the URL's."""
    return str(st.session_state.get(key) or st.query_params.get(key) or default)


def explore_form() -> tuple[str, dict[str, Any]] | None:
    """The form, bound to the URL; ``("show" | "verbalize", values)`` once submitted."""
    preview = st.session_state.get(PREVIEW)
    tokens = {t["position"]: t for t in preview["tokens"]} if preview else {}
    length = nla_explanation_length(_current("explore_checkpoint", DEFAULT),
                                    _current("explore_target", "embedded:smollm2-135m-instruct"))  # fmt: skip
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
        dtype = left.selectbox(
            "Weights", DTYPE_NAMES, key="explore_dtype", bind="query-params",
            help="The target's and the NLA's. float32 is what campaigns use. On a CPU, bfloat16 verbalizes a "
            "few tokens about twice as fast (each generated token reads every weight once, and it halves "
            "their bytes) at slightly lower fidelity, but large batches run slower; its rows never mix with "
            "float32 ones (the activations differ).",
        )  # fmt: skip
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
            "…or pick tokens (press Show reply and tokens first)", list(tokens), key="explore_positions",
            format_func=lambda p: _token_label(tokens[p]),
            placeholder="Show reply and tokens, then pick" if not tokens else "Choose tokens",
        )  # fmt: skip
        samples = left.number_input("Samples per token", 1, 16, 2, key="explore_samples", bind="query-params")
        temperature = right.number_input("Temperature", 0.0, 2.0, 1.0, 0.1, key="explore_temperature",
                                         bind="query-params")  # fmt: skip
        explanation_tokens = left.number_input(
            "Explanation tokens", 8, 512, length, key="explore_explanation_tokens", bind="query-params",
            help=f"Defaults to the length this NLA writes ({length}); shorter caps leave explanations unclosed.",
        )  # fmt: skip
        name = right.text_input(
            "Save as campaign", f"explore-{datetime.now(UTC):%Y%m%d-%H%M%S}", key="explore_name"
        )
        show_col, run_col = st.columns(2)
        show = show_col.form_submit_button(
            "Show reply and tokens", key="explore_show", icon=":material/visibility:"
        )
        verbalize = run_col.form_submit_button("Verbalize", key="explore_verbalize", type="primary",
                                               icon=":material/play_arrow:")  # fmt: skip
    if not (show or verbalize):
        return None
    if not text.strip():
        st.error("Type a prompt or paste a chat first.")
        return None
    form = {"text": text, "question": question, "target": target, "checkpoint": checkpoint, "reply": reply, "dtype": dtype,
            "reply_tokens": int(reply_tokens), "roles": roles, "cap": int(cap), "top_k": int(top_k),
            "themes": chosen, "samples": int(samples), "temperature": float(temperature),
            "explanation_tokens": int(explanation_tokens), "name": name, "positions": sorted(positions)}  # fmt: skip
    if verbalize and positions and preview["chat"] != _chat_of(form):
        st.error(
            "The chat or target changed since its tokens were shown: press Show reply and tokens again to "
            "pick anew."
        )
        return None
    return ("show" if show else "verbalize"), form


@st.cache_resource(max_entries=2, show_spinner="Loading the target model (once per model)…")
def target_model(ref: str, adapter: str | None, dtype: str, device: str, trust_remote_code: bool) -> Target:
    """The target, kept loaded across reruns and explorations (keyed by model, adapter and how it is
    loaded)."""
    return load_target(ref, adapter=adapter, dtype=torch_dtype(dtype), device=device,
                       trust_remote_code=trust_remote_code)  # fmt: skip


@st.cache_resource(max_entries=2, show_spinner="Loading the NLA (once per checkpoint)…")
def nla_model(
    checkpoint: str, target_ref: str, layer: int | None, dtype: str, device: str, trust_remote_code: bool
) -> NLA:
    """The NLA, kept loaded across reruns and explorations (keyed by checkpoint, target and layer)."""
    return load_nla(checkpoint, target_ref=target_ref, layer=layer, dtype=torch_dtype(dtype), device=device,
                    trust_remote_code=trust_remote_code)  # fmt: skip


class KeptModels:
    """The runner's model source here (``CampaignRunner(models=...)``): the target and NLA this dashboard
    keeps loaded, so a second exploration with the same model and checkpoint loads nothing."""

    def __init__(self, spec: CampaignSpec) -> None:
        t = spec.target
        self.options = (t.dtype, t.device, t.trust_remote_code)

    def target(self, ref: str, *, adapter: str | None = None, **_: Any) -> Target:
        return target_model(ref, None if adapter is None else str(adapter), *self.options)

    def nla(self, checkpoint: str, *, target_ref: str, layer: int | None, **_: Any) -> NLA:
        return nla_model(checkpoint, target_ref, layer, *self.options)


def preview_transcript(spec: CampaignSpec) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The chat as the target leaves it (its reply written, with the run's settings and seed) and its
    tokens as the runner reads them, templated by the target's tokenizer."""
    target = arm_targets(spec, {}, KeptModels(spec))[spec.control() or ""]
    transcript, status = variant_transcript(target, expand_variants(spec, {})[0], spec)
    if status != "ok":
        raise SpecError(f"the chat gives no tokens to verbalize: {TRANSCRIPT_PROBLEMS[status]}")
    tokens = tokenize_transcript(target.tokenizer, transcript).tokens
    chat = [{"role": m.role, "content": m.content} for m in transcript.messages]
    return chat, [{"position": token.position, "role": token.role, "text": token.text} for token in tokens]


def show_tokens(form: dict[str, Any]) -> None:
    """Let the target reply, then list the transcript's tokens so they can be picked."""
    try:
        spec = campaign_from_dict(spec_data({**form, "positions": [], "top_k": 0}), {}, "exploration")
        with st.spinner("The target is replying…"):
            chat, tokens = preview_transcript(spec)
    except (SpecError, NLAError, ValueError) as error:
        st.error(md_escape(str(error)), icon=":material/error:")
        return
    replied = form["reply"] and parse_chat(form["text"])[-1]["role"] == "user"
    st.session_state[PREVIEW] = {
        "chat": _chat_of(form),
        "messages": chat,
        "tokens": tokens,
        "replied": replied,
    }
    st.session_state.pop("explore_positions", None)
    st.rerun()


def show_preview() -> None:
    """The chat with the target's reply, above the form where its tokens are picked."""
    preview = st.session_state.get(PREVIEW)
    if not preview:
        return
    with st.expander("The chat as the target sees it, with its reply", expanded=True):
        last = len(preview["messages"]) - 1
        for i, m in enumerate(preview["messages"]):
            with st.chat_message("assistant" if m["role"] == "assistant" else "user",
                                 avatar=":material/settings:" if m["role"] == "system" else None):  # fmt: skip
                written = " · written by the target just now" if preview.get("replied") and i == last else ""
                st.caption(f"{m['role']} · message {i}{written}")
                for block in message_blocks(m["content"]):
                    if block.code:
                        st.code(block.text, language=block.language, wrap_lines=True)
                    else:
                        st.markdown(md_escape(block.text))
        st.caption(
            f"{len(preview['tokens'])} tokens: pick some in the form below, or let the roles and cap choose."
        )


def run(form: dict[str, Any]) -> str | None:
    """Register and run the exploration with live progress, on the kept models. Errors are shown; a
    campaign registered before its run failed stays (re-run it from the Campaigns page once fixed)."""
    preview = st.session_state.get(PREVIEW)
    replied = preview["messages"] if preview and preview["chat"] == _chat_of(form) else None
    try:
        spec = campaign_from_dict(spec_data(form, replied), {}, "exploration")
        register_campaign(s, spec)
        with st.status("Running the target and the NLA…", expanded=True) as status:
            result = CampaignRunner(s, spec.name, {}, stage=streamlit_stage, models=KeptModels(spec)).run()
            status.update(label=f"Run {result.run_id} {result.status}: {result.new_explanations} explanations",
                          state="complete")  # fmt: skip
    except (SpecError, NLAError, ValueError) as error:
        st.error(md_escape(str(error)), icon=":material/error:")
        return None
    return spec.name


def explanation_table(name: str) -> pd.DataFrame:
    """The exploration's explanations, one row per sample, with each detector's theme score beside it."""
    rows = explanation_rows(s, nla_setting(s, name))
    if rows.empty:
        return rows
    scores = theme_score_columns(explanation_theme_scores(s, rows["explanation_id"].tolist()))
    scores.columns = [f"{theme_name(theme_id)} ({detector})" for theme_id, detector in scores.columns]
    table = rows.assign(
        token=rows["token"].map(visible),
        explanation=rows["text"].where(rows["text"] != "", rows["raw_output"]),
    )
    table = table.rename(columns={"sample_index": "sample", "fve": "FVE"})
    table = table[
        ["explanation_id", "position", "token", "role", "sample", "status", "FVE", "cos", "explanation"]
    ]
    return table.join(scores, on="explanation_id")


def results(name: str) -> None:
    untrained_banner(nla_setting(s, name).untrained)
    hypothesis_note()
    table = explanation_table(name)
    flags = cached.raised_flags(s, name)
    st.subheader("Explanations and theme scores", anchor=False)
    if table.empty:
        st.info("No explanation is stored for this exploration: run it again from the Campaigns page.")
    else:
        unclosed = int((table["status"] == "unclosed").sum())
        if unclosed:
            st.warning(
                f"{unclosed} explanation(s) hit the length cap before closing: raise Explanation tokens."
            )
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
                     hide_index=True, key="explore_flags",
                     column_config={"flag_id": "flag", "theme_id": "theme", "token_text": "token", "fve": "FVE",
                                    "low_fidelity": "low fidelity"})  # fmt: skip
    transcript = int(transcript_list(s, name)["transcript_id"].iloc[0])
    st.page_link("views/transcript.py", label="Open in Transcript (token strip, samples, evidence)", icon=":material/forum:",
                 query_params={"campaign": name, "transcript": str(transcript)})  # fmt: skip


show_preview()
submitted = explore_form()
if submitted is not None:
    action, values = submitted
    if action == "show":
        show_tokens(values)
    elif (done := run(values)) is not None:
        st.session_state["explored"] = done
if st.session_state.get("explored") in campaign_names(s):
    results(st.session_state["explored"])
