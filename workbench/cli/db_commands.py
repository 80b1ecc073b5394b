"""``nla-workbench db ...``: create, upgrade and inspect the audit store's schema."""

from __future__ import annotations

from typing import Annotated

import typer

from audits.store.engine import display_name
from audits.store.migrate import current_revision, head_revision, is_known_revision, upgrade

db_app = typer.Typer(
    no_args_is_help=True, help="Create and upgrade the audit store (SQLite file or SQL URL)."
)
DEFAULT_DB = "workbench.db"
DbOpt = Annotated[
    str, typer.Option("--db", help="SQLite file path, or a SQLAlchemy URL such as postgresql://host/db.")
]


def _describe(revision: str | None) -> str:
    head = head_revision()
    if revision is None:
        return "not initialised"
    if revision == head:
        return f"{revision} (head)"
    if is_known_revision(revision):
        return f"{revision} (head is {head})"
    return f"{revision} (unknown to this version of nla-workbench, whose head is {head})"


@db_app.command("upgrade")
def upgrade_command(
    db: DbOpt = DEFAULT_DB,
    revision: Annotated[str, typer.Option(help="Target schema revision.")] = "head",
) -> None:
    """Create the store, or migrate its schema to REVISION (default: the newest)."""
    before = current_revision(db)
    upgrade(db, revision)
    typer.echo(f"{display_name(db)}: {_describe(before)} -> {_describe(current_revision(db))}")


@db_app.command()
def current(db: DbOpt = DEFAULT_DB) -> None:
    """Print the store's schema revision and whether it is the newest this code knows."""
    revision = current_revision(db)
    typer.echo(f"{display_name(db)}: {_describe(revision)}")
    if revision is None:
        typer.echo(f"run `nla-workbench db upgrade --db {display_name(db)}` to create it")
