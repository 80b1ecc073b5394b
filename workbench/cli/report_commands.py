"""``nla-workbench report``, ``export`` and ``review``: audit reports, analysis-ready data, and
append-only human decisions on flags."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from audits.reports.exports import COLUMNS, stream_rows, write_export
from audits.reports.gather import gather
from audits.reports.output import atomic_output, check_output
from audits.reports.render import render_html, render_markdown, render_pdf
from audits.review import add_review, add_term_review, comparison, review_history, term_review_history
from audits.scenario_library import load_library
from audits.store import open_store
from audits.themes.rates import campaign_id_of
from nla.errors import InputError
from workbench.cli.text import terminal_safe

console = Console()
DbOpt = Annotated[str, typer.Option("--db", help="SQLite file path or SQLAlchemy URL.")]
OutOpt = Annotated[Path | None, typer.Option(help="Output file (default: <campaign>-<what>.<format>).")]
ForceOpt = Annotated[bool, typer.Option(help="Overwrite the output file if it exists.")]
REPORT_FORMATS = ("html", "pdf", "md")
EXPORT_FORMATS = ("csv", "jsonl", "parquet")


def _choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InputError(f"{option} {value!r}: choose one of {', '.join(choices)}")
    return value


def report(
    name: str,
    format: Annotated[str, typer.Option("--format", help="html, pdf or md.")] = "html",
    out: OutOpt = None,
    include_unreviewed: Annotated[
        bool, typer.Option(help="List open flags as well as confirmed ones.")
    ] = False,
    include_low_fidelity: Annotated[
        bool, typer.Option(help="Count low-fidelity verdicts in the rates.")
    ] = False,
    force: ForceOpt = False,
    db: DbOpt = "workbench.db",
) -> None:
    """Write a campaign's audit report: scope, findings with intervals, evidence, limitations."""
    fmt = _choice("--format", format, REPORT_FORMATS)
    out = out or Path(f"{name}-report.{fmt}")
    check_output(out, force=force)
    with open_store(db) as store:  # closed on error too, so no -wal / -shm file is left behind
        campaign_id_of(store, name)
        data = gather(
            store,
            name,
            load_library(),
            include_unreviewed=include_unreviewed,
            include_low_fidelity=include_low_fidelity,
        )
    with atomic_output(out) as tmp:
        if fmt == "md":
            tmp.write_text(render_markdown(data), encoding="utf-8")
        elif fmt == "html":
            tmp.write_text(render_html(data), encoding="utf-8")
        else:
            render_pdf(render_html(data), tmp)
    console.print(f"wrote the {fmt} report of {name!r} to {out}")


def export(
    name: str,
    format: Annotated[str, typer.Option("--format", help="csv, jsonl or parquet.")] = "csv",
    what: Annotated[
        str, typer.Option(help="flags, explanations, reviews, term_reviews or tokens.")
    ] = "flags",
    out: OutOpt = None,
    force: ForceOpt = False,
    db: DbOpt = "workbench.db",
) -> None:
    """Export one table of a campaign for analysis (columns documented in audits/reports/exports.py)."""
    fmt = _choice("--format", format, EXPORT_FORMATS)
    what = _choice("--what", what, tuple(COLUMNS))
    out = out or Path(f"{name}-{what}.{fmt}")
    check_output(out, force=force)
    with open_store(db) as store:
        campaign_id_of(store, name)
        with atomic_output(out) as tmp:
            count = write_export(stream_rows(store, name, what), what, fmt, tmp)
    console.print(f"wrote {count} {what} rows of {name!r} to {out}")


review_app = typer.Typer(
    no_args_is_help=True, help="Record and list human decisions on flags and discovered terms (append-only)."
)


@review_app.command("add")
def review_add(
    flag_id: int,
    decision: Annotated[str, typer.Option(help="confirm, dismiss or follow_up.")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    author: Annotated[str | None, typer.Option(help="Reviewer name (default: the login name).")] = None,
    db: DbOpt = "workbench.db",
) -> None:
    """Record a decision on a flag; earlier decisions are kept as history."""
    author = _author(author)
    with open_store(db) as store:
        review_id = add_review(
            store,
            flag_id,
            author=author,
            decision=decision,
            reason=reason,
        )
    console.print(f"review {review_id}: flag {flag_id} {decision}")


@review_app.command("history")
def review_list(name: str, db: DbOpt = "workbench.db") -> None:
    """Every decision on a campaign's flags, oldest first."""
    table = Table("review", "flag", "theme", "variant", "pos", "author", "decision", "reason", "at")
    with open_store(db) as store:
        history = review_history(store, name)
    for r in history.itertuples():
        table.add_row(
            str(r.review_id), str(r.flag_id), r.theme_id, Text(terminal_safe(r.variant_key)), str(r.position),
            Text(terminal_safe(r.author)), r.decision, Text(terminal_safe(r.reason)), f"{r.created_at:%Y-%m-%d %H:%M}",
        )  # fmt: skip
    console.print(table)


def _author(author: str | None) -> str:
    """The reviewer's name: as given, else the login name; an empty --author is refused."""
    if author is not None and not author.strip():
        raise InputError(f"--author is empty: give the reviewer's name, or leave --author out to record the "
                         f"login name ({getpass.getuser()!r})")  # fmt: skip
    return getpass.getuser() if author is None else author


@review_app.command("term")
def review_term(
    name: Annotated[str, typer.Argument(help="The campaign.")],
    term: Annotated[str, typer.Argument(help="The discovered term (as `campaign discover` lists it).")],
    decision: Annotated[str, typer.Option(help="confirm, dismiss or follow_up.")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    source: Annotated[str, typer.Option(help="explanations, replies or logit-lens.")] = "explanations",
    arm: Annotated[str | None, typer.Option(help="Focal arm (default: as campaign discover).")] = None,
    against: Annotated[str | None, typer.Option(help="Comparison arm (default: the control arm).")] = None,
    author: Annotated[str | None, typer.Option(help="Reviewer name (default: the login name).")] = None,
    db: DbOpt = "workbench.db",
) -> None:
    """Record a decision on a term discovery found (a lead without a theme); earlier decisions are kept."""
    author = _author(author)
    with open_store(db) as store:
        arm, against = comparison(store, name, arm, against)
        review_id = add_term_review(store, name, term, source=source, arm=arm, against=against, author=author,
                                    decision=decision, reason=reason)  # fmt: skip
    console.print(
        Text(terminal_safe(f"term review {review_id}: {term!r} ({source}, {arm} vs {against}) {decision}"))
    )


@review_app.command("terms")
def review_terms(name: str, db: DbOpt = "workbench.db") -> None:
    """Every decision on a campaign's discovered terms, oldest first."""
    table = Table("review", "term", "source", "arm", "against", "author", "decision", "reason", "at")
    with open_store(db) as store:
        history = term_review_history(store, name)
    for r in history.itertuples():
        table.add_row(
            str(r.review_id), Text(terminal_safe(r.term)), r.source, r.arm, r.against, Text(terminal_safe(r.author)),
            r.decision, Text(terminal_safe(r.reason)), f"{r.created_at:%Y-%m-%d %H:%M}",
        )  # fmt: skip
    console.print(table)
