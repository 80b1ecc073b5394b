"""Opening the store, checking its schema revision, and idempotent bulk inserts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from audits.store.engine import database_errors, display_name, make_engine, resolve_url, sqlite_file
from audits.store.errors import StoreError
from audits.store.migrate import check_revision, revision_of
from audits.store.orm import Base

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass(frozen=True)
class Store:
    """An open store: how it is named in messages, its URL, engine and session factory."""

    name: str
    url: URL
    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_store(url_or_path: str, *, check: bool = True) -> Store:
    """Open the store at a file path (SQLite) or SQLAlchemy URL; by default require the current schema."""
    engine = make_engine(url_or_path)
    store = Store(
        name=display_name(url_or_path),
        url=resolve_url(url_or_path),
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
    )
    if check:
        try:
            check_schema(store)
        except StoreError:
            store.close()
            raise
    return store


def check_schema(store: Store) -> None:
    """Raise StoreError unless the database is reachable and at this code's head revision."""
    path = sqlite_file(store.url)
    if path is not None and not path.exists():
        check_revision(None, store.name)  # never create an empty file just to find it uninitialised
    with database_errors(store.name, "open", store.url.password), store.engine.connect() as connection:
        current = revision_of(connection)
    check_revision(current, store.name)


def insert_ignore(session: Session, table: type[Base] | Table, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows``, skipping any that collide with a unique key; return how many were inserted.

    One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per batch (SQLite and PostgreSQL),
    so re-running a half-finished job resumes without duplicates or errors. Only uniqueness
    conflicts are skipped: a missing foreign key or NULL in a required column still raises.
    """
    if not rows:
        return 0
    target = table if isinstance(table, Table) else table.__table__
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        raise StoreError(f"insert_ignore supports SQLite and PostgreSQL, not {dialect}")
    key = list(target.primary_key.columns)
    statement = _INSERTS[dialect](target).on_conflict_do_nothing().returning(*key)
    return len(session.execute(statement, rows).all())
