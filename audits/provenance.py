"""Provenance recorded with every run: code version, environment, models, seeds, the exact spec."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

from nla.resolve import EMBEDDED, EMBEDDED_PREFIX

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


def weights_provenance(ref: str) -> dict[str, Any] | None:
    """Where an embedded model's weights come from and what was done to them, for the record: the
    embedded SmolLM2 is a Q4_1-quantised GGUF dequantised to float32, so its activations are those of
    the quantised model, not of the original bf16 release. None for other references (their files
    are what they are)."""
    if not ref.startswith(EMBEDDED_PREFIX) or ref[len(EMBEDDED_PREFIX) :] not in EMBEDDED:
        return None
    spec = EMBEDDED[ref[len(EMBEDDED_PREFIX) :]]
    return {
        "source": f"{spec.distribution}=={spec.version}:{spec.member}",
        "sha256": spec.sha256,
        "quantization": spec.quantization,
        "loaded_as": "dequantised to float32 (the quantisation error stays in every weight)",
    }


def run_provenance(**extra: Any) -> dict[str, Any]:
    """Everything needed to say how a run's results were produced (with how embedded weights were
    obtained, under ``weights``, for the target and every arm's base model)."""
    refs = [extra.get("target"), *(arm.get("base") for arm in (extra.get("arms") or {}).values())]
    weights = {ref: note for ref in refs if isinstance(ref, str) and (note := weights_provenance(ref))}
    return {
        "weights": weights,
        "packages": package_versions(),
        "git": git_revision(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        **extra,
    }
