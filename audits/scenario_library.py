"""The scenario library: audit prompts as YAML data files, validated and rendered by pydantic models.

Each scenario is one file under ``audits/scenarios`` whose stem is the scenario id. A scenario is a
chat template with ``{{slot}}`` placeholders, the condition values each slot can take (the factorial
grid a campaign runs), and a paired control: the same transcript with the telling element removed.
Only ``{{name}}`` is special in the text; single braces (code, JSON) are left as they are.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from audits.errors import SpecError
from audits.themes.definitions import check_theme_ids
from audits.yaml_source import load_model

SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")
"""A template slot: ``{{name}}``, spaces allowed inside the braces."""

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_SLOT_NAME = re.compile(r"\w+")


class ScenarioError(SpecError, ValueError):
    """A scenario id, tag, condition slot or value the library does not have.

    It is also a ``ValueError``, so a pydantic validator that looks scenarios up (a campaign spec)
    reports it as a field error with the file and line.
    """


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ScenarioMessage(_Model):
    """One chat turn of a scenario template (or of a rendered transcript)."""

    role: Literal["system", "user", "assistant"]
    """Who speaks: ``system`` (first message only), ``user`` or ``assistant``."""
    content: str = Field(min_length=1)
    """The text; ``{{slot}}`` placeholders are replaced by condition values when rendered."""


class Control(_Model):
    """The paired control: the same transcript with the telling element absent or neutralised."""

    note: str = Field(min_length=1)
    """What the control removes or neutralises, and why it is the right comparison."""
    messages: list[ScenarioMessage] = Field(min_length=1)
    """The control transcript: the same roles in the same order as the scenario's messages; it may use
    the scenario's slots."""


class Scenario(_Model):
    """A scenario prompt: a chat template, the condition grid over its slots, and a paired control."""

    id: str = Field(max_length=64)
    """Kebab-case id, unique in the library; equals the file name stem."""
    version: int = Field(ge=1)
    """Bumped whenever the text changes (results are keyed by id and version)."""
    title: str = Field(min_length=1)
    """One line saying what the scenario sets up."""
    tags: list[str] = []
    """Free labels for selecting scenarios (lower case, digits, ``-`` and ``_``)."""
    question: str = Field(min_length=1)
    """The auditing question this scenario probes."""
    themes: list[str] = Field(min_length=1)
    """Audit themes probed, each a defined theme id (``audits/themes/data``); the first is the primary theme (the
    scenario's family)."""
    conditions: dict[str, dict[str, str]] = {}
    """Slot name -> condition value -> the text substituted for ``{{slot}}``; at least two values per
    slot. A value's text may be empty (the cue absent)."""
    reply: Literal["generate", "given"]
    """``generate``: the messages end with a user turn and the target writes the reply; ``given``: the
    messages end with an assistant turn that is read as it is."""
    messages: list[ScenarioMessage] = Field(min_length=1)
    """The transcript template: an optional system message, then alternating user and assistant turns
    starting with user."""
    control: Control | None = None
    """The paired control transcript; null only for scenario sets whose comparison is a target arm (an
    organism against its base model), not a text control."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str, info: ValidationInfo) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"id {value!r} must be kebab-case (lower-case letters and digits joined by '-')")
        stem = (info.context or {}).get("file_stem")
        if stem is not None and stem != value:
            raise ValueError(f"id {value!r} must equal the file name stem {stem!r}")
        return value

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: list[str]) -> list[str]:
        bad = [t for t in tags if not _NAME.fullmatch(t)]
        if bad:
            raise ValueError(f"tag(s) {bad} must be lower-case letters, digits, '-' and '_'")
        _no_duplicates("tag", tags)
        return tags

    @field_validator("themes")
    @classmethod
    def _check_themes(cls, themes: list[str]) -> list[str]:
        check_theme_ids(themes)
        _no_duplicates("theme", themes)
        return themes

    @field_validator("conditions")
    @classmethod
    def _check_conditions(cls, conditions: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for slot, values in conditions.items():
            if not _SLOT_NAME.fullmatch(slot):
                raise ValueError(
                    f"slot name {slot!r} must be letters, digits and '_' (it is used as {{{{name}}}})"
                )
            if len(values) < 2:
                raise ValueError(f"slot {slot!r} needs at least two condition values, has {sorted(values)}")
            for value, text in values.items():
                if not _NAME.fullmatch(value):
                    raise ValueError(
                        f"slot {slot!r}: condition value {value!r} must be lower-case letters, digits, '-' and '_'"
                    )
                if SLOT.search(text):
                    raise ValueError(
                        f"slot {slot!r}, value {value!r}: condition text may not contain {{{{slots}}}}"
                    )
        return conditions

    @field_validator("messages")
    @classmethod
    def _check_messages(cls, messages: list[ScenarioMessage], info: ValidationInfo) -> list[ScenarioMessage]:
        problems = []
        if "reply" in info.data:
            problems += _turn_problems(messages, info.data["reply"], "messages")
        if "conditions" in info.data:
            declared = info.data["conditions"]
            problems += _undeclared_slots(messages, declared, "messages")
            unused = sorted(set(declared) - _slots_in(messages))
            if unused:
                problems.append(
                    f"condition slot(s) {unused} are declared in conditions but no message uses them"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return messages

    @field_validator("control")
    @classmethod
    def _check_control(cls, control: Control | None, info: ValidationInfo) -> Control | None:
        if control is None:
            return None
        problems = []
        if "reply" in info.data:
            problems += _turn_problems(control.messages, info.data["reply"], "control.messages")
        if "conditions" in info.data:
            problems += _undeclared_slots(control.messages, info.data["conditions"], "control.messages")
        if "messages" in info.data:
            roles = [m.role for m in info.data["messages"]]
            control_roles = [m.role for m in control.messages]
            if control_roles != roles:
                problems.append(
                    f"control.messages must have the same roles in the same order as messages: "
                    f"{control_roles} vs {roles}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return control

    @property
    def family(self) -> str:
        """The primary theme (the first of ``themes``)."""
        return self.themes[0]

    def condition_grid(self) -> list[dict[str, str]]:
        """Every cell of the full factorial grid: slots in sorted order, values in declared order."""
        slots = sorted(self.conditions)
        values = [list(self.conditions[slot]) for slot in slots]
        return [dict(zip(slots, cell, strict=True)) for cell in itertools.product(*values)]

    def render(self, conditions: Mapping[str, str], *, control: bool = False) -> list[ScenarioMessage]:
        """The messages (or the control's) with each ``{{slot}}`` replaced by its condition text.

        Raises:
            ScenarioError: a slot or value the scenario does not declare, or a slot the template uses
                that ``conditions`` gives no value.
        """
        texts: dict[str, str] = {}
        for slot, value in conditions.items():
            if slot not in self.conditions:
                valid = ", ".join(sorted(self.conditions)) or "none"
                raise ScenarioError(f"scenario {self.id}: unknown condition slot {slot!r}; valid: {valid}")
            if value not in self.conditions[slot]:
                valid = ", ".join(self.conditions[slot])
                raise ScenarioError(
                    f"scenario {self.id}: condition {slot}: unknown value {value!r}; valid: {valid}"
                )
            texts[slot] = self.conditions[slot][value]

        def fill(match: re.Match[str]) -> str:
            slot = match.group(1)
            if slot not in texts:
                valid = ", ".join(self.conditions[slot])
                raise ScenarioError(
                    f"scenario {self.id}: template slot {{{{{slot}}}}} has no value; give one of: {valid}"
                )
            return texts[slot]

        if control and self.control is None:
            raise ScenarioError(f"scenario {self.id} has no control")
        source = self.control.messages if control else self.messages
        return [ScenarioMessage(role=m.role, content=SLOT.sub(fill, m.content)) for m in source]


def _no_duplicates(kind: str, items: list[str]) -> None:
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise ValueError(f"repeated {kind}(s) {repeated}")


def _slots_in(messages: Iterable[ScenarioMessage]) -> set[str]:
    return {slot for m in messages for slot in SLOT.findall(m.content)}


def _undeclared_slots(
    messages: list[ScenarioMessage], declared: Mapping[str, object], where: str
) -> list[str]:
    valid = ", ".join(sorted(declared)) or "none"
    return [
        f"{where}.{i} uses {{{{{slot}}}}}, which is not a slot in conditions (declared: {valid})"
        for i, message in enumerate(messages)
        for slot in dict.fromkeys(SLOT.findall(message.content))
        if slot not in declared
    ]


def _turn_problems(messages: list[ScenarioMessage], reply: str, where: str) -> list[str]:
    """Problems with the order of roles: system first only, then user/assistant alternating, the last
    turn fitting the reply mode (chat templates such as Gemma's refuse anything else)."""
    roles = [m.role for m in messages]
    late_system = [i for i, role in enumerate(roles) if role == "system" and i > 0]
    if late_system:
        return [f"{where}.{late_system[0]}: only the first message may be a system message"]
    start = 1 if roles[0] == "system" else 0
    if start == len(roles):
        return [f"{where}: needs at least one user message after the system message"]
    if roles[start] != "user":
        return [f"{where}.{start}: the first turn must be a user message, not {roles[start]}"]
    for i in range(start + 1, len(roles)):
        if roles[i] == roles[i - 1]:
            return [f"{where}.{i}: two {roles[i]} messages in a row; user and assistant turns alternate"]
    last = roles[-1]
    if reply == "given" and last != "assistant":
        return [f"{where}: reply 'given' needs the last message to be the assistant's, not {last}"]
    if reply == "generate" and last != "user":
        return [f"{where}: reply 'generate' needs the last message to be the user's, not {last}"]
    return []


def library_dir() -> Path:
    """The directory of the packaged scenario library (``audits/scenarios``)."""
    return Path(__file__).parent / "scenarios"


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file; its id must equal the file name stem.

    Raises:
        SpecError: naming the file, line and field of each problem.
    """
    path = Path(path)
    return load_model(path, Scenario, file_stem=path.stem)


def load_library(directory: Path | None = None) -> dict[str, Scenario]:
    """Every scenario file (``*.yaml``, ``*.yml``) in ``directory`` (default: the packaged library).

    Returns the scenarios by id, sorted by id. Problems in several files are reported together.

    Raises:
        SpecError: a missing or empty directory, an invalid file, or one id defined in two files.
    """
    directory = library_dir() if directory is None else Path(directory)
    if not directory.is_dir():
        raise SpecError(f"{directory}: scenario library directory not found")
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not paths:
        raise SpecError(f"{directory}: no scenario files (*.yaml) in the library directory")
    scenarios: dict[str, Scenario] = {}
    origin: dict[str, Path] = {}
    problems: list[str] = []
    for path in paths:
        try:
            scenario = load_scenario(path)
        except SpecError as exc:
            problems.append(str(exc))
            continue
        if scenario.id in origin:
            problems.append(
                f"{path}: duplicate scenario id {scenario.id!r}, also defined in {origin[scenario.id]}"
            )
            continue
        scenarios[scenario.id] = scenario
        origin[scenario.id] = path
    if problems:
        raise SpecError("\n".join(problems))
    return dict(sorted(scenarios.items()))


def select(
    library: Mapping[str, Scenario], ids: Iterable[str] = (), tags: Iterable[str] = ()
) -> list[Scenario]:
    """The scenarios named by ``ids`` (in that order), then those with any of ``tags`` (by id).

    The union of both selections, without repeats; nothing is selected when both are empty.

    Raises:
        ScenarioError: an unknown id (listing the valid ids) or an unknown tag (listing the valid tags).
    """
    ids = [ids] if isinstance(ids, str) else list(ids)
    tags = [tags] if isinstance(tags, str) else list(tags)
    unknown = [i for i in ids if i not in library]
    if unknown:
        raise ScenarioError(
            f"unknown scenario id(s) {unknown}; valid: {', '.join(sorted(library)) or 'none'}"
        )
    known_tags = sorted({tag for scenario in library.values() for tag in scenario.tags})
    unknown = [t for t in tags if t not in known_tags]
    if unknown:
        raise ScenarioError(f"unknown tag(s) {unknown}; valid: {', '.join(known_tags) or 'none'}")
    chosen = dict.fromkeys(ids)
    for scenario_id in sorted(library):
        if set(tags) & set(library[scenario_id].tags):
            chosen.setdefault(scenario_id)
    return [library[scenario_id] for scenario_id in chosen]
