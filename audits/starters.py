"""Starter campaigns shipped with the workbench (``campaign create --from-library NAME``)."""

from __future__ import annotations

from pathlib import Path

from audits.errors import SpecError

STARTERS = Path(__file__).parent / "campaigns"


def starter_names() -> list[str]:
    """Names of the packaged starter campaigns."""
    return sorted(p.stem for p in STARTERS.glob("*.yaml"))


def starter_path(name: str) -> Path:
    """The YAML file of a starter campaign."""
    path = STARTERS / f"{name}.yaml"
    if not path.is_file():
        raise SpecError(f"no starter campaign {name!r}; available: {', '.join(starter_names()) or 'none'}")
    return path
