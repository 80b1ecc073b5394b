"""Assemble a run's trained halves into an NLA checkpoint: the compact form (base model reference
+ LoRA adapters + value head + sidecars) or, after full fine-tuning, full model directories; either
loads through ``load_nla`` and the engine like any other NLA."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from safetensors.torch import load_file, save_file

from nla.checkpoint.layout import AR_DIR, AV_DIR, COMPACT, VALUE_HEAD
from nla.checkpoint.save import atomic_dir
from nla.errors import NLAError
from nla.resolve import load_tokenizer
from nla.sidecar import SIDECAR, sidecar_dict, write_sidecar
from nla.training.models import is_adapter, run_meta
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
    """Write the NLA of stage ``which`` (sft, rl or latest) to ``out_dir``: compact halves for LoRA
    stages, full model directories for fully fine-tuned ones; ``half`` stores adapters and head as
    float16 (half the size; loading casts them back)."""
    which = latest(run) if which == "latest" else which
    av_stage, ar_stage = (run.stage(s) for s in STAGES[which])
    for stage in {av_stage, ar_stage}:
        if not read_stage(stage):
            raise NLAError(
                f"{stage} has not finished: run `nla-workbench train {stage.name.replace('_', '-')} {run.root}` first"
            )
    settings = run.settings()
    model = run.model_ref(settings)  # an adapter run's NLA applies to its merged fine-tune
    meta = replace(run_meta(run), stage="rl" if which == "rl" else "sl", base_model=model)
    meta = meta.with_baseline(training_baseline(run), len(training_vectors(run)))
    trained_on = f"{settings.corpus} corpus, run {run.root.name}"

    def write(root: Path) -> None:
        for role, stage in ((AV_DIR, av_stage), (AR_DIR, ar_stage)):
            source, dest = stage / role, root / role
            if is_adapter(source):  # compact: the adapter applies to the base model named here
                dest.mkdir()
                extra = {COMPACT: {"base_model": model}}
                for name in ADAPTER_FILES:
                    _copy(source / name, dest / name, half)
            else:  # full fine-tuning: a complete model directory
                shutil.copytree(source, dest)
                load_tokenizer(model).save_pretrained(dest)
                extra = {}
            write_sidecar(dest / SIDECAR, sidecar_dict(meta, role, trained_on=trained_on, **extra))
        _copy(ar_stage / AR_DIR / VALUE_HEAD, root / AR_DIR / VALUE_HEAD, half)

    return atomic_dir(out_dir, write, force=force)


def _copy(source: Path, dest: Path, half: bool) -> None:
    """Copy a file; with ``half``, a safetensors file is rewritten with float16 tensors."""
    if not (half and source.suffix == ".safetensors"):
        shutil.copy2(source, dest)
        return
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
    save_file(tensors, str(dest))
