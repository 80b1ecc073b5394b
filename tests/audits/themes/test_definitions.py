"""Theme definition files: the packaged set, and clear errors for malformed ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from audits.errors import SpecError
from audits.themes.definitions import load_theme, load_themes, select_themes, themes_dir

REQUIRED = {
    "evaluation_awareness",
    "hidden_motive",
    "deception",
    "self_preservation",
    "reward_hacking",
    "sandbagging",
    "sycophancy",
    "harmful_intent",
}


def test_packaged_themes() -> None:
    themes = load_themes()
    assert set(themes) >= REQUIRED
    colours = [t.colour for t in themes.values()]
    assert len(set(colours)) == len(colours)
    for theme in themes.values():
        assert theme.key == f"{theme.id}@v{theme.version}"
        assert theme.exemplars.positive and theme.exemplars.negative and theme.lexicon


def _write(tmp_path: Path, change) -> Path:
    data = yaml.safe_load((themes_dir() / "deception.yaml").read_text())
    change(data)
    path = tmp_path / "deception.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("description"), "field description: Field required"),
        (lambda d: d["lexicon"].append("(unclosed"), "lexicon.7: pattern '(unclosed' does not compile"),
        (
            lambda d: d["exemplars"].update(positive=[]),
            "field exemplars.positive: List should have at least 1",
        ),
        (lambda d: d["exemplars"].update(negative=["  "]), "exemplar(s) at index [0] are blank"),
        (lambda d: d.update(colour="red"), "colour 'red' must be a hex colour"),
        (lambda d: d.update(id="lying"), "must equal the file name stem 'deception'"),
        (lambda d: d.update(surprise=1), "field surprise: Extra inputs are not permitted"),
        (
            lambda d: (
                d["flag"].update(min_agreement=0) if "flag" in d else d.update(flag={"min_agreement": 0})
            ),
            "min_agreement",
        ),
    ],
)
def test_malformed_theme_names_file_and_field(tmp_path: Path, change, message: str) -> None:
    path = _write(tmp_path, change)
    with pytest.raises(SpecError) as err:
        load_theme(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_directory_errors_are_collected(tmp_path: Path) -> None:
    shutil.copy(themes_dir() / "sycophancy.yaml", tmp_path)
    (tmp_path / "deception.yaml").write_text("id: deception\nversion: [\n")
    with pytest.raises(SpecError, match=r"deception.yaml:3: invalid YAML"):
        load_themes(tmp_path)
    with pytest.raises(SpecError, match="theme directory not found"):
        load_themes(tmp_path / "missing")


def test_unknown_theme_id_lists_the_valid_ones() -> None:
    with pytest.raises(SpecError, match=r"unknown theme\(s\) \['lying'\]; valid: deception"):
        select_themes(["deception", "lying"])
    assert [t.id for t in select_themes(["sycophancy", "deception"])] == ["sycophancy", "deception"]
