"""Engines for the store: a file path means SQLite, anything with ``://`` is a SQLAlchemy URL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

from audits.store.errors import StoreError


def resolve_url(url_or_path: str) -> URL:
    """A SQLAlchemy URL for a URL string, or a SQLite URL with the absolute path of a plain file path."""
    if "://" not in url_or_path:
        return URL.create("sqlite", database=str(Path(url_or_path).expanduser().resolve()))
    try:
        return make_url(url_or_path)
    except (exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise StoreError(
            f"{display_name(url_or_path)} is neither a file path nor a valid database URL "
            "(check its scheme, host and port)"
        ) from None


# Query parameters that carry credentials (libpq's password and sslpassword, and the usual spellings
# of tokens and keys): masked wherever a URL is shown, like the URL's own password.
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|auth|credential", re.IGNORECASE)
MASK = "***"


def display_name(url_or_path: str) -> str:
    """How to name a database in messages: the path as given, or the URL with its password and every
    credential-like query parameter (``?password=``, ``sslpassword``, tokens, keys) masked."""
    if "://" not in url_or_path:
        return url_or_path
    try:
        url = make_url(url_or_path)
    except (exc.ArgumentError, ValueError):
        masked = re.sub(r"(://[^:/@]*:)[^@]*@", rf"\1{MASK}@", url_or_path)
        return re.sub(r"([?&][^=&]*(?:pass|pwd|secret|token|key|auth|credential)[^=&]*=)[^&]*", rf"\1{MASK}",
                      masked, flags=re.IGNORECASE)  # fmt: skip
    query = {k: (MASK if _SECRET_KEY.search(k) else v) for k, v in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True).replace("%2A%2A%2A", MASK)


def secrets_of(url: URL) -> list[str]:
    """The credential values in ``url`` (its password, credential-like query parameters), to mask in
    any text that might echo them (driver error messages)."""
    found = [url.password] if url.password else []
    for key, value in url.query.items():
        if _SECRET_KEY.search(key):
            found.extend([value] if isinstance(value, str) else value)
    return [str(v) for v in found if v]


def mask_secrets(text: str, url: URL) -> str:
    """``text`` with every credential of ``url`` replaced by ``***``."""
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for other backends, in-memory and ``uri=true`` URLs."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.query.get("uri"):
        return None
    return Path(url.database).resolve()


def make_engine(url_or_path: str, *, migrating: bool = False) -> Engine:
    """An engine for the store; SQLite gets a busy timeout and, unless migrating, foreign keys; a migrating
    engine switches the file to WAL (which persists), so reading a file never writes to it.

    A migrating engine leaves SQLite foreign keys off (batch migrations rebuild referenced tables;
    ``migrations/env.py`` runs ``PRAGMA foreign_key_check`` before committing) and makes each
    transaction ``BEGIN IMMEDIATE``, so DDL is transactional: a failed migration leaves nothing behind.
    """
    shown = display_name(url_or_path)
    url = resolve_url(url_or_path)
    path = sqlite_file(url)
    if path is not None:
        _check_sqlite_path(path, shown)
    try:
        # hide_parameters: a failed statement's message never carries row values (texts, vectors, specs)
        engine = create_engine(url, hide_parameters=True)
    except exc.NoSuchModuleError:
        raise StoreError(
            f"cannot open database {shown}: unknown database kind {url.drivername!r}; give a SQLite file "
            "path or a URL such as sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from None
    except ImportError as error:
        hint = " (pip install 'psycopg[binary]')" if url.get_backend_name() == "postgresql" else ""
        raise StoreError(
            f"cannot open database {shown}: its driver is not installed ({error}); install it{hint}"
        ) from None
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, foreign_keys=not migrating, transactional_ddl=migrating)
    return engine


def _check_sqlite_path(path: Path, shown: str) -> None:
    if path.is_dir():
        raise StoreError(f"cannot open database {shown}: {path} is a directory")
    if not path.parent.is_dir():
        raise StoreError(f"cannot open database {shown}: directory {path.parent} does not exist")
    if not path.exists() and not os.access(path.parent, os.W_OK):
        raise StoreError(f"cannot create database {shown}: directory {path.parent} is not writable")


def _configure_sqlite(engine: Engine, *, foreign_keys: bool, transactional_ddl: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if transactional_ddl:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        if transactional_ddl:  # WAL persists in the file: set when migrating, never by a mere read
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    if transactional_ddl:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def database_errors(name: str, doing: str, url: URL | None = None) -> Iterator[None]:
    """Turn a driver error (unreachable server, unwritable file...) into one StoreError naming the
    database, with any credential of ``url`` masked."""
    try:
        yield
    except exc.DBAPIError as error:
        raise StoreError(f"cannot {doing} database {name}: {driver_reason(error, url)}") from error


def driver_reason(error: exc.DBAPIError, url: URL | None) -> str:
    """The driver's own message on one line (no SQL, no parameters), credentials masked."""
    reason = " ".join(str(error.orig).split())
    return mask_secrets(reason, url) if url is not None else reason
