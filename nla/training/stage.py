"""What every training stage shares: the FVE baseline of the training distribution, the normalised
mse loss, and the ``stage.yaml`` record of settings, metrics and wall time."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import BaseModel

from nla.metrics import fve_baseline, normalise
from nla.training.provenance import provenance
from nla.training.run import RunDir
from nla.training.tables import read_table

STAGE_FILE = "stage.yaml"


def normalised_mse(pred: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """Per-row mse after rescaling both to L2 = sqrt(d): equals 2 (1 - cos)."""
    scale = math.sqrt(gold.shape[-1])
    return ((normalise(pred, scale) - normalise(gold, scale)) ** 2).mean(dim=-1)


def training_vectors(run: RunDir) -> np.ndarray:
    """The SFT splits' activations: the training distribution FVE is measured against."""
    return np.concatenate([read_table(run.split(name))[1] for name in ("av_sft", "ar_sft")])


def training_baseline(run: RunDir) -> float:
    """B = per-element variance of sqrt(d)-normalised training vectors around their mean."""
    vectors = torch.from_numpy(training_vectors(run))
    return fve_baseline(vectors, math.sqrt(vectors.shape[1]))


def derangement(n: int, seed: int) -> np.ndarray:
    """A seeded permutation that moves every index (the identity when n < 2)."""
    if n < 2:
        return np.arange(n)
    cycle = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, dtype=np.int64)
    out[cycle] = np.roll(cycle, -1)  # each index maps to the next one along one random cycle
    return out


def write_stage(
    stage_dir: Path, config: BaseModel, metrics: dict[str, Any], *, steps: int, seconds: float
) -> dict[str, Any]:
    """Record a finished stage and return the record."""
    record = {
        "stage": stage_dir.name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config.model_dump(mode="json"),
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "metrics": metrics,
        **provenance(),
    }
    (stage_dir / STAGE_FILE).write_text(
        yaml.safe_dump(record, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    return record


def read_stage(stage_dir: Path) -> dict[str, Any] | None:
    """A finished stage's record, or None."""
    path = stage_dir / STAGE_FILE
    return yaml.safe_load(path.read_text("utf-8")) if path.is_file() else None
