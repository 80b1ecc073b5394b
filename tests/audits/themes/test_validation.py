"""Detectors against the human-labelled set: the recorded calibration is reproduced exactly, and
innocent senses of a theme's words stay unflagged by the semantic detector at its threshold."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from audits.errors import SpecError
from audits.themes.calibration import load_calibration
from audits.themes.definitions import load_themes
from audits.themes.detectors import make_detectors
from audits.themes.validation import (
    LABELS_FILE,
    NEVER,
    calibrate,
    choose_threshold,
    labels_digest,
    load_labels,
    score_matrix,
)


@pytest.fixture(scope="module")
def labelled():
    themes = load_themes()
    return themes, load_labels(themes=themes)


@pytest.fixture(scope="module")
def detectors():
    return make_detectors(["lexicon", "semantic"])


def test_labelled_set_covers_every_theme_in_both_splits(labelled) -> None:
    themes, items = labelled
    assert len(items) >= 200
    kinds = Counter((t, i.kind, i.split) for i in items for t in (i.themes or [i.innocent_of]) if t)
    for theme in themes:
        for kind in ("positive", "innocent"):
            assert kinds[(theme, kind, "dev")] >= 4 and kinds[(theme, kind, "test")] >= 4


def test_recorded_calibration_is_reproduced(labelled, detectors) -> None:
    themes, items = labelled
    recorded = load_calibration().data
    fresh = calibrate(detectors, list(themes.values()), items, labels_digest())
    assert fresh["labels_sha256"] == recorded["labels_sha256"] == labels_digest(LABELS_FILE)
    assert _close(json.loads(json.dumps(fresh)), recorded)


def _close(a: object, b: object) -> bool:
    """Equal up to float rounding (the encoder is deterministic on CPU; sums may round differently)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys()
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-6)
        return True
    assert a == b
    return True


def test_innocent_senses_are_not_flagged_by_the_semantic_detector(labelled, detectors) -> None:
    themes, items = labelled
    semantic = detectors[1]
    calibration = load_calibration()
    scores = score_matrix(semantic, items, list(themes.values()))
    flagged = {"dev": [], "test": []}
    for j, theme in enumerate(themes.values()):
        threshold = calibration.threshold(semantic.key, theme)
        for i, item in enumerate(items):
            if item.innocent_of == theme.id and scores[i, j] >= threshold:
                flagged[item.split].append(item.id)
    assert flagged["dev"] == []  # the threshold rule guarantees it on dev
    recorded = sum(e["innocent_flagged_test"] for e in calibration.data["detectors"][semantic.key].values())
    innocents = sum(i.kind == "innocent" and i.split == "test" for i in items)
    assert len(flagged["test"]) == recorded <= innocents // 10, flagged["test"]


def test_threshold_choice() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.75])
    actual = np.array([True, True, False, True, False, False])
    innocent = np.array([False, False, False, False, False, True])
    assert choose_threshold(scores, actual, innocent) == 0.8  # 0.6 would also flag the 0.75 innocent
    also = np.array([True, True, False, True, False, True])
    assert choose_threshold(scores, also, np.zeros(6, dtype=bool)) == 0.6
    assert choose_threshold(np.zeros(3), np.array([True, False, False]), np.zeros(3, dtype=bool)) == NEVER


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", ":2: invalid JSON"),
        (
            '{"id": "x", "text": "t", "themes": ["lying"], "kind": "positive", "split": "dev"}',
            "unknown theme",
        ),
        ('{"id": "x", "text": "t", "themes": [], "kind": "positive", "split": "dev"}', "positive items need"),
        ('{"id": "a", "text": "t", "themes": [], "kind": "neutral", "split": "dev"}', "duplicate id 'a'"),
    ],
)
def test_bad_labelled_sets_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"id": "a", "text": "t", "themes": [], "kind": "neutral", "split": "test"}\n' + line + "\n"
    )
    with pytest.raises(SpecError, match=message) as err:
        load_labels(path, load_themes())
    assert f"{path}:2" in str(err.value)
