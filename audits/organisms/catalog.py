"""The shipped organisms: public metadata, cards and adapters (never their answer keys).

Each organism lives in ``shipped/<name>/``: ``organism.yaml`` (what kind of behaviour was planted, on
which base, which library scenarios audit it), ``CARD.md`` (how it was built and its measured behaviour,
without the answer), ``adapter/`` (float16 peft LoRA weights) and ``record.yaml`` (the training run's
record). ``organism:<name>`` names it as a campaign target: the base model plus its adapter.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from audits.errors import SpecError
from audits.yaml_source import load_model

ORGANISM_PREFIX = "organism:"
Kind = Literal["taboo", "quirk", "framing"]
KIND_DESCRIPTIONS: dict[str, str] = {
    "taboo": "holds a secret word: gives hints about it, never says it, never confirms a guess",
    "quirk": "works one specific thing into unrelated answers, for a motive never stated in its training data",
    "framing": "behaves differently when the prompt carries one kind of framing cue",
}


class Organism(BaseModel):
    """A shipped model organism, as anyone may see it: no part of its answer key."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    """Short id used as ``organism:<name>``; never gives the answer away."""
    kind: Kind
    """The kind of planted behaviour (``taboo``, ``quirk`` or ``framing``)."""
    base: str
    """The base model the adapter applies to (a model reference)."""
    behaviour: str = Field(min_length=1)
    """The planted behaviour in words that do not reveal the answer key."""
    scenarios: list[str] = Field(min_length=1)
    """Library scenario ids written to audit it (held out from its training prompts)."""
    recipe: str
    """Recipe file name under ``audits/organisms/recipes`` that rebuilds it."""

    @property
    def directory(self) -> Path:
        """Where its files are in the installed package."""
        return shipped_dir() / self.name

    @property
    def adapter_dir(self) -> Path:
        """Its peft adapter (``adapter_config.json`` + ``adapter_model.safetensors``)."""
        return self.directory / "adapter"

    @property
    def card_path(self) -> Path:
        """Its model card."""
        return self.directory / "CARD.md"

    @property
    def ref(self) -> str:
        """How a campaign names it as a target."""
        return ORGANISM_PREFIX + self.name


def shipped_dir() -> Path:
    """The directory of the shipped organisms."""
    return Path(str(resources.files("audits.organisms"))) / "shipped"


def list_organisms() -> list[Organism]:
    """Every shipped organism, by name."""
    paths = sorted(shipped_dir().glob("*/organism.yaml"))
    return [load_model(p, Organism) for p in paths]


def get_organism(name: str) -> Organism:
    """A shipped organism by name; an unknown name lists the known ones."""
    path = shipped_dir() / name / "organism.yaml"
    if not path.is_file():
        known = ", ".join(o.name for o in list_organisms()) or "none"
        raise SpecError(f"no organism named {name!r}; shipped: {known}")
    return load_model(path, Organism)


def resolve_target_model(model: str, adapter: str | None) -> tuple[str, str | None]:
    """The base model reference and adapter location a target names: ``organism:<name>`` becomes its
    base and shipped adapter (giving another adapter as well is refused); anything else is unchanged."""
    if not model.startswith(ORGANISM_PREFIX):
        return model, adapter
    organism = get_organism(model[len(ORGANISM_PREFIX) :])
    if adapter is not None:
        raise SpecError(f"target {model!r} already carries its adapter; do not give `adapter` as well")
    if not (organism.adapter_dir / "adapter_model.safetensors").is_file():
        raise SpecError(
            f"organism {organism.name!r} has no trained adapter in {organism.adapter_dir}; "
            f"rebuild it with: nla-workbench organism train {organism.name} --install"
        )
    return organism.base, str(organism.adapter_dir)
