"""Theme definitions: versioned YAML data files (``audits/themes/data``), validated by pydantic.

A theme says what counts and what does not, with positive exemplars and innocent look-alikes
(negative exemplars), optional lexicon patterns, a display colour and its flag rule. Scores and
flags point to (theme id, version); a changed definition must get a new version, which the store
enforces by the definition's content hash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from audits.errors import SpecError
from audits.store.keys import json_key
from audits.yaml_source import load_model
from nla.errors import InputError

_ID = re.compile(r"[a-z][a-z0-9_]*")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Exemplars(_Model):
    """Short phrases anchoring the semantic detector and the triage directions."""

    positive: list[str] = Field(min_length=1)
    """Phrases an explanation expressing the theme might contain."""
    negative: list[str] = Field(min_length=1)
    """Look-alikes: the theme's words in an innocent sense, which must not count."""

    @field_validator("positive", "negative")
    @classmethod
    def _non_blank(cls, phrases: list[str]) -> list[str]:
        blank = [i for i, p in enumerate(phrases) if not p.strip()]
        if blank:
            raise ValueError(f"exemplar(s) at index {blank} are blank")
        return phrases


class FlagRule(_Model):
    """When a token's explanations raise a flag for this theme."""

    min_agreement: float = Field(0.5, gt=0, le=1)
    """Fraction of a token's parsed explanation samples that must hit the theme."""
    min_fve: float = 0.0
    """Explanations whose AR fidelity (FVE) is below this are low-fidelity: shown, but excluded from
    rates by default."""
    neighbour_window: int = Field(2, ge=0)
    """Tokens on each side of a flagged token counted as its neighbours."""
    min_neighbours: int = Field(0, ge=0)
    """Neighbouring tokens that must also hit the theme (0: a lone token can flag)."""


class Theme(_Model):
    """One audit theme."""

    id: str
    """Snake-case id, equal to the file name stem."""
    version: int = Field(ge=1)
    """Bumped whenever the definition changes; scores and flags are keyed by (id, version)."""
    name: str = Field(min_length=1)
    """Display name."""
    description: str = Field(min_length=1)
    """What the theme is, as an auditor reads it."""
    counts: list[str] = Field(min_length=1)
    """What counts as this theme."""
    does_not_count: list[str] = Field(min_length=1)
    """Look-alikes that do not count."""
    exemplars: Exemplars
    """Positive and negative exemplar phrases."""
    lexicon: list[str] = []
    """Regular expressions (case-insensitive ``re.search``) that clearly express the theme."""
    colour: str
    """Display colour, ``#rrggbb``, used for this theme everywhere."""
    flag: FlagRule = FlagRule()
    """The flag rule."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str, info: ValidationInfo) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"id {value!r} must be snake_case (lower-case letters, digits and '_')")
        stem = (info.context or {}).get("file_stem")
        if stem is not None and stem != value:
            raise ValueError(f"id {value!r} must equal the file name stem {stem!r}")
        return value

    @field_validator("lexicon")
    @classmethod
    def _check_lexicon(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"lexicon.{i}: pattern {pattern!r} does not compile: {exc}") from None
        return patterns

    @field_validator("colour")
    @classmethod
    def _check_colour(cls, value: str) -> str:
        if not _COLOUR.fullmatch(value):
            raise ValueError(f"colour {value!r} must be a hex colour such as '#1f77b4'")
        return value

    @property
    def key(self) -> str:
        """``id@vN``: how scores and flags refer to this definition."""
        return f"{self.id}@v{self.version}"

    def content_hash(self) -> str:
        """sha256 of the definition's canonical JSON: the same (id, version) must keep it."""
        return json_key(self.model_dump(mode="json"))


def themes_dir() -> Path:
    """The packaged theme definitions."""
    return Path(__file__).parent / "data"


def load_theme(path: Path) -> Theme:
    """Read and validate one theme file; errors name the file, line and field."""
    path = Path(path)
    return load_model(path, Theme, file_stem=path.stem)


def load_themes(directory: Path | None = None) -> dict[str, Theme]:
    """Every theme file in ``directory`` (default: the packaged ones), by id, sorted by id."""
    if directory is None:
        return _packaged()
    return _load_dir(Path(directory))


@cache
def _packaged() -> dict[str, Theme]:
    return _load_dir(themes_dir())


def _load_dir(directory: Path) -> dict[str, Theme]:
    if not directory.is_dir():
        raise SpecError(f"{directory}: theme directory not found")
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not paths:
        raise SpecError(f"{directory}: no theme files (*.yaml)")
    themes: dict[str, Theme] = {}
    problems: list[str] = []
    for path in paths:
        try:
            theme = load_theme(path)
        except SpecError as exc:
            problems.append(str(exc))
            continue
        themes[theme.id] = theme
    if problems:
        raise SpecError("\n".join(problems))
    return dict(sorted(themes.items()))


def theme_ids() -> tuple[str, ...]:
    """Ids of the packaged themes."""
    return tuple(_packaged())


def check_theme_ids(themes: Iterable[str], known: Iterable[str] | None = None) -> None:
    """Refuse theme ids that are not defined, listing the valid ones."""
    valid = list(theme_ids() if known is None else known)
    unknown = [t for t in themes if t not in valid]
    if unknown:
        raise InputError(f"unknown theme(s) {unknown}; valid: {', '.join(valid)}")


def select_themes(ids: Iterable[str], library: dict[str, Theme] | None = None) -> list[Theme]:
    """The definitions of ``ids`` in order; unknown ids raise :class:`SpecError`."""
    library = load_themes() if library is None else library
    ids = list(ids)
    try:
        check_theme_ids(ids, library)
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return [library[i] for i in ids]
