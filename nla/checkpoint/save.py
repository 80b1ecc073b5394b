"""Write NLA checkpoints: the released format (full weights) or the compact form (base model
reference + optional LoRA adapters + value head), and export compact -> released."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from peft import PeftModel
from safetensors.torch import save_file
from torch import nn

from nla.checkpoint.layout import AR_DIR, AV_DIR, COMPACT, VALUE_HEAD
from nla.checkpoint.model import NLA
from nla.checkpoint.portable import make_portable
from nla.errors import CheckpointError
from nla.files import share
from nla.sidecar import SIDECAR, NLAMeta, sidecar_dict, write_sidecar


def atomic_dir(out_dir: Path, write: Callable[[Path], None], *, force: bool) -> Path:
    """Build a directory in a temporary sibling and move it into place when complete."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise CheckpointError(f"{out_dir} already exists; pass --force to overwrite it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        write(staging)
        share(staging)  # safetensors writes owner-only files: give every file the user's usual mode
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _save_head(head: nn.Linear, directory: Path) -> None:
    save_file({"weight": head.weight.detach().cpu().contiguous()}, str(directory / VALUE_HEAD))


def save_released(nla: NLA, out_dir: Path, *, force: bool = False) -> Path:
    """Write ``nla`` as ``out_dir/av`` and ``out_dir/ar`` in the released layout."""

    def write(root: Path) -> None:
        av, ar = root / AV_DIR, root / AR_DIR
        nla.av.save_pretrained(av)
        nla.av_tokenizer.save_pretrained(av)
        make_portable(av, nla.av_tokenizer)  # loads the same under transformers 4.x and 5.x
        write_sidecar(av / SIDECAR, sidecar_dict(nla.meta, "av"))
        nla.ar.backbone.save_pretrained(ar)  # truncated config (K+1 blocks), no norm / lm_head
        nla.ar.tokenizer.save_pretrained(ar)
        make_portable(ar, nla.ar.tokenizer)
        _save_head(nla.ar.value_head, ar)
        write_sidecar(ar / SIDECAR, sidecar_dict(nla.meta, "ar"))

    return atomic_dir(out_dir, write, force=force)


def save_compact(
    meta: NLAMeta,
    out_dir: Path,
    value_head: nn.Linear,
    *,
    av_adapter: PeftModel | None = None,
    ar_adapter: PeftModel | None = None,
    force: bool = False,
) -> Path:
    """Write the compact form: sidecars naming ``meta.base_model``, adapters where given, value head."""
    if not meta.base_model:
        raise CheckpointError("a compact NLA needs meta.base_model: the model its adapters apply to")
    extra = {COMPACT: {"base_model": meta.base_model}}

    def write(root: Path) -> None:
        for role, adapter in ((AV_DIR, av_adapter), (AR_DIR, ar_adapter)):
            (root / role).mkdir()
            if adapter is not None:
                adapter.save_pretrained(root / role)
            write_sidecar(root / role / SIDECAR, sidecar_dict(meta, role, **extra))
        _save_head(value_head, root / AR_DIR)

    return atomic_dir(out_dir, write, force=force)


def export_released(compact_dir: Path, out_dir: Path, *, force: bool = False) -> Path:
    """Merge a compact NLA's adapters into full weights and write the released layout."""
    from nla.checkpoint.load import load_nla

    return save_released(load_nla(str(compact_dir)), out_dir, force=force)
