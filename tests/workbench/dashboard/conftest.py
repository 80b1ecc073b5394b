"""Dashboard fixtures: a real store built once by the runner (tiny taught NLA, XSS payloads, two
reviews), copied per test so tests that write reviews or campaigns do not see each other."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.audit_store import build_audit_store
from workbench.dashboard import DB_ENV

APP = str(Path(__file__).resolve().parents[3] / "workbench" / "dashboard" / "app.py")


@pytest.fixture(scope="session")
def built_store(tiny_dirs, tiny_taught_dir, tmp_path_factory) -> Path:
    return Path(build_audit_store(tmp_path_factory.mktemp("dash") / "store.db", tiny_dirs, tiny_taught_dir))


@pytest.fixture
def dash_db(built_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private copy of the built store, named in the dashboard's environment variable."""
    db = tmp_path / "store.db"
    shutil.copy(built_store, db)
    monkeypatch.setenv(DB_ENV, str(db))
    return str(db)
