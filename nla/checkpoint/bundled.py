"""Trained NLAs shipped inside the package, and the ``default`` checkpoint alias that picks one.

``default`` resolves to the bundled NLA for the target and layer when one ships (today: the embedded
SmolLM2-135M-Instruct at layer 20, trained by ``make bundled-nla``; see its MODEL_CARD.md), and to
the untrained ``init`` NLA otherwise.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from nla.resolve import DEFAULT_TARGET

DEFAULT = "default"
BUNDLED = {(DEFAULT_TARGET, 20): "smollm2-135m-instruct-L20"}
_DEFAULT_LAYERS = {DEFAULT_TARGET: 20}


def bundled_dir(name: str) -> Path:
    """Where bundled NLA ``name`` lives in the installed package."""
    return Path(str(resources.files("nla.data"))) / "nla" / name


def resolve_default(target_ref: str | None, layer: int | None) -> str:
    """The checkpoint ``default`` means for ``target_ref`` at ``layer``: a bundled directory or init."""
    layer = _DEFAULT_LAYERS.get(target_ref or "") if layer is None else layer
    name = BUNDLED.get((target_ref or "", layer))
    if name and (bundled_dir(name) / "av").is_dir():
        return str(bundled_dir(name))
    return "init" if layer is None else f"init:{layer}"
