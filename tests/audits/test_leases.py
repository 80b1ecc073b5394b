"""One live runner per campaign (``audits.store.leases``), on SQLite and PostgreSQL.

In-process: the lease is taken atomically (a second transaction waits for the first and is refused), a
live holder is refused with one message naming it, a dead holder (its pid gone on this host, or silent
for longer than STALE_AFTER on another) is taken over and its run marked interrupted, and a holder whose
lease was taken stops at its next heartbeat.

Real processes: ``nla-workbench campaign run`` twice, started at the same instant (forked from one warm
parent), and a third started while the winner works. One completes, the others exit 2 with the message
and write nothing: one run row, ``completed``, and one run's rows.

``python -m tests.audits.test_leases DB OUT`` is that warm parent; it prints the children's exit codes
as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from audits.campaign_status import campaign_status
from audits.store import SQLACampaign, SQLARun, SQLARunLease, open_store, upgrade
from audits.store.leases import STALE_AFTER, CampaignLease, LeaseHeldError, LeaseLostError, db_now
from tests.audits.test_crash_resume import (
    NAME,
    REPO,
    assert_no_orphans,
    crash_spec,
    fresh_store,
    run_statuses,
    snapshot,
)


@pytest.fixture
def store(store_url: str):
    """A migrated store on each backend holding one campaign row (the lease only needs its id)."""
    upgrade(store_url)
    with open_store(store_url) as opened:
        with opened.session() as s:
            s.add(SQLACampaign(name="c", description="", spec_json={}, spec_hash="0" * 64))
        yield opened


def _campaign_id(store) -> int:
    with store.session() as s:
        return s.scalar(select(SQLACampaign.id))


def _lease(store, **kwargs) -> CampaignLease:
    return CampaignLease(store, _campaign_id(store), "c", **kwargs)


def _open_run(store, lease: CampaignLease) -> int:
    """What the runner does when it opens a run: take the lease, add the run, attach it."""
    with store.session() as s:
        lease.acquire(s)
        run = SQLARun(campaign_id=lease.campaign_id, provenance_json={}, executor="in-process")
        s.add(run)
        s.flush()
        lease.attach(s, run.id)
        return run.id


def _rows(store) -> tuple[list, list]:
    with store.session() as s:
        leases = s.execute(select(SQLARunLease.holder, SQLARunLease.pid, SQLARunLease.run_id)).all()
        runs = s.execute(select(SQLARun.id, SQLARun.status).order_by(SQLARun.id)).all()
    return [tuple(r) for r in leases], [tuple(r) for r in runs]


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_a_live_holder_is_refused_and_nothing_is_written(store) -> None:
    first = _lease(store)
    run_id = _open_run(store, first)
    before = _rows(store)
    with pytest.raises(LeaseHeldError) as refused:
        _open_run(store, _lease(store))
    message = str(refused.value)
    assert "campaign 'c' is already being run" in message
    assert f"run {run_id}, process {os.getpid()} on this host" in message
    assert _rows(store) == before == ([(first.holder, os.getpid(), run_id)], [(run_id, "running")])
    with pytest.raises(LeaseHeldError):
        _lease(store).check_free()


def test_acquire_is_atomic_across_two_transactions(store) -> None:
    """A second acquire waits for the first transaction, then sees its lease and is refused."""
    first, second = _lease(store), _lease(store)
    outcome: list[BaseException | None] = []

    def contender() -> None:
        try:
            _open_run(store, second)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 (handed to the test thread)
            outcome.append(error)

    with store.session() as s:
        first.acquire(s)
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), "the second acquire did not wait for the first transaction"
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], LeaseHeldError), outcome
    leases, runs = _rows(store)
    assert leases == [(first.holder, os.getpid(), None)] and runs == []


def test_a_dead_holder_on_this_host_is_taken_over_at_once(store) -> None:
    dead = _lease(store, pid=_dead_pid())
    old_run = _open_run(store, dead)
    taker = _lease(store)
    with store.session() as s:
        assert taker.acquire(s) == old_run
    leases, runs = _rows(store)
    assert leases == [(taker.holder, os.getpid(), None)]
    assert runs == [(old_run, "interrupted")]


def test_a_holder_on_another_host_is_taken_over_only_when_silent(store) -> None:
    remote = _lease(store, host="elsewhere.example", pid=os.getpid())
    old_run = _open_run(store, remote)
    with pytest.raises(LeaseHeldError, match=r"process \d+ on elsewhere.example.*last heartbeat 0 s ago"):
        _open_run(store, _lease(store))
    with store.session() as s:  # silent for just under STALE_AFTER: still presumed alive
        almost = db_now(s) - STALE_AFTER + timedelta(seconds=30)
        s.execute(update(SQLARunLease).values(heartbeat_at=almost))
    with pytest.raises(LeaseHeldError):
        _open_run(store, _lease(store))
    with store.session() as s:
        s.execute(update(SQLARunLease).values(heartbeat_at=db_now(s) - STALE_AFTER - timedelta(seconds=30)))
    taker = _lease(store)
    new_run = _open_run(store, taker)
    assert _rows(store) == (
        [(taker.holder, os.getpid(), new_run)],
        [(old_run, "interrupted"), (new_run, "running")],
    )
    # the presumed-dead holder wakes up: its next heartbeat stops it, and it leaves its run as marked
    with pytest.raises(LeaseLostError, match="was taken over by process"):
        remote.heartbeat(force=True)
    with store.session() as s:
        assert remote.release(s) is False
    assert _rows(store)[1] == [(old_run, "interrupted"), (new_run, "running")]


def test_heartbeats_move_forward_and_release_frees_the_campaign(store) -> None:
    lease = _lease(store, beat_every=0.0)
    _open_run(store, lease)
    with store.session() as s:
        s.execute(update(SQLARunLease).values(heartbeat_at=db_now(s) - timedelta(minutes=5)))
    stages = lease.beating(_null_stage)
    with stages("explanations") as stage:
        stage.advance(1)
    with store.session() as s:
        age = db_now(s) - s.scalar(select(SQLARunLease.heartbeat_at))
        assert age < timedelta(minutes=1)
        assert lease.release(s) is True
    assert _rows(store)[0] == []
    _lease(store).check_free()


class _Null:
    def set_total(self, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...


def _null_stage(name: str):
    from contextlib import nullcontext

    return nullcontext(_Null())


# -- two real runner processes ---------------------------------------------------------------------
def _child(url: str, out: Path, tag: str) -> None:
    """One ``nla-workbench campaign run`` in this forked process; its output in ``out/<tag>.log``."""
    fd = os.open(out / f"{tag}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.argv = ["nla-workbench", "campaign", "run", NAME, "--db", url]
    from workbench.cli.app import main

    code = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fork(url: str, out: Path, tag: str) -> int:
    pid = os.fork()
    if pid == 0:
        _child(url, out, tag)
    return pid


def _wait_for_open_run(url: str, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open_store(url) as store, store.session() as s:  # closed before the next fork
            if s.scalar(select(func.count()).where(SQLARunLease.run_id.is_not(None))):
                return
        time.sleep(0.05)
    raise TimeoutError("the first runner never opened its run")


def serve(url: str, out: str) -> None:
    """The warm parent: import the CLI and torch once, fork two runners at the same instant and a third
    once one of them has opened its run, wait for all three, print their exit codes."""
    import audits.runner  # noqa: F401 (torch and the runner, imported once before forking)
    import workbench.cli.app  # noqa: F401

    out_dir = Path(out)
    pids = {"a": _fork(url, out_dir, "a"), "b": _fork(url, out_dir, "b")}
    _wait_for_open_run(url)
    pids["c"] = _fork(url, out_dir, "c")
    codes = {tag: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for tag, pid in pids.items()}
    print(json.dumps(codes), flush=True)


def test_runners_started_together_and_later(
    tiny_dirs, tiny_taught_dir: Path, store_url: str, tmp_path: Path
) -> None:
    """Two ``campaign run`` of one campaign started at the same instant, a third while the winner works:
    one completes, the others exit 2 with one message and no traceback, and the store holds one
    completed run and one run's rows (no duplicate, nothing missing, no orphan)."""
    fresh_store(store_url, crash_spec(tiny_dirs, tiny_taught_dir))
    done = subprocess.run(
        [sys.executable, "-m", "tests.audits.test_leases", store_url, str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NLA_WORKBENCH_CACHE": str(tmp_path / "cache"), "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    logs = {tag: (tmp_path / f"{tag}.log").read_text() for tag in codes}
    assert sorted(codes.values()) == [0, 2, 2] and codes["c"] == 2, (codes, logs)
    winner = next(tag for tag, code in codes.items() if code == 0)
    assert "run 1 completed" in logs[winner], logs[winner]
    for tag in set(codes) - {winner}:
        refusal = " ".join(logs[tag].split())
        assert "error: campaign 'crash' is already being run (run 1, process" in refusal, refusal
        assert "Traceback" not in refusal and "IntegrityError" not in refusal, refusal
    assert run_statuses(store_url) == [("completed", True)]
    got = snapshot(store_url)  # fails on a duplicate natural key
    assert_no_orphans(store_url, finished=True)
    with open_store(store_url) as store:
        status = campaign_status(store, NAME, {})
        with store.session() as s:
            assert s.scalar(select(func.count()).select_from(SQLARunLease)) == 0
    assert status.transcripts == {"ok": status.variants} and status.explanations == {
        "ok": status.expected_explanations
    }
    assert len(got["explanations"]) == status.expected_explanations and got["flags"]


if __name__ == "__main__":
    serve(*sys.argv[1:3])
