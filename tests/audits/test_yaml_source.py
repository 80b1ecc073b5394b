"""YAML validation errors name the file, the line and the field."""

from pathlib import Path

import pytest
from pydantic import BaseModel

from audits.errors import SpecError
from audits.yaml_source import load_model


class Item(BaseModel):
    name: str
    size: int


class Doc(BaseModel):
    title: str
    items: list[Item]


def test_valid(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("title: t\nitems:\n  - {name: a, size: 1}\n")
    assert load_model(path, Doc).items[0].size == 1


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("title: t\nitems:\n  - name: a\n    size: 1\n  - name: b\n    size: big\n")
    with pytest.raises(SpecError, match=rf"{path}:6: field items.1.size: Input should be a valid integer"):
        load_model(path, Doc)


def test_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("title: t\nitems:\n  - name: a\n")
    with pytest.raises(SpecError, match=rf"{path}:3: field items.0.size: Field required"):
        load_model(path, Doc)


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("title: t\nitems: [\n  - a\n")
    with pytest.raises(SpecError, match=rf"{path}:\d+: invalid YAML"):
        load_model(path, Doc)
    with pytest.raises(SpecError, match="cannot read"):
        load_model(tmp_path / "absent.yaml", Doc)
