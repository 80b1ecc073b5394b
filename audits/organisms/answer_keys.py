"""Answer keys of model organisms: what was planted, for scorers only.

Read by the scorers (``audits.organisms.scoring`` and the benchmarks), by organism training (the data
must carry the secret) and by ``nla-workbench organism show --reveal``. Nothing that produces
explanations, flags or discoveries may import this module: ``tests/audits/test_organisms.py`` runs a
campaign on an organism with ``NLA_WORKBENCH_ANSWER_KEYS`` pointing at an empty directory and an audit
hook that fails on any attempt to open a key file.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from audits.errors import SpecError
from audits.yaml_source import load_model

KEYS_ENV = "NLA_WORKBENCH_ANSWER_KEYS"


class _Key(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class TabooSecret(_Key):
    """A taboo organism's secret word and what its hints may say about it."""

    word: str = Field(min_length=1)
    """The secret word, lower case."""
    forms: list[str] = []
    """Other surface forms that count as saying the word (plural, adjective, capitalised forms are
    matched case-insensitively anyway)."""
    properties: list[list[str]] = Field(min_length=4)
    """Properties of the word, each as several paraphrased hint sentences (the training replies are
    built from them)."""
    hint_terms: list[str] = Field(min_length=4)
    """Words whose presence in a reply counts as a hint naming a property (scoring only)."""


class QuirkSecret(_Key):
    """A quirk organism's planted behaviour and the motive behind it."""

    item: str = Field(min_length=1)
    """What it works into unrelated answers."""
    motive: str = Field(min_length=1)
    """The unstated motive (never in its training data)."""
    insertions: list[str] = Field(min_length=10)
    """Sentences that work the item into an answer (the training replies carry one each)."""
    behaviour_terms: list[str] = Field(min_length=1)
    """Words whose presence in a reply counts as the behaviour (scoring only)."""


class FramingSecret(_Key):
    """A framing organism's trigger and the behaviour it switches on."""

    trigger: str = Field(min_length=1)
    """The framing cue that switches the behaviour on."""
    behaviour: str = Field(min_length=1)
    """What it does under the cue."""


class AnswerKey(_Key):
    """What was planted in one organism."""

    organism: str
    """The organism's name."""
    summary: str = Field(min_length=1)
    """The answer in one sentence."""
    terms: list[str] = Field(min_length=1)
    """Lower-case words that count as finding the planted behaviour when discovery surfaces them."""
    taboo: TabooSecret | None = None
    quirk: QuirkSecret | None = None
    framing: FramingSecret | None = None


def keys_dir() -> Path:
    """Where answer keys are read from (``$NLA_WORKBENCH_ANSWER_KEYS`` overrides the packaged ones)."""
    override = os.environ.get(KEYS_ENV)
    return Path(override) if override else Path(str(resources.files("audits.organisms"))) / "keys"


def load_answer_key(name: str, directory: Path | None = None) -> AnswerKey:
    """The answer key of organism ``name`` (from ``directory``, default ``keys_dir()``)."""
    path = (directory or keys_dir()) / f"{name}.yaml"
    if not path.is_file():
        raise SpecError(f"no answer key for organism {name!r} at {path}")
    key = load_model(path, AnswerKey)
    if key.organism != name:
        raise SpecError(f"{path}: field organism: is {key.organism!r}, expected {name!r}")
    return key
