"""Dashboard fixtures: a real store built once by the runner (tiny taught NLA, XSS payloads, two
reviews: raised flags), a demo-like store (a calm NLA that raises nothing, two controls of one scenario,
code and non-ASCII text, e-mail addresses), and the first store with campaigns to compare (two
checkpoints, budgets), each copied per test so tests that write reviews or campaigns do not see each
other."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.audit_store import add_comparison_campaigns, build_audit_store, build_demo_store
from workbench.dashboard import DB_ENV

APP = str(Path(__file__).resolve().parents[3] / "workbench" / "dashboard" / "app.py")


@pytest.fixture(scope="session")
def built_store(tiny_dirs, tiny_taught_dir, tmp_path_factory) -> Path:
    return Path(build_audit_store(tmp_path_factory.mktemp("dash") / "store.db", tiny_dirs, tiny_taught_dir))


@pytest.fixture(scope="session")
def built_demo_store(tiny_dirs, tiny_calm_dir, tmp_path_factory) -> Path:
    """A completed campaign ``demo`` like the starter under the bundled NLA: explanations that name no
    audit theme, so it raises no flag."""
    return Path(build_demo_store(tmp_path_factory.mktemp("demo") / "store.db", tiny_dirs, tiny_calm_dir))


@pytest.fixture
def demo_db(built_demo_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private copy of the demo-like store, named in the dashboard's environment variable."""
    return _private_copy(built_demo_store, tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def built_compare_store(built_store, tiny_dirs, tiny_calm_dir, tiny_taught_dir, tmp_path_factory) -> Path:
    """The built store plus ``xss-calm`` (another checkpoint, budgets) and ``drift`` (two checkpoints)."""
    root = tmp_path_factory.mktemp("compare")
    shutil.copy(built_store, root / "store.db")
    add_comparison_campaigns(
        str(root / "store.db"), tiny_dirs, tiny_calm_dir, tiny_taught_dir, root / "drift-nla"
    )
    return root / "store.db"


def _private_copy(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    db = tmp_path / "store.db"
    shutil.copy(built, db)
    monkeypatch.setenv(DB_ENV, str(db))
    return str(db)


@pytest.fixture
def dash_db(built_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private copy of the built store, named in the dashboard's environment variable."""
    return _private_copy(built_store, tmp_path, monkeypatch)


@pytest.fixture
def compare_db(built_compare_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private copy of the store with campaigns to compare, named in the dashboard's environment."""
    return _private_copy(built_compare_store, tmp_path, monkeypatch)
