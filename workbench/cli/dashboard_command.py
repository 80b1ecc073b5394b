"""``nla-workbench dashboard``: serve the Streamlit dashboard over a store."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from audits.store import open_store
from workbench.dashboard import DB_ENV

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
console = Console()


def streamlit_command(db: str, host: str, port: int) -> list[str]:
    """The command line that serves the dashboard (headless, no usage statistics)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
        "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def dashboard(
    db: Annotated[str, typer.Option("--db", help="SQLite file path or SQLAlchemy URL.")] = "workbench.db",
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8501,
) -> None:
    """Serve the audit dashboard (campaigns, triage, transcripts, review, compare, explore, export)."""
    store = open_store(db)  # a missing, outdated or unreachable store fails here, with its message
    store.close()
    url = db if "://" in db else str(Path(db).resolve())
    console.print(f"dashboard on http://{host}:{port} over {store.name} (Ctrl-C stops it)")
    sys.stdout.flush()
    os.execve(sys.executable, streamlit_command(url, host, port), {**os.environ, DB_ENV: url})
