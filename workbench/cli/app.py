"""``nla-workbench``: the command-line entry point."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.text import Text

from nla.errors import NLAError
from workbench.cli.campaign_commands import campaign_app, demo
from workbench.cli.dashboard_command import dashboard
from workbench.cli.db_commands import db_app
from workbench.cli.nla_commands import nla_app
from workbench.cli.report_commands import export, report, review_app
from workbench.cli.theme_commands import themes_app
from workbench.cli.train_commands import train_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Audit language models with NLAs.")
app.add_typer(nla_app, name="nla")
app.add_typer(db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(themes_app, name="themes")
app.add_typer(review_app, name="review")
app.add_typer(train_app, name="train")
app.command("report")(report)
app.command("export")(export)
app.command("demo")(demo)
app.command("dashboard")(dashboard)
err_console = Console(stderr=True)


def main() -> None:
    """Run the CLI; bad input, and a file the system cannot read or write, end with one clear message
    and exit code 2."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers loads
    try:
        app(standalone_mode=False)
    except (NLAError, ValueError) as exc:
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
        sys.exit(2)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(
            Text.assemble(("error: ", "bold red"), where, exc.strerror or str(exc)), soft_wrap=True
        )
        sys.exit(2)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
