"""Assemble a run's trained halves into an NLA checkpoint in the compact form (base model reference
+ LoRA adapters + value head + sidecars), which ``load_nla`` and the engine read like any other."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from nla.checkpoint.layout import AR_DIR, AV_DIR, COMPACT, VALUE_HEAD
from nla.checkpoint.save import atomic_dir
from nla.errors import NLAError
from nla.sidecar import SIDECAR, sidecar_dict, write_sidecar
from nla.training.models import run_meta
from nla.training.run import RunDir
from nla.training.stage import read_stage, training_baseline, training_vectors

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
STAGES = {"sft": ("av_sft", "ar_sft"), "rl": ("rl", "rl")}


def latest(run: RunDir) -> str:
    """``rl`` when the RL stage has finished, else ``sft``."""
    return "rl" if read_stage(run.stage("rl")) else "sft"


def assemble(run: RunDir, out_dir: Path, which: str = "latest", *, force: bool = True) -> Path:
    """Write the NLA of stage ``which`` (sft, rl or latest) to ``out_dir`` in compact form."""
    which = latest(run) if which == "latest" else which
    av_stage, ar_stage = (run.stage(s) for s in STAGES[which])
    for stage in {av_stage, ar_stage}:
        if not read_stage(stage):
            raise NLAError(
                f"{stage} has not finished: run `nla-workbench train {stage.name.replace('_', '-')} {run.root}` first"
            )
    settings = run.settings()
    meta = replace(run_meta(run), stage="rl" if which == "rl" else "sl", base_model=settings.target)
    meta = meta.with_baseline(training_baseline(run), len(training_vectors(run)))
    extra = {
        COMPACT: {"base_model": settings.target},
        "trained_on": f"{settings.corpus} corpus, run {run.root.name}",
    }

    def write(root: Path) -> None:
        for role, stage in ((AV_DIR, av_stage), (AR_DIR, ar_stage)):
            (root / role).mkdir()
            for name in ADAPTER_FILES:
                shutil.copy2(stage / role / name, root / role / name)
            write_sidecar(root / role / SIDECAR, sidecar_dict(meta, role, **extra))
        shutil.copy2(ar_stage / AR_DIR / VALUE_HEAD, root / AR_DIR / VALUE_HEAD)

    return atomic_dir(out_dir, write, force=force)
