"""A dashboard reader polling the store while a campaign writes it: no lock errors, bounded WAL.

The runner is the real CLI (``nla-workbench campaign run``) in a subprocess; this process plays the
dashboard, calling the queries its pages make (campaign table, raised flags, rates, transcript list,
token scores, campaign status) in a loop until the run ends. Every exception the reader meets is
counted; there must be none, and the runner must finish ``completed``.

On SQLite the reader also samples the write-ahead log. SQLite checkpoints automatically once the WAL
holds ``wal_autocheckpoint`` pages (1000 by default) and restarts it from the top at the next write
once every frame is back in the database and no reader still needs them; readers that hold their
snapshot for milliseconds cannot pin it for long. So the file should never exceed about twice the
checkpoint threshold (the threshold, plus what is committed while a reader delays one restart):
``WAL_BOUND`` is that, in bytes. The campaign is sized so its commits write several times the
bound, which the WAL header's checkpoint sequence number (it counts restarts) confirms; without
checkpoints the file would exceed the bound and the test would fail. When the last connection closes
SQLite checkpoints and deletes the WAL.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from audits.campaign_status import campaign_status
from audits.read_model import campaigns, explanations, flags, transcripts
from audits.store import Store, open_store, upgrade
from audits.store.engine import sqlite_file
from tests.audits.test_runner import GIVEN, SCENARIO, campaign

NAME = "busy"
REPO = Path(__file__).resolve().parents[2]
FRAME_HEADER, WAL_HEADER = 24, 32
POLL_PAUSE = 0.02
"""Seconds between polls: far busier than a dashboard, but leaves the 2-core runner some CPU."""
BOUND_THRESHOLDS = 2
"""The WAL may hold up to this many checkpoint thresholds' worth of frames."""


@dataclass
class Observed:
    """What the reader saw."""

    polls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    wal_sizes: list[int] = field(default_factory=list)
    restarts: set[int] = field(default_factory=set)
    """Distinct WAL checkpoint sequence numbers seen (one per restart of the log)."""


def busy_spec(tiny_dirs: dict[str, Path], tiny_taught_dir: Path) -> dict:
    """Many small commits: 12 scenarios x 3 variants, 10 tokens each, one vector per batch, themes on."""
    scenarios = [{**base, "id": f"{base['id']}-{i}"} for i in range(6) for base in (SCENARIO, GIVEN)]
    return campaign(
        tiny_dirs, {"llama": tiny_taught_dir}, name=NAME, scenarios={"inline": scenarios},
        themes=["evaluation_awareness"], detectors=["lexicon"], tokens={"max_per_transcript": 10},
        nla={"batch_size": 1}, sampling={"temperature": 0.0, "max_new_tokens": 40},
    )  # fmt: skip


def poll_once(store: Store, wal: Path | None, seen: Observed) -> None:
    """Every dashboard query once; exceptions are counted, not raised."""
    calls = [
        lambda: campaigns.campaign_table(store),
        lambda: flags.raised_flags(store, NAME),
        lambda: flags.campaign_rates(store, NAME, include_low_fidelity=True),
        lambda: explanations.fidelity_summary(store, NAME),
        lambda: _token_scores(store),
        lambda: campaign_status(store, NAME, {}),
    ]
    for call in calls:
        try:
            call()
        except Exception as error:  # noqa: BLE001 (counted: the assertion is that there are none)
            seen.errors[f"{type(error).__name__}: {str(error)[:200]}"] += 1
        if wal is not None:
            _sample_wal(wal, seen)
    seen.polls += 1


def _token_scores(store: Store) -> None:
    listed = transcripts.transcript_list(store, NAME)
    if len(listed):
        setting = explanations.nla_setting(store, NAME)
        transcripts.token_scores(store, NAME, int(listed["transcript_id"].iloc[-1]), setting)


def _sample_wal(wal: Path, seen: Observed) -> None:
    try:
        with wal.open("rb") as f:
            header = f.read(WAL_HEADER)
        size = wal.stat().st_size
    except FileNotFoundError:
        return
    seen.wal_sizes.append(size)
    if len(header) == WAL_HEADER:
        seen.restarts.add(struct.unpack(">I", header[12:16])[0])


def wal_bound(store: Store) -> tuple[int, int]:
    """The WAL size bound in bytes, and one checkpoint threshold in bytes."""
    with store.engine.connect() as connection:
        page = connection.execute(text("PRAGMA page_size")).scalar_one()
        pages = connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one()
    threshold = pages * (page + FRAME_HEADER)
    return WAL_HEADER + BOUND_THRESHOLDS * threshold, threshold


@pytest.fixture
def db_url(store_url: str) -> str:
    """A fresh empty store on each backend (conftest's ``store_url``)."""
    return store_url


def test_dashboard_reads_while_a_campaign_writes(
    tiny_dirs, tiny_taught_dir: Path, db_url: str, tmp_path: Path
) -> None:
    upgrade(db_url)
    (tmp_path / "busy.yaml").write_text(yaml.safe_dump(busy_spec(tiny_dirs, tiny_taught_dir)))
    env = {**os.environ, "NLA_WORKBENCH_CACHE": str(tmp_path / "cache")}
    cli = [sys.executable, "-m", "workbench.cli", "campaign"]
    subprocess.run([*cli, "create", "busy.yaml", "--db", db_url], cwd=tmp_path, env=env, check=True)
    store = open_store(db_url)
    wal = None if sqlite_file(store.url) is None else Path(f"{sqlite_file(store.url)}-wal")
    seen = Observed()
    began = time.monotonic()
    runner = subprocess.Popen(
        [*cli, "run", NAME, "--db", db_url], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while runner.poll() is None and time.monotonic() - began < 400:
        poll_once(store, wal, seen)
        time.sleep(POLL_PAUSE)
    out, err = runner.communicate(timeout=60)
    elapsed = time.monotonic() - began
    assert runner.returncode == 0, err[-3000:]
    assert "completed" in out
    poll_once(store, wal, seen)  # after the run: the finished campaign reads cleanly too
    assert not seen.errors, dict(seen.errors)
    assert seen.polls >= 20, "the reader barely overlapped the run"
    status = campaign_status(store, NAME, {})
    assert status.explained == status.expected_explanations > 0 and status.flags["raised"] > 0
    print(f"{seen.polls} polls in {elapsed:.0f}s", end="")
    if wal is not None:
        bound, threshold = wal_bound(store)
        print(f"; WAL max {max(seen.wal_sizes)} bytes, bound {bound}, restarts seen {len(seen.restarts)}")
        assert max(seen.wal_sizes) <= bound
        # the run wrote more than the bound: at least (restarts - 1) full thresholds before this log
        assert (len(seen.restarts) - 1) * threshold + seen.wal_sizes[-1] > bound
    store.close()
    if wal is not None:
        assert not wal.exists() or wal.stat().st_size == 0  # the last close checkpointed and removed it
