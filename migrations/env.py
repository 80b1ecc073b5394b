"""Alembic environment for the audit store.

Targets, first found: ``config.attributes["connection"]`` (a Connection in a transaction, as
``audits.store.migrate`` passes), ``-x db=PATH_OR_URL``, then ``sqlalchemy.url``. SQLite gets batch
mode (table rebuilds for ALTER) and a foreign-key check before the transaction commits.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection

from audits.store.engine import make_engine, resolve_url
from audits.store.errors import StoreError
from audits.store.orm import Base, UTCDateTime

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def _target() -> str:
    return context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option("sqlalchemy.url")


def _render_item(kind: str, obj: Any, _autogen_context: Any) -> str | bool:
    """Render UTCDateTime as its plain column type, so migrations do not import application code."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _options(sqlite: bool) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "render_as_batch": sqlite,
        "compare_type": True,
        "render_item": _render_item,
    }


def run_offline() -> None:
    """Write the migration SQL for the target's dialect to stdout (``alembic upgrade head --sql``)."""
    url = resolve_url(_target())
    context.configure(url=url, literal_binds=True, **_options(url.get_backend_name() == "sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(connection=connection, transactional_ddl=True, **_options(sqlite))
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(
                f"migration left {len(broken)} rows with dangling foreign keys, e.g. {broken[0]}"
            )


def run_online() -> None:
    """Migrate the given connection, or open the target and migrate it in one transaction."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    target = _target()
    engine = make_engine(target, migrating=True)
    try:
        with engine.begin() as opened:
            _run(opened)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
