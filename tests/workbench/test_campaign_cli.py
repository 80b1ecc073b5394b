"""``campaign`` / ``db`` / ``demo`` commands through the real CLI: success paths on a tiny model,
and bad input that exits 2 with one clear message and leaves the database unchanged."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from audits.store import upgrade
from tests.tiny_models import build_llama


def dump(db: Path) -> list[str]:
    """The database's logical content (WAL checkpoints may rewrite pages without changing it)."""
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd, check=False,
        env={"NLA_WORKBENCH_CACHE": str(cwd / "cache"), "PATH": "/usr/bin:/bin", "COLUMNS": "150"},
    )  # fmt: skip


def test_demo_on_the_tiny_model(tiny_dirs, tiny_init_dirs, tmp_path: Path) -> None:
    args = [
        "--db",
        "demo.db",
        "--target",
        str(tiny_dirs["llama"]),
        "--checkpoint",
        str(tiny_init_dirs["llama"]),
    ]
    done = cli("demo", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "run 1 completed" in done.stdout and "UNTRAINED NLA" in done.stdout
    assert "demo store: " + str(tmp_path / "demo.db") in " ".join(done.stdout.split())
    again = cli("demo", *args, cwd=tmp_path)  # resumes: nothing left to do
    assert again.returncode == 0 and "run 2 completed: 0 new explanations" in again.stdout
    status = cli("campaign", "status", "starter", "--db", "demo.db", cwd=tmp_path)
    assert status.returncode == 0 and "explanations" in status.stdout
    listed = cli("campaign", "list", "--db", "demo.db", cwd=tmp_path)
    assert "starter" in listed.stdout


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    upgrade(str(path))
    return path


def _spec(tmp_path: Path, tiny_dirs, tiny_init_dirs, **changes) -> Path:
    data = {
        "name": "probe",
        "target": {"model": str(tiny_dirs["llama"])},
        "nla": {"checkpoint": str(tiny_init_dirs["llama"])},
        "scenarios": {"ids": ["sycophancy-falling-objects"]},
        **changes,
    }
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"scenarios": {"ids": ["no-such-scenario"]}},
            "unknown scenario id(s) ['no-such-scenario']; valid: ",
        ),
        ({"conditions": {"mood": ["x"]}}, "condition 'mood' is not a slot of any selected scenario"),
        ({"themes": ["vibes"]}, "unknown theme(s) ['vibes']"),
        ({"sampling": {"samples": "two"}}, "field sampling.samples"),
    ],
)
def test_bad_campaign_files(tmp_path: Path, db: Path, tiny_dirs, tiny_init_dirs, changes, message) -> None:
    spec = _spec(tmp_path, tiny_dirs, tiny_init_dirs, **changes)
    before = dump(db)
    done = cli("campaign", "create", str(spec), "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in " ".join(done.stderr.split()) and f"{spec}:" in done.stderr
    assert dump(db) == before


def test_malformed_yaml(tmp_path: Path, db: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: probe\nscenarios: [\n")
    done = cli("campaign", "create", str(spec), "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2 and "invalid YAML" in done.stderr


def test_uninitialised_database_is_refused(tmp_path: Path, tiny_dirs, tiny_init_dirs) -> None:
    spec = _spec(tmp_path, tiny_dirs, tiny_init_dirs)
    done = cli("campaign", "create", str(spec), "--db", "fresh.db", cwd=tmp_path)
    assert done.returncode == 2 and "db upgrade" in done.stderr
    assert not (tmp_path / "fresh.db").exists()


def test_d_model_mismatch_writes_nothing(tmp_path: Path, db: Path, tiny_dirs, tiny_init_dirs) -> None:
    wide = build_llama(tmp_path / "wide", hidden=96)
    spec = _spec(tmp_path, tiny_dirs, tiny_init_dirs, target={"model": str(wide)})
    assert cli("campaign", "create", str(spec), "--db", str(db), cwd=tmp_path).returncode == 0
    before = dump(db)
    done = cli("campaign", "run", "probe", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 2 and "expects d_model 64" in done.stderr
    assert dump(db) == before
    unknown = cli("campaign", "run", "nope", "--db", str(db), cwd=tmp_path)
    assert (
        unknown.returncode == 2 and "no campaign named 'nope'" in unknown.stderr and "probe" in unknown.stderr
    )
