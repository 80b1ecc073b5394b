"""How the real ``nla-workbench`` process ends when things go wrong: Ctrl-C during a run exits 130 and
leaves a resumable run, an internal bug keeps its traceback, a database that refuses writes gets one
line without SQL or parameters, credentials in a URL never reach the terminal, and untrusted text
(descriptions, review authors and reasons, model output) never reaches it as escape sequences.
(Usage errors and bad input are in tests/test_bad_input.py.)"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from audits.campaign_registry import register_campaign
from audits.campaign_spec import campaign_from_dict
from audits.review import add_review, term_review_history
from audits.store import SQLAExplanation, SQLAFlag, SQLARun, SQLARunLease, open_store, upgrade
from tests.audit_store import build_audit_store
from tests.audits.test_runner import campaign
from workbench.cli.text import terminal_safe

REPO = Path(__file__).resolve().parents[2]
ESCAPES = "\x1b]8;;https://evil.example\x07click me\x1b]8;;\x07 \x1b[2J\x1b[31mred\r\u202egnp.exe"


def _env(tmp_path: Path) -> dict[str, str]:
    return {"NLA_WORKBENCH_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}


def cli(*args: str, tmp_path: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=tmp_path,
        env=_env(tmp_path), check=False, timeout=300, **kwargs,
    )  # fmt: skip


def test_terminal_safe_shows_every_control_character() -> None:
    shown = terminal_safe(ESCAPES + "\ttab\nline\x00\x7f\x9b")
    assert not any(ord(c) < 32 and c not in "\t\n" or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert "\u202e" not in shown
    assert shown == (
        "\\x1b]8;;https://evil.example\\x07click me\\x1b]8;;\\x07 \\x1b[2J\\x1b[31mred\\x0d\\u202egnp.exe"
        "\ttab\nline\\x00\\x7f\\x9b"
    )
    assert terminal_safe("plain — ünïcode ✓") == "plain — ünïcode ✓" and terminal_safe(None) == ""


def _default_sigint() -> None:
    """The child gets SIGINT's default disposition, as at a terminal: a suite started in the background
    (``cmd &`` in a script, ``nohup``) inherits SIGINT ignored, and Python then never raises
    KeyboardInterrupt, so the run would finish instead of stopping."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_run_exits_130_and_the_run_resumes(tiny_dirs, tiny_init_dirs, tmp_path: Path) -> None:
    slow = campaign(
        tiny_dirs, tiny_init_dirs, tokens={"max_per_transcript": 12}, nla={"batch_size": 1},
        sampling={"max_new_tokens": 64, "samples": 4},
    )  # fmt: skip  # a second or more of explanations left after the first one is stored, even when idle
    (tmp_path / "probe.yaml").write_text(yaml.safe_dump(slow))
    db = str(tmp_path / "store.db")
    upgrade(db)
    assert cli("campaign", "create", "probe.yaml", "--db", db, tmp_path=tmp_path).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "campaign", "run", "probe", "--db", db], cwd=tmp_path,
        env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    watch = None  # one cheap read-only connection: re-opening the store per poll took longer than the tiny
    # model needs for the rest of its explanations, so the SIGINT could come after the run had finished
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            watch = watch or sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            if watch.execute("SELECT count(*) FROM explanations").fetchone()[0]:
                break
        except sqlite3.OperationalError:  # the run is creating its first rows
            pass
        time.sleep(0.005)
    if watch is not None:
        watch.close()
    if proc.poll() is not None:  # say how it ended: an error, or a run too quick to interrupt
        out, err = proc.communicate()
        raise AssertionError(
            f"the run ended (exit {proc.returncode}) before it could be interrupted:\n{out}\n{err}"
        )
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "interrupted; run again to resume: nla-workbench campaign run probe --db" in err, err
    assert "Traceback" not in err, err
    with open_store(db) as store, store.session() as s:
        runs = s.execute(select(SQLARun.status, SQLARun.finished_at)).all()
        assert s.scalar(select(func.count()).select_from(SQLARunLease)) == 0  # the lease went back
        partial = s.scalar(select(func.count()).select_from(SQLAExplanation))
    assert [status for status, _ in runs] == ["interrupted"] and runs[0][1] is not None
    resumed = cli("campaign", "run", "probe", "--db", db, tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    with open_store(db) as store, store.session() as s:
        statuses = s.scalars(select(SQLARun.status).order_by(SQLARun.id)).all()
        total = s.scalar(select(func.count()).select_from(SQLAExplanation))
    assert statuses == ["interrupted", "completed"] and total > partial


def test_an_internal_bug_keeps_its_traceback(tmp_path: Path) -> None:
    """A ValueError that is not a user error (here raised by a command added for the test) is a bug: the
    process fails with its traceback, never as a tidy "error:" line with exit 2."""
    code = (
        "import sys\nfrom workbench.cli.app import app, main\n"
        "@app.command('boom')\ndef boom() -> None:\n    int('not a number')\n"
        "sys.argv = ['nla-workbench', 'boom']\nmain()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=_env(tmp_path), check=False)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert (
        "Traceback" in done.stderr and "invalid literal for int() with base 10: 'not a number'" in done.stderr
    )
    assert "error: invalid literal" not in done.stderr


def _immutable(path: Path) -> bool:
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode == 0


def test_a_read_only_store_gets_one_line_without_sql(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    upgrade(str(db))
    if not _immutable(db):
        pytest.skip("chattr +i is not available here (needs root and a file system that supports it)")
    try:
        done = cli("campaign", "create", "--from-library", "starter", "--db", "store.db", tmp_path=tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: database store.db: attempt to write a readonly database"
    with open_store(str(db)) as store, store.session() as s:
        assert s.scalar(select(func.count()).select_from(SQLARun)) == 0


def test_a_password_in_the_url_query_is_never_printed(postgres_url: str, tmp_path: Path) -> None:
    url = postgres_url + "?password=s3cret&sslpassword=k3y&application_name=audit"
    done = cli("db", "upgrade", "--db", url, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr and "k3y" not in done.stdout + done.stderr
    assert "?application_name=audit&password=***&sslpassword=***: not initialised -> " in done.stdout
    created = cli("campaign", "create", "--from-library", "starter", "--db", url, tmp_path=tmp_path)
    assert created.returncode == 0, created.stderr
    assert "s3cret" not in created.stdout + created.stderr and "--db postgresql" in created.stdout


def test_untrusted_text_reaches_the_terminal_escaped(
    tiny_dirs, tiny_taught_dir: Path, tiny_init_dirs, tmp_path: Path
) -> None:
    db = build_audit_store(tmp_path / "store.db", tiny_dirs, tiny_taught_dir)
    spec = campaign(tiny_dirs, tiny_init_dirs, name="described", description=ESCAPES)
    with open_store(db) as store:
        register_campaign(store, campaign_from_dict(spec, {}))
        with store.session() as s:
            flag = s.scalar(select(SQLAFlag.id).where(SQLAFlag.raised).order_by(SQLAFlag.id))
        add_review(store, flag, author="eve" + ESCAPES, decision="follow_up", reason="see " + ESCAPES)
    term = cli("review", "term", "xss", "cat" + ESCAPES, "--decision", "confirm", "--reason", "see " + ESCAPES,
               "--author", "eve" + ESCAPES, "--db", db, tmp_path=tmp_path)  # fmt: skip
    assert term.returncode == 0, term.stderr
    with open_store(db) as store:
        last = term_review_history(store, "xss").iloc[-1]
    assert (last["term"], last["arm"], last["against"], last["decision"]) == (" ".join(("cat" + ESCAPES).lower().split()),
                                                                              "main", "control", "confirm")  # fmt: skip
    for args in (("campaign", "list"), ("review", "history", "xss"), ("review", "terms", "xss"), ()):
        done = term if not args else cli(*args, "--db", db, tmp_path=tmp_path)
        assert done.returncode == 0, done.stderr
        assert not any(c in done.stdout for c in "\x1b\x07\r\u202e"), repr(done.stdout)
        assert "\\x1b" in done.stdout and "\\x07" in done.stdout, done.stdout  # shown, not obeyed
