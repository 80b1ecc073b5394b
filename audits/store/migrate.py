"""Schema migrations of the store, driven programmatically through Alembic.

The scripts live in ``migrations/`` at the top of a checkout (where ``alembic.ini`` points) and ship in
the wheel as ``audits/store/migrations`` (``setup.py`` maps one onto the other), so an installed copy
migrates exactly like the checkout."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, inspect

from audits.store.engine import database_errors, display_name, make_engine, resolve_url, sqlite_file
from audits.store.errors import StoreError


def _migrations_dir() -> Path:
    """The installed package's copy (``audits/store/migrations``, beside this module) when there is one,
    else the checkout's top-level ``migrations/``. Paths from ``__file__``, not ``audits.__file__``: under
    pytest, tests/ is on sys.path and tests/audits/ can shadow the package as a namespace package."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "migrations", here.parents[1] / "migrations"):
        if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
            return candidate
    return here.parents[1] / "migrations"  # missing: head_revision() says so


MIGRATIONS_DIR = _migrations_dir()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = _scripts().get_current_head()
    if head is None:
        raise StoreError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def is_known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations."""
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def revision_of(connection: Connection, name: str | None = None) -> str | None:
    """The schema revision stamped in a database; None if it was never migrated.

    Raises StoreError for a SQLite file that holds other tables but no revision: another
    application's database, which ``db upgrade`` must not fill with the store's tables.
    """
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is None and connection.dialect.name == "sqlite":
        tables = sorted(set(inspect(connection).get_table_names()) - {"alembic_version"})
        if tables:
            shown = name or connection.engine.url.database
            listed = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(
                f"database {shown} is not initialised and already holds other tables ({listed}): it is "
                "not an nla-workbench store; give --db a new file"
            )
    return revision


def current_revision(url_or_path: str) -> str | None:
    """The schema revision of a database; None if it was never migrated (a missing SQLite file is not created)."""
    engine = make_engine(url_or_path)  # checks the directory of a SQLite file; connects to nothing yet
    path = sqlite_file(engine.url)
    if path is not None and not path.exists():
        return None
    name = display_name(url_or_path)
    try:
        with database_errors(name, "read", engine.url), engine.connect() as connection:
            return revision_of(connection, name)
    finally:
        engine.dispose()


def check_revision(current: str | None, name: str) -> None:
    """Raise StoreError unless a database named ``name`` at ``current`` is at this code's head."""
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise StoreError(f"database {name} is not initialised: run `nla-workbench db upgrade --db {name}`")
    if not is_known_revision(current):
        raise StoreError(
            f"database {name} is at schema revision {current}, newer than this version of nla-workbench "
            f"knows (head {head}): upgrade nla-workbench"
        )
    raise StoreError(
        f"database {name} is at schema revision {current}, older than this code's head {head}: "
        f"run `nla-workbench db upgrade --db {name}`"
    )


def upgrade(url_or_path: str, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` in one transaction; a new SQLite file is removed on failure."""
    _migrate(url_or_path, "upgrade", revision)


def downgrade(url_or_path: str, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` drops every table) in one transaction."""
    _migrate(url_or_path, "downgrade", revision)


def _migrate(url_or_path: str, action: str, revision: str) -> None:
    name = display_name(url_or_path)
    url = resolve_url(url_or_path)
    path = sqlite_file(url)
    fresh = path is not None and not path.exists()
    if path is not None and not fresh:
        current_revision(url_or_path)  # refuse another application's SQLite file before switching it to WAL
    engine = make_engine(url_or_path, migrating=True)
    config = _config()
    try:
        with database_errors(name, action, url), engine.begin() as connection:
            current = revision_of(connection, name)
            if current is not None and not is_known_revision(current):
                check_revision(current, name)
            config.attributes["connection"] = connection
            try:
                getattr(command, action)(config, revision)
            except CommandError as error:
                raise StoreError(f"cannot {action} database {name}: {error}") from None
    except BaseException:
        if fresh and path is not None:
            engine.dispose()
            _remove_sqlite(path)
        raise
    finally:
        engine.dispose()


def _remove_sqlite(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
