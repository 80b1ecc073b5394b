"""Validation of theme detectors against human labels: thresholds chosen on the dev split only,
precision / recall / F1 reported on the test split."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from audits.errors import SpecError
from audits.themes.definitions import Theme
from audits.themes.detectors.base import Detector

LABELS_FILE = Path(__file__).parent / "labels" / "explanations.jsonl"
COMBINED = "any"
"""The combined rule flags use: a text hits when any detector reaches its threshold."""


class LabelledItem(BaseModel):
    """One human-labelled explanation."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    id: str = Field(min_length=1)
    """Unique item id."""
    text: str = Field(min_length=1)
    """The explanation text."""
    themes: list[str]
    """Theme ids the explanation expresses (empty for negatives)."""
    kind: Literal["positive", "innocent", "neutral"]
    """``innocent``: uses a theme's words in an innocent sense; ``neutral``: no audit theme at all."""
    split: Literal["dev", "test"]
    """Thresholds are chosen on dev; metrics are reported on test."""
    innocent_of: str | None = None
    """For ``innocent`` items, the theme whose words they borrow."""

    @model_validator(mode="after")
    def _consistent(self) -> LabelledItem:
        if (self.kind == "positive") != bool(self.themes):
            raise ValueError("positive items need themes; innocent and neutral items have none")
        if (self.kind == "innocent") != (self.innocent_of is not None):
            raise ValueError("innocent items (and only they) name innocent_of")
        return self


def load_labels(path: Path | None = None, themes: dict[str, Theme] | None = None) -> list[LabelledItem]:
    """Read a JSONL labelled set; errors name the file and line. Theme ids are checked when given."""
    path = Path(path) if path is not None else LABELS_FILE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    items, seen = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = LabelledItem.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise SpecError(f"{path}:{number}: {_first_error(exc)}") from None
        unknown = [
            t for t in [*item.themes, item.innocent_of] if t and themes is not None and t not in themes
        ]
        if unknown:
            raise SpecError(f"{path}:{number}: unknown theme(s) {unknown}")
        if item.id in seen:
            raise SpecError(f"{path}:{number}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return items


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"field {'.'.join(str(p) for p in error['loc']) or '(item)'}: {error['msg']}"
    return f"invalid JSON: {exc}"


def labels_digest(path: Path | None = None) -> str:
    """sha256 of the labelled set file, recorded with the thresholds chosen on it."""
    return hashlib.sha256(Path(path or LABELS_FILE).read_bytes()).hexdigest()


def prf(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | int]:
    """Counts and precision / recall / F1 (0 where undefined)."""
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


NEVER = 1.0
"""Threshold of a detector that dev shows no use for on a theme (scores stay below 1)."""


def choose_threshold(scores: np.ndarray, actual: np.ndarray, innocent: np.ndarray) -> float:
    """The best-F1 threshold on these (dev) scores among those that flag no innocent-sense item
    (``innocent``: items borrowing the theme's words); ties go to the higher threshold. When no such
    threshold finds a positive, :data:`NEVER`."""
    floor = float(scores[innocent].max(initial=0.0))
    best, best_f1 = NEVER, 0.0
    for threshold in sorted({float(s) for s in scores if s > floor}, reverse=True):
        f1 = prf(scores >= threshold, actual)["f1"]
        if f1 > best_f1:
            best, best_f1 = threshold, f1
    return best


def score_matrix(detector: Detector, items: Sequence[LabelledItem], themes: Sequence[Theme]) -> np.ndarray:
    """``[n_items, n_themes]`` scores of one detector."""
    rows = detector.score([i.text for i in items], themes)
    return np.array([[s.score for s in row] for row in rows], dtype=float)


def calibrate(
    detectors: Sequence[Detector], themes: Sequence[Theme], items: Sequence[LabelledItem], labels_sha256: str
) -> dict[str, Any]:
    """Thresholds from dev, metrics on dev and test, per detector and theme, plus the combined rule."""
    dev = np.array([i.split == "dev" for i in items])
    actual = np.array([[t.id in i.themes for t in themes] for i in items])
    innocent = np.array([[i.innocent_of == t.id for t in themes] for i in items])
    out: dict[str, Any] = {
        "labels_sha256": labels_sha256,
        "n_dev": int(dev.sum()),
        "n_test": int((~dev).sum()),
    }
    hits = np.zeros_like(actual)
    out["detectors"] = {}
    for detector in detectors:
        scores = score_matrix(detector, items, themes)
        per_theme = {}
        for j, theme in enumerate(themes):
            threshold = choose_threshold(scores[dev, j], actual[dev, j], innocent[dev, j])
            predicted = scores[:, j] >= threshold
            hits[:, j] |= predicted
            per_theme[theme.key] = {
                "threshold": threshold,
                "dev": prf(predicted[dev], actual[dev, j]),
                "test": prf(predicted[~dev], actual[~dev, j]),
                "innocent_flagged_test": int(np.sum(predicted[~dev] & innocent[~dev, j])),
            }
        out["detectors"][detector.key] = per_theme
    out[COMBINED] = {
        theme.key: {"dev": prf(hits[dev, j], actual[dev, j]), "test": prf(hits[~dev, j], actual[~dev, j])}
        for j, theme in enumerate(themes)
    }
    return out


def write_calibration(data: dict[str, Any], path: Path) -> None:
    """Write the calibration JSON (stable key order, one trailing newline)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
