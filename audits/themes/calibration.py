"""Detector thresholds per theme version, chosen on the dev split of the labelled set and recorded
with the test-split precision / recall / F1 they reach (``audits/themes/calibration.json``, written by
``nla-workbench themes validate --write``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audits.errors import SpecError
from audits.themes.definitions import Theme

CALIBRATION_FILE = Path(__file__).parent / "calibration.json"


@dataclass(frozen=True)
class Calibration:
    """Recorded thresholds and metrics, by detector key then theme key (``id@vN``)."""

    path: Path
    data: dict[str, Any]

    def entry(self, detector: str, theme: Theme) -> dict[str, Any]:
        """The recorded threshold and metrics of ``detector`` for this theme version."""
        entry = self.data.get("detectors", {}).get(detector, {}).get(theme.key)
        if entry is None:
            raise SpecError(
                f"{self.path}: no calibrated threshold for theme {theme.key} with detector {detector}; "
                "run `nla-workbench themes validate --write` after changing a theme or a detector"
            )
        return entry

    def threshold(self, detector: str, theme: Theme) -> float:
        """The score at or above which ``detector`` counts a text as expressing the theme."""
        return float(self.entry(detector, theme)["threshold"])

    def thresholds(self, detectors: list[str], theme: Theme) -> dict[str, float]:
        """Thresholds of several detectors for one theme."""
        return {d: self.threshold(d, theme) for d in detectors}


def load_calibration(path: Path | None = None) -> Calibration:
    """Read a calibration file (default: the packaged one)."""
    path = Path(path) if path is not None else CALIBRATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no calibration file; run `nla-workbench themes validate --write`") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    return Calibration(path, data)
