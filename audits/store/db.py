"""Opening the store, checking its schema revision, and idempotent bulk inserts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Engine, Row, Table, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from audits.store.engine import (
    database_errors,
    display_name,
    driver_reason,
    make_engine,
    resolve_url,
    sqlite_file,
)
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
        """A session in one transaction: committed on success, rolled back on error. When the database
        itself refuses (read-only file, lock held too long, server gone, disk full) the error is one
        StoreError naming the database, without the statement or its parameters; any other database
        error (a constraint the code broke) keeps its traceback."""
        try:
            with self.sessions.begin() as session:
                yield session
        except exc.OperationalError as error:
            raise StoreError(f"database {self.name}: {driver_reason(error, self.url)}") from error

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
    with database_errors(store.name, "open", store.url), store.engine.connect() as connection:
        current = revision_of(connection)
    check_revision(current, store.name)


def insert_ignore(session: Session, table: type[Base] | Table, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows``, skipping any that collide with a unique key; return how many were inserted.

    One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per batch (SQLite and PostgreSQL),
    so re-running a half-finished job resumes without duplicates or errors. Only uniqueness
    conflicts are skipped: a missing foreign key or NULL in a required column still raises.
    """
    target = _table(table)
    return len(insert_new(session, target, rows, *target.primary_key.columns))


def insert_new(
    session: Session, table: type[Base] | Table, rows: list[dict[str, Any]], *returning: Column
) -> list[Row]:
    """:func:`insert_ignore`, returning the ``returning`` columns of the rows actually inserted."""
    if not rows:
        return []
    statement = _insert(session, _table(table)).on_conflict_do_nothing().returning(*returning)
    return list(session.execute(statement, rows).all())


def add_counts(
    session: Session, table: type[Base] | Table, rows: list[dict[str, Any]], key: list[str], count: str
) -> None:
    """Add each row's ``count`` to the stored row with the same ``key`` columns (a unique key of
    ``table``), inserting the rows not stored yet: one ``INSERT ... ON CONFLICT DO UPDATE``, atomic
    per row on both backends, so concurrent writers never lose an increment."""
    if not rows:
        return
    target = _table(table)
    statement = _insert(session, target)
    statement = statement.on_conflict_do_update(
        index_elements=key, set_={count: target.c[count] + statement.excluded[count]}
    )
    session.execute(statement, rows)


def _table(table: type[Base] | Table) -> Table:
    return table if isinstance(table, Table) else table.__table__


def _insert(session: Session, table: Table):
    dialect = session.get_bind().dialect.name
    if dialect not in _INSERTS:
        raise StoreError(f"bulk writes support SQLite and PostgreSQL, not {dialect}")
    return _INSERTS[dialect](table)
