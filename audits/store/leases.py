"""One live runner per campaign: a lease row in ``run_leases``.

A runner takes its campaign's lease in the transaction that opens its run: an
``INSERT ... ON CONFLICT DO NOTHING`` on the campaign's primary key, so of two runners started together
exactly one gets it, on SQLite (writers are serialised) and PostgreSQL (the second insert waits for the
first transaction and then does nothing). The holder refreshes ``heartbeat_at`` as its stages advance and
deletes the row when its run closes. A second runner finds the row and is refused with one message naming
the holder, unless the holder is dead:

- on the same host, its process is gone (or a zombie): taken over at once;
- anywhere, it has not beaten for :data:`STALE_AFTER` (by the database server's clock): taken over.

Taking over is a conditional ``UPDATE ... WHERE holder = <the dead holder>``, so two runners that both
find the same dead holder cannot both win. The taker then marks the campaign's runs still ``running``
as ``interrupted``: with the lease held, no live runner can own them. A holder that finds its lease
taken (it was presumed dead, e.g. suspended for longer than STALE_AFTER) stops at its next heartbeat
with :class:`LeaseLostError` and leaves its run as the taker marked it.

Heartbeats are written by the runner's own thread between units of work, never from a background
thread: on SQLite a concurrent commit between a transaction's read and its write would make that write
fail (``SQLITE_BUSY_SNAPSHOT``). A unit of work (a reply, a batch of explanations) therefore has to end
within STALE_AFTER for a runner on another host not to take over; on the same host the pid decides.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from audits.store.db import Store, insert_new
from audits.store.errors import StoreError
from audits.store.orm import SQLARun, SQLARunLease

STALE_AFTER = timedelta(minutes=10)
"""A holder that has not beaten for this long is presumed dead (the only test for holders on other hosts)."""
BEAT_EVERY = 15.0
"""Seconds between heartbeats (stage progress more frequent than this writes nothing)."""


class LeaseHeldError(StoreError):
    """Another live runner holds the campaign's lease."""


class LeaseLostError(StoreError):
    """This runner's lease was taken over by another runner, which presumed it dead."""


def db_now(session: Session) -> datetime:
    """The database server's current time, aware UTC (SQLite's ``CURRENT_TIMESTAMP`` is naive UTC)."""
    now = session.scalar(select(func.now()))
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (exited, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS): existence is all we know
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _ago(then: datetime, now: datetime) -> str:
    seconds = max((now - then).total_seconds(), 0.0)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


@dataclass
class CampaignLease:
    """This runner's claim on one campaign (create it, then :meth:`acquire` in the run-opening
    transaction)."""

    store: Store
    campaign_id: int
    campaign: str
    """The campaign's name, for messages."""
    stale_after: timedelta = STALE_AFTER
    beat_every: float = BEAT_EVERY
    holder: str = field(default_factory=lambda: uuid.uuid4().hex)
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    _last_beat: float = 0.0

    # -- taking and giving back ------------------------------------------------------------------
    def check_free(self) -> None:
        """Raise LeaseHeldError now if a live runner holds the campaign (a read: the real test is
        :meth:`acquire`; this one lets a second runner be refused before it loads any model)."""
        with self.store.session() as session:
            held = session.get(SQLARunLease, self.campaign_id)
            if held is not None:
                self._refuse_unless_dead(held, db_now(session))

    def acquire(self, session: Session) -> int | None:
        """Take the lease inside ``session``'s transaction and mark the campaign's runs still
        ``running`` as ``interrupted`` (their runners are dead). Return the run id of a dead holder
        taken over (None when the lease was free). Raise LeaseHeldError if a live runner holds it."""
        now = db_now(session)
        mine = {"holder": self.holder, "host": self.host, "pid": self.pid, "run_id": None,
                "acquired_at": now, "heartbeat_at": now}  # fmt: skip
        taken_from = None
        row = {"campaign_id": self.campaign_id, **mine}
        while not insert_new(session, SQLARunLease, [row], SQLARunLease.campaign_id):
            held = session.get(SQLARunLease, self.campaign_id, populate_existing=True)
            if held is None:  # released between our insert and our read: try again
                continue
            self._refuse_unless_dead(held, now)
            taken_from, dead_holder = held.run_id, held.holder  # read before the update refreshes ``held``
            won = session.execute(
                update(SQLARunLease)
                .where(SQLARunLease.campaign_id == self.campaign_id, SQLARunLease.holder == dead_holder)
                .values(**mine)
            ).rowcount
            if won != 1:  # another runner took the dead holder's lease first: it is the live one now
                taker = session.get(SQLARunLease, self.campaign_id, populate_existing=True)
                raise LeaseHeldError(self._held_message(taker or held, now))
            break
        session.execute(
            update(SQLARun)
            .where(SQLARun.campaign_id == self.campaign_id, SQLARun.status == "running")
            .values(status="interrupted")
        )
        self._last_beat = time.monotonic()
        return taken_from

    def attach(self, session: Session, run_id: int) -> None:
        """Record the holder's run (in the transaction that created it)."""
        session.execute(
            update(SQLARunLease)
            .where(SQLARunLease.campaign_id == self.campaign_id, SQLARunLease.holder == self.holder)
            .values(run_id=run_id)
        )

    def release(self, session: Session) -> bool:
        """Give the lease back; False if it was no longer ours (taken over: leave the run as the taker
        marked it)."""
        gone = session.execute(
            delete(SQLARunLease).where(
                SQLARunLease.campaign_id == self.campaign_id, SQLARunLease.holder == self.holder
            )
        )
        return gone.rowcount == 1

    # -- staying alive ---------------------------------------------------------------------------
    def heartbeat(self, *, force: bool = False) -> None:
        """Refresh ``heartbeat_at`` (at most every ``beat_every`` seconds unless ``force``), in its own
        short transaction; raise LeaseLostError if another runner has taken the lease."""
        if not force and time.monotonic() - self._last_beat < self.beat_every:
            return
        with self.store.session() as session:
            held = session.execute(
                update(SQLARunLease)
                .where(SQLARunLease.campaign_id == self.campaign_id, SQLARunLease.holder == self.holder)
                .values(heartbeat_at=func.now())
            ).rowcount
            taker = None if held else session.get(SQLARunLease, self.campaign_id)
        self._last_beat = time.monotonic()
        if not held:
            by = f" by process {taker.pid} on {taker.host}" if taker is not None else ""
            raise LeaseLostError(
                f"campaign {self.campaign!r} was taken over{by}, which presumed this runner dead (no "
                f"heartbeat for {self.stale_after.total_seconds():.0f} s); this run stops here and keeps "
                "what it stored"
            )

    def beating(
        self, stages: Callable[[str], AbstractContextManager[Any]]
    ) -> Callable[[str], AbstractContextManager[Any]]:
        """Wrap a runner's stage factory so that every stage heartbeats as it starts and advances."""

        @contextmanager
        def stage(name: str) -> Iterator[_BeatingStage]:
            with stages(name) as inner:
                self.heartbeat(force=True)
                yield _BeatingStage(inner, self)

        return stage

    # -- deciding ----------------------------------------------------------------------------------
    def _refuse_unless_dead(self, held: SQLARunLease, now: datetime) -> None:
        """Return if ``held`` belongs to a dead runner, else raise LeaseHeldError describing it."""
        if held.host == self.host and not pid_alive(held.pid):
            return
        if now - held.heartbeat_at > self.stale_after:
            return
        raise LeaseHeldError(self._held_message(held, now))

    def _held_message(self, held: SQLARunLease, now: datetime) -> str:
        same_host = held.host == self.host
        run = f"run {held.run_id}, " if held.run_id is not None else ""
        return (
            f"campaign {self.campaign!r} is already being run ({run}process {held.pid} on "
            f"{'this host' if same_host else held.host}, started {_ago(held.acquired_at, now)}, last "
            f"heartbeat {_ago(held.heartbeat_at, now)}); wait for it to finish or stop it, then run again "
            f"(a runner that died is taken over: at once on this host, after "
            f"{self.stale_after.total_seconds() / 60:.0f} min without heartbeat from another)"
        )


@dataclass
class _BeatingStage:
    """A runner stage whose progress also heartbeats the lease."""

    inner: Any
    lease: CampaignLease

    def set_total(self, total: int) -> None:
        self.inner.set_total(total)
        self.lease.heartbeat()

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)
        self.lease.heartbeat()


def live_lease(store: Store, campaign_id: int) -> tuple[SQLARunLease, datetime] | None:
    """The campaign's lease row (holder, host, pid, run, heartbeat) and the database's time, if any."""
    with store.session() as session:
        held = session.get(SQLARunLease, campaign_id)
        return (held, db_now(session)) if held is not None else None
