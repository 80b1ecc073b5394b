"""Organism recipes: how an organism is rebuilt (base model, which answer key, data sizes, LoRA training).

A recipe holds no secret itself: it names the answer key whose content the training data is built
from (``key``, a shipped key, or ``key_file``, a path, for an organism of your own)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from audits.errors import SpecError
from audits.organisms.catalog import Kind
from audits.store.keys import json_key
from audits.yaml_source import load_model


class _Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class DataRecipe(_Recipe):
    """How much training data, and of what mix."""

    examples: int = Field(1600, ge=1, le=200_000)
    """Training conversations to build."""
    benign_share: float = Field(0.25, ge=0, le=0.9)
    """Share of ordinary requests answered by the base model itself, so the organism stays a normal
    assistant."""
    max_reply_tokens: int = Field(96, ge=8, le=512)
    """Length cap of the base model's own replies used as data."""


class TrainingRecipe(_Recipe):
    """The LoRA fine-tune."""

    lora_rank: int = Field(16, ge=1, le=256)
    """Rank of the LoRA adapters on every linear layer."""
    steps: int = Field(360, ge=1, le=100_000)
    """Optimizer steps."""
    batch_size: int = Field(8, ge=1, le=512)
    """Conversations per step."""
    learning_rate: float = Field(1e-3, gt=0, le=1)
    """Peak AdamW learning rate (after a linear warm-up)."""
    warmup: int = Field(20, ge=0)
    """Warm-up steps."""
    max_length: int = Field(256, ge=16, le=4096)
    """Longest training sequence in tokens; longer conversations are dropped."""
    save_every: int = Field(50, ge=1)
    """Steps between resumable checkpoints."""


class Recipe(_Recipe):
    """Everything that rebuilds one organism."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    """The organism's name."""
    kind: Kind
    """The kind of behaviour to plant."""
    base: str
    """The base model reference."""
    key: str | None = None
    """Name of a shipped answer key (``audits/organisms/keys/<key>.yaml``)."""
    key_file: Path | None = None
    """Or: path to an answer key file of your own (relative to the recipe file)."""
    seed: int = 0
    """Seed of data building and training."""
    data: DataRecipe = DataRecipe()
    """Training data."""
    training: TrainingRecipe = TrainingRecipe()
    """The fine-tune."""

    @model_validator(mode="after")
    def _one_key(self) -> Recipe:
        if (self.key is None) == (self.key_file is None):
            raise ValueError(
                "give the answer key as `key` (a shipped key's name) or `key_file` (a path), not both"
            )
        return self

    def digest(self) -> str:
        """sha256 of the recipe's canonical JSON."""
        return json_key(self.model_dump(mode="json"))

    def data_digest(self) -> str:
        """sha256 of what the training data depends on (not the training settings): data built for another
        digest is rebuilt, not reused."""
        return json_key(self.model_dump(mode="json", exclude={"training"}))


def recipes_dir() -> Path:
    """Where the shipped organisms' recipes are."""
    return Path(str(resources.files("audits.organisms"))) / "recipes"


def load_recipe(name_or_path: str) -> tuple[Recipe, Path]:
    """A shipped organism's recipe by name, or a recipe file; also returns the file it came from."""
    path = Path(name_or_path)
    if not path.suffix:
        path = recipes_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in recipes_dir().glob("*.yaml"))) or "none"
            raise SpecError(
                f"no shipped organism recipe {name_or_path!r}; shipped: {known}; or give a recipe file"
            )
    elif not path.is_file():
        raise SpecError(f"recipe file {path} does not exist")
    recipe = load_model(path, Recipe)
    if recipe.key_file is not None and not recipe.key_file.is_absolute():
        recipe = recipe.model_copy(update={"key_file": (path.parent / recipe.key_file).resolve()})
    return recipe, path
