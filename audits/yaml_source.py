"""YAML files validated by pydantic models, with errors that name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from audits.errors import SpecError

Model = TypeVar("Model", bound=BaseModel)
Location = tuple[str | int, ...]


def _positions(node: yaml.Node, here: Location, out: dict[Location, int]) -> None:
    """Record the 1-based line of every key and list item below ``node``."""
    out.setdefault(here, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            loc = (*here, key.value)
            out[loc] = key.start_mark.line + 1
            _positions(value, loc, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _positions(item, (*here, i), out)


def read_yaml(path: Path) -> tuple[Any, dict[Location, int]]:
    """Parse ``path``; return the data and the line of each key / item."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_yaml(text, path)


def parse_yaml(text: str, where: Path | str) -> tuple[Any, dict[Location, int]]:
    """Parse YAML ``text`` named ``where`` in messages; return the data and the line of each key / item."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}" if mark else str(where)
        raise SpecError(f"{at}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    positions: dict[Location, int] = {}
    if node is not None:
        _positions(node, (), positions)
    return data, positions


def describe_errors(path: Path, exc: ValidationError, positions: dict[Location, int]) -> str:
    """One line per pydantic error: ``file:line: field a.b.0: message``."""
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        line = next((positions[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in positions), None)
        field = ".".join(str(part) for part in loc) or "(top level)"
        lines.append(f"{path}{f':{line}' if line else ''}: field {field}: {error['msg']}")
    return "\n".join(lines)


def load_model(path: Path, model: type[Model], **context: Any) -> Model:
    """Read a YAML file into ``model``; any problem raises one :class:`SpecError`."""
    return _validate(*read_yaml(path), path, model, context)


def load_model_text(text: str, where: str, model: type[Model], **context: Any) -> Model:
    """Validate YAML ``text`` (an upload, named ``where`` in messages) into ``model``, like :func:`load_model`."""
    return _validate(*parse_yaml(text, where), Path(where), model, context)


def _validate(
    data: Any, positions: dict[Location, int], path: Path, model: type[Model], context: dict[str, Any]
) -> Model:
    try:
        return model.model_validate(data, context=context or None)
    except ValidationError as exc:
        raise SpecError(describe_errors(path, exc, positions)) from exc
