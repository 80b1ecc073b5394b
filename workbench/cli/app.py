"""``nla-workbench``: the command-line entry point."""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import TyperException

from nla.errors import NLAError
from workbench.cli.campaign_commands import campaign_app, demo
from workbench.cli.dashboard_command import dashboard
from workbench.cli.db_commands import db_app
from workbench.cli.discover_command import discover_command
from workbench.cli.nla_commands import nla_app
from workbench.cli.organism_commands import organism_app
from workbench.cli.progress import Interrupted
from workbench.cli.report_commands import export, report, review_app
from workbench.cli.text import terminal_safe
from workbench.cli.theme_commands import themes_app
from workbench.cli.train_commands import train_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Audit language models with NLAs.")
app.add_typer(nla_app, name="nla")
app.add_typer(db_app, name="db")
app.add_typer(campaign_app, name="campaign")
app.add_typer(themes_app, name="themes")
app.add_typer(review_app, name="review")
app.add_typer(train_app, name="train")
app.add_typer(organism_app, name="organism")
campaign_app.command("discover")(discover_command)
app.command("report")(report)
app.command("export")(export)
app.command("demo")(demo)
app.command("dashboard")(dashboard)
err_console = Console(stderr=True)


def main() -> None:
    """Run the CLI. Bad input, a file the system cannot read or write, and a database that refuses end
    with one clear message and exit code 2; usage errors print the usage and exit 2; Ctrl-C exits 130.
    Anything else is a bug in this program and keeps its traceback."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers loads
    try:
        code = app(standalone_mode=False)  # returns the code of a typer.Exit (130 for Ctrl-C)
    except NLAError as exc:
        _error(str(exc))
        sys.exit(2)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _error(where + (exc.strerror or str(exc)))
        sys.exit(2)
    except TyperException as exc:  # usage errors (typer's own click): the usage line, the problem, exit 2
        _show_usage_error(exc)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Interrupted as exc:
        err_console.print(str(exc))
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        sql = sys.modules.get("sqlalchemy.exc")  # loaded only by the commands that open a store
        if sql is not None and isinstance(exc, sql.OperationalError):  # refused outside a store session
            _error(f"database: {' '.join(str(exc.orig).split())}")
            sys.exit(2)
        raise
    if code == 130:  # typer turns Ctrl-C into Exit(130) and returns it instead of raising
        err_console.print("interrupted")
    if isinstance(code, int) and code:
        sys.exit(code)


def _show_usage_error(exc: TyperException) -> None:
    """The usage line of the command the arguments name, a help hint, and the problem; for errors the
    parser raises before it knows the command (an option missing its value) the command is found from
    the arguments."""
    if hasattr(exc, "ctx") and exc.ctx is None:
        command, path = typer.main.get_command(app), ["nla-workbench"]
        for arg in sys.argv[1:]:
            sub = getattr(command, "commands", {}).get(arg)
            if sub is None:
                break
            command, path = sub, [*path, arg]
        exc.ctx = command.context_class(command, info_name=" ".join(path))
    if hasattr(exc, "show"):
        exc.show()
    else:
        _error(exc.format_message())


def _error(message: str) -> None:
    err_console.print(Text.assemble(("error: ", "bold red"), terminal_safe(message)), soft_wrap=True)
