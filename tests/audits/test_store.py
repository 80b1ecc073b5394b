"""The SQL store on real databases: migrations, constraints, bulk inserts, vectors and clear errors.

Database tests run on SQLite and on PostgreSQL (the ``store_url`` fixture, a throwaway cluster);
those about SQLite files (paths, pragmas, a file that must not be created) are SQLite-only."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from audits.store import (
    Base,
    SQLAActivation,
    SQLACampaign,
    SQLAExplanation,
    SQLAFlag,
    SQLAReview,
    SQLARun,
    SQLATokenPosition,
    SQLATranscript,
    SQLAVariant,
    Store,
    StoreError,
    activation_key,
    blob_to_vector,
    canonical_json,
    current_revision,
    downgrade,
    head_revision,
    insert_ignore,
    json_key,
    open_store,
    upgrade,
    vector_to_blob,
)
from audits.store.migrate import MIGRATIONS_DIR
from nla.verbalizer import vector_digest
from tests.postgres_server import PostgresServer

TABLES = {
    "campaigns",
    "runs",
    "run_leases",
    "variants",
    "transcripts",
    "messages",
    "logit_lens",
    "term_reviews",
    "token_positions",
    "activations",
    "explanations",
    "reviews",
    "theme_definitions",
    "theme_scores",
    "triage_scores",
    "flags",
    "flag_tallies",
}
BAD_URL = "postgresql://u:secret@127.0.0.1:1/x"


@pytest.fixture
def db(store_url: str) -> str:
    """A migrated store, on SQLite and on PostgreSQL."""
    upgrade(store_url)
    return store_url


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    """An open store on a migrated file."""
    with open_store(db) as opened:
        yield opened


def _run_id(session: Session) -> int:
    campaign = SQLACampaign(name="c", spec_json={"name": "c"}, spec_hash=json_key({"name": "c"}))
    session.add(campaign)
    session.flush()
    run = SQLARun(campaign_id=campaign.id, provenance_json={"seed": 0}, executor="local")
    session.add(run)
    session.flush()
    return run.id


def _explanation(run_id: int, sample_index: int = 0) -> dict[str, object]:
    return {
        "run_id": run_id,
        "checkpoint_id": "init-abc",
        "activation_key": "a" * 64,
        "sampling_key": json_key({"temperature": 1.0, "top_p": 0.95}),
        "sample_index": sample_index,
        "text": "about cats",
        "raw_output": "<explanation>about cats</explanation>",
        "status": "ok",
        "finish": "stop",
        "n_tokens": 7,
    }


def _all_tables(url: str) -> set[str]:
    with open_store(url, check=False) as opened:
        return set(inspect(opened.engine).get_table_names())


def _tables(url: str) -> set[str]:
    return _all_tables(url) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(db: str) -> None:
    assert current_revision(db) == head_revision()
    assert _tables(db) == TABLES
    downgrade(db, "base")
    assert current_revision(db) is None
    assert _tables(db) == set()
    upgrade(db)
    assert current_revision(db) == head_revision()
    assert _tables(db) == TABLES


def test_migrations_match_the_orm(db: str, tmp_path: Path) -> None:
    def diff(path: str) -> list[object]:
        with open_store(path, check=False) as opened, opened.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)

    assert diff(db) == []
    downgrade(db, "base")
    assert {change[1].name for change in diff(db) if change[0] == "add_table"} == TABLES  # it sees gaps


def test_postgresql_sql_renders_offline() -> None:
    config = Config(output_buffer=io.StringIO())
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", BAD_URL)
    command.upgrade(config, "head", sql=True)
    sql = config.output_buffer.getvalue()
    assert "CONSTRAINT uq_explanations__content_address UNIQUE" in sql
    assert "TIMESTAMP WITH TIME ZONE" in sql and "DOUBLE PRECISION" in sql and "BYTEA" in sql


def test_sqlite_pragmas(tmp_path: Path) -> None:
    # SQLite-only: pragmas are how SQLite gets WAL, a busy timeout and foreign keys.
    path = str(tmp_path / "store.db")
    upgrade(path)
    with open_store(path) as opened, opened.session() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(SQLARun(campaign_id=999, provenance_json={}, executor="local"))


def test_session_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.session() as session:
        _run_id(session)
        raise RuntimeError("boom")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(SQLARun)) == 0


def test_explanation_content_address_is_unique(store: Store) -> None:
    with store.session() as session:
        run_id = _run_id(session)
        session.add(SQLAExplanation(**_explanation(run_id)))
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(SQLAExplanation(**_explanation(run_id)))
    with store.session() as session:
        session.add(SQLAExplanation(**_explanation(run_id, sample_index=1)))
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(SQLAExplanation)) == 2


def test_insert_ignore_resumes_without_duplicates(store: Store) -> None:
    with store.session() as session:
        run_id = _run_id(session)
        assert insert_ignore(session, SQLAExplanation, [_explanation(run_id, i) for i in range(3)]) == 3
    with store.session() as session:
        rows = [_explanation(run_id, i) for i in range(5)]
        assert insert_ignore(session, SQLAExplanation.__table__, rows) == 2
        assert insert_ignore(session, SQLAExplanation, rows) == 0
        assert insert_ignore(session, SQLAExplanation, []) == 0
        assert session.scalar(select(func.count()).select_from(SQLAExplanation)) == 5
    with pytest.raises(IntegrityError), store.session() as session:  # only uniqueness conflicts are skipped
        insert_ignore(session, SQLAExplanation, [_explanation(run_id + 1, 9)])


def test_model_text_with_nul_is_stored_on_every_backend(store: Store) -> None:
    """A model can write NUL (a byte-level token), which PostgreSQL text refuses: both backends store U+FFFD."""
    with store.session() as session:
        row = {**_explanation(_run_id(session)), "text": "a\x00b", "raw_output": "\x00"}
        assert insert_ignore(session, SQLAExplanation, [row]) == 1
    with store.session() as session:
        stored = session.execute(select(SQLAExplanation.text, SQLAExplanation.raw_output)).one()
    assert tuple(stored) == ("a\ufffdb", "\ufffd")


def test_insert_ignore_is_one_multi_row_statement(store: Store) -> None:
    with store.session() as session:
        run_id = _run_id(session)
    statements: list[tuple[str, object]] = []

    def record(
        _conn: object, _cursor: object, sql: str, params: object, _context: object, many: bool
    ) -> None:
        statements.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.session() as session:
            rows = [_explanation(run_id, i) for i in range(200)]
            assert insert_ignore(session, SQLAExplanation, rows) == 200
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    inserts = [(sql, params) for sql, params in statements if sql.lstrip().startswith("INSERT")]
    assert len(inserts) == 1  # insertmanyvalues: one VALUES list for all rows, not one round trip per row
    sql, params = inserts[0]
    assert "ON CONFLICT DO NOTHING" in sql and "RETURNING" in sql
    assert len(params) == 200 * (len(rows[0]) + 1)  # every row's values (and created_at) in that statement


def _token(session: Session, campaign_id: int) -> SQLATokenPosition:
    """A variant, its transcript and one token position."""
    variant = SQLAVariant(
        campaign_id=campaign_id, variant_key="v0", scenario_id="s", scenario_version=1, conditions_json={}
    )
    session.add(variant)
    session.flush()
    transcript = SQLATranscript(variant_id=variant.id, source="given", status="ok")
    session.add(transcript)
    session.flush()
    token = SQLATokenPosition(
        transcript_id=transcript.id, position=0, token_id=1, token_text="<s>", role="system",
        message_index=0, in_content=False, is_special=True,
    )  # fmt: skip
    session.add(token)
    session.flush()
    return token


def _flag(session: Session) -> SQLAFlag:
    run_id = _run_id(session)
    explanation = SQLAExplanation(**_explanation(run_id))
    session.add(explanation)
    token = _token(session, session.get(SQLARun, run_id).campaign_id)
    flag = SQLAFlag(
        campaign_id=1, token_position_id=token.id, activation_key="a" * 64, checkpoint_id="init-abc",
        sampling_key="b" * 64, theme_id="deception", theme_version=1, rule_key="c" * 64, raised=True,
        score=0.8, agreement=1.0, n_samples=2, n_hits=2, neighbours=0, low_fidelity=False,
        explanation_id=explanation.id, in_reply=False, in_prompt=False,
    )  # fmt: skip
    session.add(flag)
    session.flush()
    return flag


@pytest.mark.parametrize(
    ("author", "decision", "reason"),
    [("ann", "confirm", "  "), (" ", "confirm", "clear lie"), ("ann", "maybe", "clear lie")],
)
def test_review_constraints(store: Store, author: str, decision: str, reason: str) -> None:
    with store.session() as session:
        flag_id = _flag(session).id
    with store.session() as session:
        session.add(SQLAReview(flag_id=flag_id, author="ann", decision="confirm", reason="clear lie"))
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(SQLAReview(flag_id=flag_id, author=author, decision=decision, reason=reason))


def test_upgrade_from_0001_keeps_rows(store_url: str) -> None:
    upgrade(store_url, "0001")
    with open_store(store_url, check=False) as opened, opened.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO campaigns (name, description, spec_json, spec_hash, created_at) "
            "VALUES ('c', '', '{}', 'x', '2026-01-01 00:00:00')"
        )
    upgrade(store_url)
    with open_store(store_url) as opened, opened.session() as session:
        assert session.scalar(select(SQLACampaign.name)) == "c"
    downgrade(store_url, "0001")
    assert current_revision(store_url) == "0001"


def test_check_constraints(store: Store) -> None:
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(SQLARun(campaign_id=1, provenance_json={}, executor="local", status="paused"))


def test_timestamps_are_aware_utc(store: Store) -> None:
    with store.session() as session:
        run_id = _run_id(session)
    with store.session() as session:
        started = session.get(SQLARun, run_id).started_at
        assert started.utcoffset() is not None and started.utcoffset().total_seconds() == 0
    with pytest.raises(StatementError, match="naive datetime"), store.session() as session:
        session.get(SQLARun, run_id).finished_at = datetime(2026, 1, 1)


@pytest.mark.parametrize("d_model", [576, 3584])
def test_vector_blob_round_trip(d_model: int) -> None:
    vector = np.random.default_rng(d_model).standard_normal(d_model).astype(np.float32)
    vector[:3] = [np.float32(1e-38), np.float32(-3.4e38), np.float32(1 / 3)]
    blob = vector_to_blob(vector)
    assert len(blob) == 4 * d_model
    back = blob_to_vector(blob, d_model)
    assert back.dtype == np.float32 and back.flags.writeable
    assert back.tobytes() == vector.tobytes()
    assert vector_to_blob(vector.astype(">f4")) == blob  # big-endian input, same little-endian bytes
    assert vector_to_blob(torch.from_numpy(vector)) == blob
    assert activation_key(blob) == vector_digest(torch.from_numpy(vector))
    with pytest.raises(StoreError, match="d_model=7"):
        blob_to_vector(blob, 7)
    with pytest.raises(ValueError, match="1-D"):
        vector_to_blob(vector.reshape(1, -1))


def test_activation_vector_stored_exactly(store: Store) -> None:
    vector = np.random.default_rng(0).standard_normal(3584).astype(np.float32)
    blob = vector_to_blob(vector)
    with store.session() as session:
        campaign_id = session.get(SQLARun, _run_id(session)).campaign_id
        token = _token(session, campaign_id)
        session.add(
            SQLAActivation(
                campaign_id=campaign_id,
                token_position_id=token.id,
                model_ref="m",
                layer=20,
                activation_key=activation_key(blob),
                d_model=3584,
                norm=float(np.linalg.norm(vector)),
                vector=blob,
            )
        )
    with store.session() as session:
        row = session.scalars(select(SQLAActivation)).one()
        assert np.array_equal(blob_to_vector(row.vector, row.d_model), vector)


def test_canonical_json_keys() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'
    assert json_key({"b": 1, "a": 2}) == json_key({"a": 2, "b": 1})
    assert len(json_key({})) == 64
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_uninitialised_database_is_refused(store_url: str) -> None:
    with pytest.raises(StoreError, match=r"not initialised: run `nla-workbench db upgrade --db "):
        open_store(store_url)
    with open_store(store_url, check=False) as opened, opened.engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE other (x INTEGER)")
    with pytest.raises(StoreError, match="not initialised"):
        open_store(store_url)


def test_checking_a_missing_sqlite_file_never_creates_it(tmp_path: Path) -> None:
    # SQLite-only: a PostgreSQL database is never created by connecting to it.
    missing = tmp_path / "new.db"
    with pytest.raises(StoreError, match="not initialised"):
        open_store(str(missing))
    assert current_revision(str(missing)) is None
    assert not missing.exists()


def test_newer_revision_is_refused(db: str) -> None:
    with open_store(db, check=False) as opened, opened.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(
        StoreError, match=r"schema revision 9999_future, newer than .*: upgrade nla-workbench"
    ):
        open_store(db)
    with pytest.raises(StoreError, match="newer"):
        upgrade(db)


def test_unreachable_databases_give_one_clear_error(tmp_path: Path) -> None:
    # SQLite file paths (missing directory, garbage file) and an unreachable server URL.
    nowhere = tmp_path / "missing" / "x.db"
    for attempt in (open_store, upgrade, current_revision):
        with pytest.raises(StoreError, match=f"directory {tmp_path / 'missing'} does not exist"):
            attempt(str(nowhere))
    assert not nowhere.parent.exists()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database " * 10)
    with pytest.raises(StoreError, match="garbage.db: file is not a database"):
        open_store(str(garbage))
    with pytest.raises(StoreError) as caught:
        open_store(BAD_URL)
    assert "u:***@127.0.0.1:1/x" in str(caught.value) and "secret" not in str(caught.value)


def test_missing_postgresql_database_gives_one_clear_error(postgres_server: PostgresServer) -> None:
    url = postgres_server.url("no_such_database").render_as_string(hide_password=False)
    for attempt in (open_store, upgrade, current_revision):
        with pytest.raises(
            StoreError, match=f'cannot .* database {re.escape(url)}: .*"no_such_database" does not exist'
        ):
            attempt(url)


def test_failed_upgrade_writes_nothing(store_url: str) -> None:
    with pytest.raises(StoreError, match="Can't locate revision"):
        upgrade(store_url, revision="no-such-revision")
    assert current_revision(store_url) is None
    assert _tables(store_url) == set() and "alembic_version" not in _all_tables(store_url)


def test_failed_upgrade_removes_a_new_sqlite_file(tmp_path: Path) -> None:
    # SQLite-only: the file (and its WAL side files) that the failed upgrade created goes away.
    with pytest.raises(StoreError, match="Can't locate revision"):
        upgrade(str(tmp_path / "new.db"), revision="no-such-revision")
    assert list(tmp_path.iterdir()) == []


def test_cli_upgrade_and_current(
    store_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process through the real entry point (the subprocess start costs ~5 s of torch imports).
    from workbench.cli.app import main

    monkeypatch.setattr(sys, "argv", ["nla-workbench", "db", "upgrade", "--db", store_url])
    main()
    assert f"not initialised -> {head_revision()} (head)" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["nla-workbench", "db", "current", "--db", store_url])
    main()
    assert capsys.readouterr().out.strip() == f"{store_url}: {head_revision()} (head)"


def test_cli_upgrade_and_current_with_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # SQLite-only: a relative file path resolves against the working directory.
    from workbench.cli.app import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["nla-workbench", "db", "upgrade", "--db", str(tmp_path / "x.db")])
    main()
    assert f"not initialised -> {head_revision()} (head)" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["nla-workbench", "db", "current", "--db", "x.db"])
    main()
    assert capsys.readouterr().out.strip() == f"x.db: {head_revision()} (head)"


def test_cli_bad_url_exits_2_without_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "db", "upgrade", "--db", BAD_URL],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "secret" not in output and "Traceback" not in output
    assert "postgresql://u:***@127.0.0.1:1/x" in output
