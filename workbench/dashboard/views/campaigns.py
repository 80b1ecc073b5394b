"""Campaigns: every campaign with its status and counts; create one from a form or a YAML file;
start or resume a run in the background and watch its progress."""

from __future__ import annotations

import streamlit as st

from audits.campaign_registry import register_campaign
from audits.campaign_spec import CampaignSpec, campaign_from_dict, load_campaign_text
from audits.campaign_status import CampaignStatus
from audits.errors import SpecError
from audits.read_model.campaigns import campaign_table
from audits.store import Store
from workbench.dashboard import cached, jobs
from workbench.dashboard.state import campaign_select, db_url, library, store, themes, untrained_banner
from workbench.dashboard.text import md_escape

st.title("Campaigns")
s = store()
table = campaign_table(s)


def overview() -> None:
    if table.empty:
        st.info(
            "No campaigns yet. Create one below, or run the starter audit from a shell: `nla-workbench demo`."
        )
        return
    st.dataframe(
        table[["campaign", "description", "last_run", "transcripts", "activations", "vectors", "samples",
               "explanations", "raised_flags", "unreviewed_flags", "target", "checkpoint", "untrained", "themes",
               "budget_vectors", "created_at"]],
        hide_index=True, key="campaign_table",
        column_config={
            "last_run": "last run",
            "activations": st.column_config.NumberColumn("activations", help="Token activations read (the selected tokens of every transcript)."),
            "vectors": st.column_config.NumberColumn("distinct vectors", help="Distinct activation vectors among them: identical vectors (the same tokens in identical contexts) are verbalized once."),
            "samples": st.column_config.NumberColumn("samples / vector", help="Explanation samples per vector."),
            "explanations": st.column_config.NumberColumn("explanations", help="The campaign's explanations under its NLA checkpoint and sampling (distinct vectors × samples when complete), including ones another campaign wrote for the same vectors."),
            "raised_flags": "raised flags", "unreviewed_flags": "unreviewed",
            "budget_vectors": st.column_config.NumberColumn("budget (vectors)"),
            "created_at": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
        },
    )  # fmt: skip


def details(name: str) -> None:
    """Status of one campaign, what its counts mean, and its next step."""
    row = table[table["campaign"] == name].iloc[0]
    st.subheader(f"Campaign {name}", anchor=False)
    if row["description"]:
        st.markdown(md_escape(row["description"]))
    untrained_banner(bool(row["untrained"]))
    job = jobs.current(db_url(), name)
    running = job is not None and job.running
    next_step(row, running)
    progress(s, name, live=running)


def next_step(row, running: bool) -> None:
    """The one thing to do next, as the prominent control: start or resume an unfinished run; for a finished
    run, review its open flags, or read its transcripts when it raised none (re-running stays available as
    a secondary button: it only does missing work)."""
    name, last = row["campaign"], row["last_run"]
    if running:
        st.button("Running…", key="start_run", icon=":material/hourglass_top:", disabled=True)
        return
    if last != "completed":
        label = "Start run" if last == "not run" else f"Resume run (last run {last})"
        if st.button(label, key="start_run", icon=":material/play_arrow:", type="primary"):
            jobs.start(db_url(), name)
            st.rerun()
        return
    params = {"campaign": name}
    if row["unreviewed_flags"]:
        page, label, icon = "views/review.py", f"Next: review {row['unreviewed_flags']} open flag(s)", ":material/rule:"
    elif row["raised_flags"]:
        page, label, icon = "views/export.py", "Next: every flag has a decision, export the report", ":material/download:"
    else:
        page, label, icon = "views/transcript.py", "Next: no flags raised, read the transcripts", ":material/forum:"
    left, mid, right = st.columns([2, 1, 1])
    if left.button(label, key="next_step", icon=icon, type="primary"):
        st.switch_page(page, query_params=params)
    with mid:
        st.page_link("views/triage.py", label="Triage: flags and rates", icon=":material/flag:", query_params=params)
    if right.button("Re-run (does only missing work)", key="start_run", icon=":material/refresh:", type="tertiary"):
        jobs.start(db_url(), name)
        st.rerun()


def progress(s: Store, name: str, *, live: bool) -> None:
    @st.fragment(run_every=2 if live else None)
    def panel() -> None:
        status = cached.campaign_status(s, name)
        expected = max(status.expected_explanations, 1)
        eta = f" · ETA {status.eta_seconds:.0f} s" if status.eta_seconds and live else ""
        st.progress(min(status.explained / expected, 1.0),
                    text=f"{status.explained} of {status.expected_explanations} explanations{eta}")  # fmt: skip
        cols = st.columns(5)
        cols[0].metric("transcripts", sum(status.transcripts.values()), help=f"{status.variants} variants")
        cols[1].metric("activations", status.activations)
        cols[2].metric("distinct vectors", status.distinct_activations)
        cols[3].metric("explanations", status.explained)
        cols[4].metric("raised flags", status.flags["raised"])
        st.caption(md_escape(counts_note(status)))
        budget_used(status)
        job = jobs.current(db_url(), name)
        if job is not None:
            state = "running" if job.running else f"finished (exit {job.process.returncode})"
            with st.expander(f"Background run: {state}", expanded=job.process.returncode not in (None, 0)):
                st.code(job.log_tail() or "(no output yet)", language=None)
            if not job.running and live:
                st.rerun()

    panel()


def counts_note(status: CampaignStatus) -> str:
    """How the counts relate: activations read, distinct vectors among them, samples per vector."""
    repeated = status.activations - status.distinct_activations
    same = (f"; {repeated} of them repeat a vector already read (the same tokens in an identical context) and "
            "are verbalized once") if repeated > 0 else ""  # fmt: skip
    budget = " (the vector budget caps it)" if status.max_vectors and status.max_vectors < status.distinct_activations else ""
    return (
        f"{status.activations} token activations were read from the transcripts{same}: {status.distinct_activations} "
        f"distinct vectors. Each vector gets {status.samples} explanation sample(s), so {status.expected_explanations} "
        f"explanations are expected{budget}; {status.explained} are stored. Explanations are shared by content: "
        "ones another campaign already wrote for the same vector, NLA and sampling count here too."
    )  # fmt: skip


def budget_used(status: CampaignStatus) -> None:
    """Vectors verbalized against the spec's cap; the latest run's wall time against its per-run limit."""
    vectors, wall = st.columns(2)
    used, cap = status.vectors_explained, status.max_vectors
    vectors.metric("budget used: vectors", f"{used} of {cap}" if cap else f"{used} (no cap)")
    seconds, limit = status.last_run_seconds, status.max_wall_seconds
    if seconds is None:
        shown = "not run yet"
    else:
        shown = f"{seconds:.0f} s" + (f" of {limit:.0f} s" if limit else " (no limit)")
    wall.metric("budget used: wall time (last run)", shown)


def create_form() -> None:
    lib = library()
    with st.form("create_campaign"):
        name = st.text_input("Name (lowercase, digits, - and _)", key="new_name")
        description = st.text_input("Description", key="new_description")
        scenario_ids = st.multiselect(
            "Scenarios", sorted(lib), key="new_scenarios", format_func=lambda i: f"{i}: {lib[i].title}"
        )
        theme_ids = st.multiselect("Themes", sorted(themes()), key="new_themes",
                                   format_func=lambda t: themes()[t].name)  # fmt: skip
        left, right = st.columns(2)
        target = left.text_input("Target model", "embedded:smollm2-135m-instruct", key="new_target")
        checkpoint = right.text_input(
            "NLA checkpoint (directory, Hub prefix, default or init)", "default", key="new_checkpoint"
        )
        roles = left.multiselect(
            "Token roles", ["system", "user", "assistant"], ["assistant"], key="new_roles"
        )
        cap = right.number_input("Tokens per transcript", 1, 4096, 16, key="new_cap")
        samples = left.number_input("Samples per token", 1, 32, 2, key="new_samples")
        temperature = right.number_input("Temperature", 0.0, 2.0, 1.0, 0.1, key="new_temperature")
        triage = left.number_input("Triage top-K (0: no triage)", 0, 512, 0, key="new_triage")
        budget = right.number_input("Budget: most vectors (0: none)", 0, 10_000_000, 0, key="new_budget")
        wall = left.number_input("Budget: most seconds per run (0: none)", 0, 7 * 86_400, 0, key="new_wall")
        submitted = st.form_submit_button("Create campaign", type="primary")
    if submitted:
        data = {
            "name": name, "description": description, "target": {"model": target},
            "nla": {"checkpoint": checkpoint}, "scenarios": {"ids": scenario_ids}, "themes": theme_ids,
            "tokens": {"roles": roles, "max_per_transcript": int(cap),
                       **({"triage": {"top_k": int(triage)}} if triage else {})},
            "sampling": {"samples": int(samples), "temperature": float(temperature)},
            "budgets": {"max_vectors": int(budget) or None, "max_wall_seconds": float(wall) or None},
        }  # fmt: skip
        register(lambda: campaign_from_dict(data, lib, "campaign form"))


def upload_form() -> None:
    upload = st.file_uploader("Campaign YAML", type=["yaml", "yml"], key="campaign_yaml")
    pasted = st.text_area("…or paste the YAML", key="campaign_text", height=160)
    if st.button(
        "Validate and create", key="create_from_yaml", disabled=upload is None and not pasted.strip()
    ):
        if upload is not None:
            text, where = upload.getvalue().decode("utf-8", errors="replace"), upload.name
        else:
            text, where = pasted, "pasted YAML"
        register(lambda: load_campaign_text(text, where, library()))


def register(build) -> None:
    """Validate and register a campaign; errors are shown as the CLI prints them, nothing is written."""
    try:
        spec: CampaignSpec = build()
        register_campaign(s, spec)
    except (SpecError, ValueError) as error:
        st.error(md_escape(str(error)), icon=":material/error:")
        return
    st.session_state["select_campaign"] = spec.name
    st.session_state["flash"] = f"Registered campaign **{md_escape(spec.name)}**: start its run above."
    st.rerun()


if "flash" in st.session_state:
    st.success(st.session_state.pop("flash"), icon=":material/check_circle:")
overview()
names = table["campaign"].tolist()
if names:
    if st.session_state.get("select_campaign") in names:
        st.session_state["campaign"] = st.session_state.pop("select_campaign")
    chosen = campaign_select(names)
    details(chosen)
st.subheader("New campaign", anchor=False)
by_form, by_yaml = st.tabs(["From a form", "From a YAML file"])
with by_form:
    create_form()
with by_yaml:
    upload_form()
