"""Provenance stamped on every training output: code revision and package versions."""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path
from typing import Any

_PACKAGES = ("nla-workbench", "torch", "transformers", "peft", "pyarrow")


@functools.cache
def provenance() -> dict[str, Any]:
    """The git revision of this checkout (when it is one) and versions of the packages that matter."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"git_commit": commit, "packages": versions}
