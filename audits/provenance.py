"""Provenance recorded with every run: code version, environment, models, seeds, the exact spec."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = (
    "nla-workbench",
    "torch",
    "transformers",
    "peft",
    "safetensors",
    "sqlalchemy",
    "alembic",
    "pydantic",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(repo: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the working tree the code runs from (None outside a checkout)."""
    cwd = repo or Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = None if commit is None else bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": commit, "dirty": dirty}


def run_provenance(**extra: Any) -> dict[str, Any]:
    """Everything needed to say how a run's results were produced."""
    return {
        "packages": package_versions(),
        "git": git_revision(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        **extra,
    }
