"""``nla-workbench campaign discover``: the terms one arm's explanations (or replies, or logit lens) use far
more than another arm's."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from audits.store import open_store

console = Console()


def discover_command(
    name: str,
    db: Annotated[str, typer.Option("--db", help="SQLite file path or SQLAlchemy URL.")] = "workbench.db",
    arm: Annotated[
        str | None, typer.Option(help="The arm whose terms are ranked (default: the first non-control arm).")
    ] = None,
    against: Annotated[
        str | None, typer.Option(help="The arm it is compared with (default: the control arm).")
    ] = None,
    source: Annotated[
        str, typer.Option(help="Documents to compare: explanations, replies or logit-lens.")
    ] = "explanations",
    positions: Annotated[
        str,
        typer.Option(
            help="Tokens: all, before-reply (prompt, reply header, first reply tokens) or in-reply."
        ),
    ] = "all",
    top: Annotated[int, typer.Option(min=1, help="Terms to list.")] = 20,
    include_low_fidelity: Annotated[
        bool, typer.Option(help="Keep explanations whose FVE is below --min-fve.")
    ] = False,
    min_fve: Annotated[float, typer.Option(help="Explanations below this FVE are low-fidelity.")] = 0.0,
) -> None:
    """Rank the terms over-represented in one arm against another (weighted log-odds, z-scored)."""
    from audits.discovery import discover  # scikit-learn's stop words load only here

    with open_store(db) as store:
        found = discover(
            store, name, arm=arm, against=against, source=source, positions=positions, top=top,
            include_low_fidelity=include_low_fidelity, min_fve=min_fve,
        )  # fmt: skip
    title = (f"{found.source}: arm {found.arm!r} ({found.n_docs} documents, {found.n_transcripts} transcripts) "
             f"against {found.against!r} ({found.n_docs_other} documents, {found.n_transcripts_other} transcripts), "
             f"positions {found.positions}")  # fmt: skip
    if found.empty_reason:
        console.print(Text(title))
        console.print(Text(f"nothing discovered: {found.empty_reason}"))
        return
    table = Table("term", "z", f"in {found.arm}", f"in {found.against}", "transcripts", "visible text",
                  "logit lens", "explanation ids", title=Text(title), title_justify="left")  # fmt: skip
    for row in found.table.itertuples():
        ids = row.explanation_ids
        shown = ", ".join(map(str, ids[:5])) + (f" (+{len(ids) - 5})" if len(ids) > 5 else "")
        table.add_row(
            Text(row.term), f"{row.z:.2f}", f"{row.count} ({row.share:.1%})", f"{row.count_other} ({row.share_other:.1%})",
            str(row.transcripts), f"{row.visible} of {row.transcripts}",
            f"{row.lens} tokens" if found.source == "explanations" else "-", shown or "-",
        )  # fmt: skip
    console.print(table)
    console.print(Text(
        f"scaffolding left out (in half or more of {found.against!r}'s documents): "
        + (", ".join(found.scaffolding[:15]) + (" ..." if len(found.scaffolding) > 15 else "") or "none")
    ))  # fmt: skip
    console.print(Text("Terms are leads, not findings: open their explanations and tokens, and check the visible "
                       "text and the logit lens beside them.", style="dim"))  # fmt: skip
