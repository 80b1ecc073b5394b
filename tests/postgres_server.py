"""A throwaway PostgreSQL cluster for tests: Debian's server binaries, a temporary data directory,
loopback on a free port, no fsync; one per test session, a fresh database per test.

PostgreSQL refuses to run as root, so under root (CI containers) the cluster belongs to the
``postgres`` system user and its commands run through ``runuser``. Missing binaries are an error,
not a skip: the store must be tested on PostgreSQL, and ``make system-deps`` installs the server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
START_TIMEOUT_S = 60
PORT_TRIES = 3  # a free port can be taken by another process before the server binds it
_databases = count()
T = TypeVar("T")


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed or the cluster would not start."""


def server_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb, pg_ctl and postgres."""
    found = [
        path / "bin"
        for path in PG_ROOT.glob("*")
        if all((path / "bin" / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))
    ]
    if not found:
        raise PostgresUnavailable(
            f"PostgreSQL server binaries not found under {PG_ROOT}/<version>/bin: run `make system-deps` "
            "(CI installs Debian's postgresql package); the store suite runs on PostgreSQL too"
        )
    return max(found, key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A cluster in a temporary directory: its binaries, root and (once started) port; the superuser
    connects without a password (trust auth, loopback only)."""

    bin_dir: Path
    root: Path
    port: int = 0

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> URL:
        """The psycopg 3 URL of a database on this server."""
        return URL.create(
            "postgresql+psycopg", username=SUPERUSER, host="127.0.0.1", port=self.port, database=database
        )

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SUPERUSER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S + 30)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")

    def start(self) -> None:
        """initdb, then start on 127.0.0.1 (a free port) with the unix socket inside the root."""
        if os.geteuid() == 0:
            shutil.chown(self.root, SUPERUSER, SUPERUSER)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync"
        )
        for attempt in range(PORT_TRIES):
            try:
                self._listen(_free_port())
                return
            except PostgresUnavailable:
                if attempt == PORT_TRIES - 1:
                    raise

    def _listen(self, port: int) -> None:
        options = f"-h 127.0.0.1 -p {port} -k {self.root} -c fsync=off -c full_page_writes=off"
        options += " -c synchronous_commit=off -c max_connections=200"
        # -w: pg_ctl returns once the server accepts connections (or fails after the timeout)
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "server.log"), "-o", options,
                  "-w", "-t", str(START_TIMEOUT_S), "start")  # fmt: skip
        self.port = port

    def stop(self) -> None:
        """Stop the server immediately (no checkpoint: the data is thrown away)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def create_database(self, prefix: str = "test", *, copy_of: str | None = None) -> str:
        """Create a new database, empty or a copy of the database at URL ``copy_of`` (which must have
        no open connections), and return its SQLAlchemy URL (password-less, as a string)."""
        name = f"{prefix}_{next(_databases)}"
        template = f' TEMPLATE "{make_url(copy_of).database}"' if copy_of else ""
        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"{template}'))
        finally:
            engine.dispose()
        return self.url(name).render_as_string(hide_password=False)


def _or_fail(step: Callable[[], T]) -> T:
    """Run a set-up step; PostgresUnavailable fails the test with its message (never a skip)."""
    try:
        return step()
    except PostgresUnavailable as error:
        reason = str(error)
    pytest.fail(reason, pytrace=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster for the whole session; fails (not skips) without the server binaries."""
    bin_dir = _or_fail(server_bin_dir)
    server = PostgresServer(bin_dir=bin_dir, root=Path(tempfile.mkdtemp(prefix="nla-pg-")))
    try:
        _or_fail(server.start)
        yield server
    finally:
        if (server.data_dir / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_server.create_database()
