"""Assemble a run's trained halves into an NLA checkpoint in the compact form (base model reference
+ LoRA adapters + value head + sidecars), which ``load_nla`` and the engine read like any other."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from safetensors.torch import load_file, save_file

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


def assemble(
    run: RunDir, out_dir: Path, which: str = "latest", *, half: bool = False, force: bool = True
) -> Path:
    """Write the NLA of stage ``which`` (sft, rl or latest) to ``out_dir`` in compact form;
    ``half`` stores adapters and head as float16 (half the size; loading casts them back)."""
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
                _copy(stage / role / name, root / role / name, half)
            write_sidecar(root / role / SIDECAR, sidecar_dict(meta, role, **extra))
        _copy(ar_stage / AR_DIR / VALUE_HEAD, root / AR_DIR / VALUE_HEAD, half)

    return atomic_dir(out_dir, write, force=force)


def _copy(source: Path, dest: Path, half: bool) -> None:
    """Copy a file; with ``half``, a safetensors file is rewritten with float16 tensors."""
    if not (half and source.suffix == ".safetensors"):
        shutil.copy2(source, dest)
        return
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
    save_file(tensors, str(dest))
