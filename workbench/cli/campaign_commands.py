"""``nla-workbench campaign ...`` and ``demo``: create, run and inspect audit campaigns."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from audits.campaign_registry import register_campaign
from audits.campaign_spec import CampaignSpec, load_campaign
from audits.campaign_status import CampaignStatus, campaign_names, campaign_status
from audits.errors import SpecError
from audits.scenario_library import load_library
from audits.starters import starter_names, starter_path
from audits.store import open_store, upgrade
from audits.store.engine import display_name
from audits.themes.definitions import check_theme_ids
from audits.themes.rates import condition_vs_control, flag_frame, flag_rates, verdict_counts
from audits.variants import expand_variants
from nla.errors import InputError
from workbench.cli.progress import Interrupted, progress_bar
from workbench.cli.text import terminal_safe

if TYPE_CHECKING:
    from audits.runner import ModelSource

campaign_app = typer.Typer(no_args_is_help=True, help="Create, run and inspect audit campaigns.")
console = Console()
err = Console(stderr=True)
DbOpt = Annotated[str, typer.Option("--db", help="SQLite file path or SQLAlchemy URL.")]


def _spec(spec_file: Path | None, from_library: str | None) -> CampaignSpec:
    if (spec_file is None) == (from_library is None):
        raise SpecError("give a campaign YAML file or --from-library NAME (not both)")
    return load_campaign(spec_file or starter_path(from_library), load_library())


@campaign_app.command("create")
def create(
    spec_file: Annotated[Path | None, typer.Argument(help="Campaign YAML file.")] = None,
    from_library: Annotated[
        str | None, typer.Option(help=f"A starter campaign: {', '.join(starter_names())}.")
    ] = None,
    db: DbOpt = "workbench.db",
) -> None:
    """Validate a campaign spec and register it in the store."""
    spec = _spec(spec_file, from_library)
    with open_store(db) as store:  # closed on error too, so no -wal / -shm file is left behind
        register_campaign(store, spec)
    variants = expand_variants(spec, load_library())
    console.print(
        f"registered campaign {spec.name!r} in {store.name}: {len(variants)} variants "
        f"({sum(v.is_control for v in variants)} controls); run it with: nla-workbench campaign run {spec.name} "
        f"--db {store.name}"
    )


@campaign_app.command("run")
def run(
    name: str,
    db: DbOpt = "workbench.db",
    executor: Annotated[
        str, typer.Option(help="Where explanations are generated: in-process or ray (needs the ray extra).")
    ] = "in-process",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (host:port or auto); default: start a local one.")
    ] = None,
    actors: Annotated[
        int | None, typer.Option(help="Ray actors, one NLA each; default: one per GPU, or 2 without GPUs.")
    ] = None,
) -> None:
    """Run (or resume) a campaign: only missing work is done."""
    run_campaign(name, db, executor, address, actors)


def run_campaign(
    name: str,
    db: str,
    executor: str = "in-process",
    address: str | None = None,
    actors: int | None = None,
    models: ModelSource | None = None,
) -> None:
    """``campaign run``'s work; ``models`` lets several runs in one process share their loaded models."""
    from audits.runner import CampaignRunner  # torch and the models: loaded only to run
    from nla.executors import make_executor

    try:
        with open_store(db) as store, make_executor(executor, address, actors) as pool:
            runner = CampaignRunner(
                store, name, load_library(), stage=lambda stage: progress_bar(err, stage), executor=pool,
                models=models,
            )  # fmt: skip
            result = runner.run()
            console.print(f"run {result.run_id} {result.status}: {result.new_explanations} new explanations")
            print_status(campaign_status(store, name, load_library()))
    except KeyboardInterrupt:  # the run row says interrupted, every finished unit is stored
        raise Interrupted(
            f"interrupted; run again to resume: nla-workbench campaign run {name} --db {display_name(db)}"
        ) from None


@campaign_app.command("status")
def status(name: str, db: DbOpt = "workbench.db") -> None:
    """Counts per stage and status, budget used, runs and ETA."""
    with open_store(db) as store:
        print_status(campaign_status(store, name, load_library()))


@campaign_app.command("list")
def list_campaigns(db: DbOpt = "workbench.db") -> None:
    """Every campaign in the store."""
    table = Table("campaign", "description", "created")
    with open_store(db) as store:
        names = campaign_names(store)
    for name, description, created in names:
        table.add_row(
            Text(terminal_safe(name)), Text(terminal_safe(description)), created.strftime("%Y-%m-%d %H:%M")
        )
    console.print(table)


@campaign_app.command("flags")
def flags(
    name: str,
    db: DbOpt = "workbench.db",
    theme: Annotated[str | None, typer.Option(help="Only this theme id.")] = None,
    include_low_fidelity: Annotated[
        bool,
        typer.Option(
            "--include-low-fidelity/--hide-low-fidelity",
            help="List low-fidelity flags, marked LOW-FIDELITY (they stay out of rates either way).",
        ),
    ] = True,
    limit: Annotated[int, typer.Option(min=1, help="Most flags to print.")] = 20,
) -> None:
    """Raised flags, strongest first, each citing its token, explanation and evidence; low-fidelity
    flags are listed and marked."""
    with open_store(db) as store:
        frame = flag_frame(store, name)
    raised = frame[frame["raised"]] if not frame.empty else frame
    if theme is not None:
        check_theme_ids([theme])
        raised = raised[raised["theme_id"] == theme]
    low = int(raised["low_fidelity"].sum()) if not raised.empty else 0
    if not include_low_fidelity and low:
        raised = raised[~raised["low_fidelity"]]
    console.print(f"{len(raised)} raised flag(s) in campaign {name!r}: hypotheses to verify, not findings")
    if low:
        shown = "marked LOW-FIDELITY below" if include_low_fidelity else "hidden (--hide-low-fidelity)"
        console.print(
            f"{low} low-fidelity flag(s) (cited FVE below the rule's min_fve): {shown}; "
            "left out of rates unless `campaign rates --include-low-fidelity`"
        )
    for row in raised.sort_values(["score", "agreement"], ascending=False).head(limit).itertuples():
        console.print(_flag_text(row))


def _flag_text(row: Any) -> Text:
    """One raised flag: theme, token, score, samples, fidelity (marked when low), visibility, citation."""
    seen = "unverbalized" if not row.verbalized else ("in reply" if row.in_reply else "in prompt")
    fve = "unknown" if row.fve is None or row.fve != row.fve else f"{row.fve:.2f}"
    return Text.assemble(
        ("LOW-FIDELITY ", "bold yellow") if row.low_fidelity else "",
        (f"[{row.theme_id}] ", "bold"), f"{terminal_safe(row.variant_key)} · pos {row.position} ",
        (repr(row.token_text), "cyan"),
        f" · score {row.score:.2f} · {row.n_hits}/{row.n_samples} samples · FVE {fve} · {seen}",
        "\n    explanation ", str(row.explanation_id), ": ", terminal_safe(row.explanation),
        "\n    evidence: ", terminal_safe(row.evidence_text) or "-",
    )  # fmt: skip


@campaign_app.command("rates")
def rates(
    name: str,
    db: DbOpt = "workbench.db",
    unit: Annotated[str, typer.Option(help="token or transcript.")] = "token",
    include_low_fidelity: Annotated[bool, typer.Option(help="Count low-fidelity flags too.")] = False,
) -> None:
    """Flag rates per scenario, theme and condition (all, verbalized and unverbalized flags), then each
    condition against its control; 95% intervals."""
    if unit not in ("token", "transcript"):
        raise InputError(f"--unit {unit!r}: choose token or transcript")
    with open_store(db) as store:
        counts = verdict_counts(store, name)
    table_rates = flag_rates(counts, include_low_fidelity=include_low_fidelity, unit=unit)
    console.print(_rates_table(table_rates, f"flag rates per {unit} in {name} [95% CI]"))
    console.print(_differences_table(condition_vs_control(table_rates), "condition - control [95% CI]"))
    excluded = int(table_rates["excluded_low_fidelity"].sum()) if not table_rates.empty else 0
    if excluded:
        console.print(f"{excluded} low-fidelity verdict(s) excluded (--include-low-fidelity counts them)")


def _rates_table(table_rates: pd.DataFrame, title: str) -> Table:
    """One row per cell: its units and the rate of all, verbalized and unverbalized flags."""
    table = Table(
        "scenario", "theme", "condition", "n", "all flags", "verbalized", "unverbalized", title=title
    )
    for row in table_rates.sort_values(["scenario_id", "theme_id", "is_control", "condition"]).itertuples():
        condition = f"{row.condition} (control)" if row.is_control else row.condition
        table.add_row(
            Text(row.scenario_id), row.theme_id, Text(condition), str(row.n),
            *(_rate(row, suffix) for suffix in ("", "_verbalized", "_unverbalized")),
        )  # fmt: skip
    return table


def _differences_table(compared: pd.DataFrame, title: str) -> Table:
    """One row per condition and its paired control: the difference of all, verbalized and
    unverbalized flag rates."""
    table = Table("scenario", "theme", "condition", "control", "all flags", "verbalized", "unverbalized",
                  title=title)  # fmt: skip
    for row in compared.itertuples():
        table.add_row(
            Text(row.scenario_id), row.theme_id, Text(row.condition), Text(row.control_condition),
            *(_diff(row, suffix) for suffix in ("", "_verbalized", "_unverbalized")),
        )  # fmt: skip
    return table


def _rate(row: Any, suffix: str) -> str:
    """``rate [low, high]`` of one flag kind (suffix ``""``, ``_verbalized`` or ``_unverbalized``)."""
    rate, low, high = (getattr(row, f"{c}{suffix}") for c in ("rate", "low", "high"))
    return f"{_pct(rate)} [{_pct(low)}, {_pct(high)}]"


def _diff(row: Any, suffix: str) -> str:
    """``difference [low, high]`` of one flag kind."""
    diff, low, high = (getattr(row, f"diff{suffix}{end}") for end in ("", "_low", "_high"))
    return f"{_signed(diff)} [{_signed(low)}, {_signed(high)}]"


def _signed(value: float) -> str:
    return "-" if value != value else f"{value:+.2f}"


def _pct(value: float) -> str:
    return "-" if value != value else f"{value:.0%}"


def print_status(s: CampaignStatus) -> None:
    """The status block ``campaign status`` prints."""
    table = Table(title=f"campaign {terminal_safe(s.name)}", show_header=False)
    if s.untrained:
        console.print(
            Text("UNTRAINED NLA (stage: init): these explanations carry no information about the activations.",
                 style="bold yellow")
        )  # fmt: skip
    table.add_row("variants", str(s.variants))
    table.add_row("transcripts", _counts(s.transcripts) or "none yet")
    for refusal in s.refused:
        table.add_row("  too_long", Text(terminal_safe(refusal.describe())))
    table.add_row("activations", f"{s.activations} ({s.distinct_activations} distinct vectors)")
    budget = f" · budget {s.max_vectors} vectors" if s.max_vectors else ""
    table.add_row(
        "explanations",
        f"{s.explained} of {s.expected_explanations}{budget}: {_counts(s.explanations) or '-'}",
    )
    if s.flags["judged"]:
        f = s.flags
        table.add_row(
            "flags",
            f"{f['raised']} raised of {f['judged']} token-theme verdicts · {f['low_fidelity']} of them low-fidelity"
            f" · {f['unverbalized']} unverbalized (nla-workbench campaign flags {s.name})",
        )
    table.add_row("eta", f"{s.eta_seconds:.0f} s at the last run's rate" if s.eta_seconds else "-")
    for run_id, state, started, finished in s.runs:
        end = finished.strftime("%H:%M:%S") if finished else "…"
        table.add_row(f"run {run_id}", f"{state} ({started:%Y-%m-%d %H:%M:%S} → {end})")
    console.print(table)
    for warning in s.warnings:
        console.print(Text.assemble(("warning: ", "bold yellow"), terminal_safe(warning)))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def demo(
    db: DbOpt = "workbench.db",
    target: Annotated[str | None, typer.Option(help="Run the starter on another target model.")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="Run the starter with another NLA.")] = None,
    organism: Annotated[
        bool | None,
        typer.Option(
            help="Also run the taboo-demo campaign (a model organism against its base); default: yes, "
            "unless --target or --checkpoint changes the starter."
        ),
    ] = None,
) -> None:
    """Run the starter campaign (by default on the embedded SmolLM2) and the taboo-demo campaign (a model
    organism that holds a secret word, against the base model reading its transcripts) into a local store."""
    library = load_library()
    spec = load_campaign(starter_path("starter"), library)
    if target or checkpoint:
        spec = spec.model_copy(
            update={
                "target": spec.target.model_copy(update={"model": target or spec.target.model}),
                "nla": spec.nla.model_copy(
                    update={"checkpoint": checkpoint or spec.nla.checkpoint, "layer": None}
                ),
            }
        )
    organism = not (target or checkpoint) if organism is None else organism
    specs = [spec] + ([load_campaign(starter_path("taboo-demo"), library)] if organism else [])
    upgrade(db)
    with open_store(db) as store:
        for each in specs:
            register_campaign(store, each)
    from audits.runner import LoadedOnce  # torch and the models: loaded only to run

    models = LoadedOnce()  # the organism campaign's base arm and NLA are the starter's: loaded once
    for each in specs:
        console.print(Text(f"campaign {each.name}: {each.description}", style="bold"))
        run_campaign(each.name, db, models=models)
    where = display_name(db) if "://" in db else str(Path(db).resolve())
    db = display_name(db)  # from here on only shown: never print a credential
    lines = [("\ndemo store: ", "bold"), where, f"\nnext: nla-workbench dashboard --db {db}"]
    for each in specs:
        lines += [f"\n      nla-workbench campaign status {each.name} --db {db}",
                  f"\n      nla-workbench campaign flags {each.name} --db {db}",
                  f"\n      nla-workbench campaign rates {each.name} --db {db} --include-low-fidelity"]  # fmt: skip
    if organism:
        lines += [f"\n      nla-workbench campaign discover taboo-demo --db {db}",
                  f"\n      nla-workbench campaign discover taboo-demo --db {db} --source logit-lens",
                  f"\n      nla-workbench review term taboo-demo TERM --decision confirm|dismiss --reason ... --db {db}"
                  "   (or the dashboard's Review page, queue: Discovered terms)",
                  "\n      nla-workbench organism show taboo-a --reveal   (the answer, once you have looked)"]  # fmt: skip
    console.print(Text.assemble(*lines))
