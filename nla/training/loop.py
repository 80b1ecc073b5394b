"""A resumable training loop shared by the SFT and RL stages.

State (trainable parameters, optimizer moments, step, history, wall time) is saved atomically to
``<stage>/state/`` every ``save_every`` steps and at the end. Re-running a stage loads it and continues
from the saved step. Batches and sampling seeds are functions of (seed, step) and adapters have no
dropout, so an interrupted and resumed run takes the same steps as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from nla.training.models import load_trainable, save_trainable

StepFn = Callable[[int], dict[str, float]]
"""Runs training step ``i`` and returns its metrics."""
OnStep = Callable[[int], None]
"""Called after step ``i`` has been taken (and saved when due); tests raise here to interrupt."""


def batch_indices(n_rows: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Rows of batch ``step``: consecutive slices of a per-epoch seeded permutation."""
    per_epoch = max(1, n_rows // batch_size)
    epoch, slot = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_rows)
    return order[slot * batch_size : (slot + 1) * batch_size]


def warmup_lr(optimizer: torch.optim.Optimizer, base_lr: float, step: int, warmup: int) -> None:
    """Linear warm-up to ``base_lr`` over ``warmup`` steps, then constant."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * min(1.0, (step + 1) / max(1, warmup))


class TrainingLoop:
    """Steps a set of modules and optimizers, saving and restoring them by name."""

    def __init__(
        self, stage_dir: Path, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]
    ) -> None:
        self.dir = stage_dir
        self.state_dir = stage_dir / "state"
        self.modules, self.optimizers = modules, optimizers
        self.step, self.history, self.seconds = 0, [], 0.0
        if (self.state_dir / "progress.json").is_file():
            self._restore()

    def run(
        self,
        steps: int,
        step_fn: StepFn,
        *,
        save_every: int,
        desc: str,
        show_progress: bool = True,
        on_step: OnStep | None = None,
    ) -> None:
        """Take steps until ``steps`` have been taken in total."""
        with tqdm(total=steps, initial=self.step, desc=desc, unit="step", disable=not show_progress) as bar:
            while self.step < steps:
                started = time.perf_counter()
                metrics = step_fn(self.step)
                elapsed = time.perf_counter() - started
                self.seconds += elapsed
                # per-step wall time: the model card's compute estimate takes the median (robust to pauses)
                self.history.append({"step": self.step, **metrics, "step_seconds": elapsed})
                self.step += 1
                if self.step % save_every == 0 or self.step == steps:
                    self.save()
                bar.set_postfix({k: f"{v:.3g}" for k, v in list(metrics.items())[:3]})
                bar.update(1)
                if on_step:
                    on_step(self.step - 1)

    def save(self) -> None:
        staging = self.dir / ".state.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name, module in self.modules.items():
            save_trainable(module, staging / f"{name}.safetensors")
        torch.save({n: o.state_dict() for n, o in self.optimizers.items()}, staging / "optimizers.pt")
        pd.DataFrame(self.history).to_parquet(staging / "history.parquet")
        (staging / "progress.json").write_text(json.dumps({"step": self.step, "seconds": self.seconds}))
        old = self.dir / ".state.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.state_dir.exists():
            os.replace(self.state_dir, old)
        os.replace(staging, self.state_dir)
        shutil.rmtree(old, ignore_errors=True)

    def _restore(self) -> None:
        progress = json.loads((self.state_dir / "progress.json").read_text())
        self.step, self.seconds = progress["step"], progress["seconds"]
        for name, module in self.modules.items():
            load_trainable(module, self.state_dir / f"{name}.safetensors")
        saved = torch.load(self.state_dir / "optimizers.pt", weights_only=True)
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(saved[name])
        self.history = pd.read_parquet(self.state_dir / "history.parquet").to_dict("records")
