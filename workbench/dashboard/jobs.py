"""Campaign runs started from the dashboard: a ``nla-workbench campaign run`` subprocess per
(store, campaign), its output in a log file. The run itself resumes and commits as on the command
line; the dashboard shows its progress by reading the store."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import streamlit as st


@dataclass
class Job:
    """A background campaign run."""

    process: subprocess.Popen
    log: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the run's output."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


@st.cache_resource(show_spinner=False)
def _jobs() -> dict[tuple[str, str], Job]:
    return {}


def current(db: str, campaign: str) -> Job | None:
    """The run this dashboard started for a campaign, if any."""
    return _jobs().get((db, campaign))


def start(db: str, campaign: str) -> Job:
    """Start (or resume) a campaign run in the background, unless one is already running."""
    job = current(db, campaign)
    if job is not None and job.running:
        return job
    digest = hashlib.sha256(f"{db}\0{campaign}".encode()).hexdigest()[:16]
    log = Path(tempfile.gettempdir()) / "nla-workbench-runs" / f"{campaign}-{digest}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "campaign", "run", campaign, "--db", db],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    job = _jobs()[(db, campaign)] = Job(process, log)
    return job
