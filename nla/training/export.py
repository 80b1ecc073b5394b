"""``train export``: the run's NLA as a compact directory, or merged into the released layout."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nla.checkpoint import export_released
from nla.checkpoint.load import load_nla
from nla.errors import CheckpointError
from nla.training.assemble import assemble
from nla.training.model_card import CARD, model_card
from nla.training.run import RunDir


def run_export(
    run: RunDir,
    out: Path,
    which: str = "latest",
    *,
    merge: bool = False,
    half: bool = False,
    force: bool = False,
) -> Path:
    """Write the NLA of stage ``which`` with a model card; ``merge`` folds the adapters into full
    weights (released format), ``half`` stores a compact NLA's adapters and head in float16."""
    if Path(out).exists() and not force:
        raise CheckpointError(f"{out} already exists; pass --force to overwrite it")
    if not merge:
        path = assemble(run, out, which, half=half)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = export_released(assemble(run, Path(tmp) / "compact", which), out, force=True)
    load_nla(str(path))  # what was written must load and pass the checkpoint checks
    (path / CARD).write_text(model_card(run, which), encoding="utf-8")
    return path
