"""Trained NLAs shipped inside the package, and the ``default`` checkpoint alias that picks one.

Each (target, layer) with bundled NLAs lists them oldest first; version ``vN`` is the N-th. ``default``
resolves to the newest one present for the target and layer (today: the embedded SmolLM2-135M-Instruct
at layer 20, trained by ``make bundled-nla``; see each directory's MODEL_CARD.md), and to the untrained
``init`` NLA where none ships. ``default@vN`` names one version, so an older NLA stays loadable for
comparison after ``default`` moves on. A directory keeps its name across releases, so its checkpoint id
(name plus content fingerprint) and the explanations stored under it stay valid.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from nla.errors import CheckpointError
from nla.resolve import DEFAULT_TARGET

DEFAULT = "default"
VERSION_SEP = "@"
BUNDLED: dict[tuple[str, int], tuple[str, ...]] = {
    (DEFAULT_TARGET, 20): ("smollm2-135m-instruct-L20", "smollm2-135m-instruct-L20-v2"),
}
_DEFAULT_LAYERS = {DEFAULT_TARGET: 20}


def bundled_dir(name: str) -> Path:
    """Where bundled NLA ``name`` lives in the installed package."""
    return Path(str(resources.files("nla.data"))) / "nla" / name


def is_default_ref(ref: str) -> bool:
    """Whether ``ref`` is ``default`` or a versioned ``default@vN``."""
    return ref == DEFAULT or ref.startswith(DEFAULT + VERSION_SEP)


def bundled_versions(target_ref: str | None, layer: int | None) -> dict[str, Path]:
    """The bundled NLAs present for ``target_ref`` at ``layer`` (default layer if None), by version."""
    layer = _DEFAULT_LAYERS.get(target_ref or "") if layer is None else layer
    names = BUNDLED.get((target_ref or "", layer), ()) if layer is not None else ()
    found = {f"v{i}": bundled_dir(name) for i, name in enumerate(names, start=1)}
    return {version: path for version, path in found.items() if (path / "av").is_dir()}


def resolve_default(target_ref: str | None, layer: int | None, ref: str = DEFAULT) -> str:
    """The checkpoint ``ref`` (``default`` or ``default@vN``) means for ``target_ref`` at ``layer``: a
    bundled directory, or init when ``default`` has no bundled NLA to pick."""
    versions = bundled_versions(target_ref, layer)
    layer = _DEFAULT_LAYERS.get(target_ref or "") if layer is None else layer
    if ref != DEFAULT:
        version = ref.removeprefix(DEFAULT + VERSION_SEP)
        if version not in versions:
            where = f"target {target_ref!r}" + ("" if layer is None else f" at layer {layer}")
            shipped = ", ".join(f"{DEFAULT}{VERSION_SEP}{v}" for v in versions) or "none"
            raise CheckpointError(
                f"checkpoint {ref!r}: no bundled NLA {version!r} for {where}; bundled: {shipped}"
            )
        return str(versions[version])
    if versions:  # listed oldest first
        return str(list(versions.values())[-1])
    return "init" if layer is None else f"init:{layer}"
