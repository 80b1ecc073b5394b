"""Verbalization results as flat rows: printed as a table, written as JSONL or Parquet."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console
from rich.text import Text

from nla.errors import InputError
from workbench.cli.text import terminal_safe

if TYPE_CHECKING:
    from nla.pipeline import TokenResult

FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}


def result_rows(
    results: list[TokenResult], *, checkpoint_id: str, layer: int, untrained: bool
) -> list[dict[str, Any]]:
    """One row per (token, explanation sample)."""
    return [
        {
            "checkpoint_id": checkpoint_id,
            "checkpoint_untrained": untrained,
            "layer": layer,
            "position": r.token.position,
            "token_id": r.token.token_id,
            "token": r.token.text,
            "role": r.token.role,
            "message_index": r.token.message_index,
            "activation_norm": r.norm,
            "activation_digest": e.vector_digest,
            "sample": e.sample_index,
            "explanation": e.text,
            "status": str(e.status),
            "finish": e.finish,
            "n_tokens": e.n_tokens,
            "cos": e.cos,
            "mse": e.mse,
            "fve": e.fve,
            "raw_output": e.raw,
        }
        for r in results
        for e in r.explanations
    ]


def output_format(path: Path) -> str:
    """``jsonl`` or ``parquet`` from the file suffix; refuses anything else before work starts."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"--out {path}: use a .jsonl or .parquet file name")
    return fmt


def check_writable(path: Path, *, force: bool) -> None:
    """Fail early, before any model runs, if ``path`` cannot be written."""
    output_format(path)
    if path.exists() and not force:
        raise InputError(f"--out {path} already exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise InputError(f"--out {path}: directory {parent} is not writable")


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows atomically (temporary file, then rename): a failure leaves nothing behind."""
    frame = pd.DataFrame(rows)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    os.close(fd)
    try:
        if output_format(path) == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_results(console: Console, results: list[TokenResult]) -> None:
    """One block per token, one line per explanation sample. Model text is printed literally, never
    interpreted as markup, with control characters shown as escapes (``repr`` for the token)."""
    for r in results:
        t = r.token
        console.print(
            Text.assemble(
                (f"pos {t.position} ", "bold"), (repr(t.text), "bold cyan"),
                f"  role {t.role} · message {t.message_index} · ‖v‖ {r.norm:.1f}",
            )
        )  # fmt: skip
        for e in r.explanations:
            scores = f"cos {_num(e.cos)} · mse {_num(e.mse)} · FVE {_num(e.fve)}"
            console.print(
                Text.assemble(
                    f"  [{e.sample_index}] ", (f"{e.status:<16}", "green" if e.status == "ok" else "yellow"),
                    scores, "\n      ", terminal_safe(e.text or e.raw.strip()),
                )
            )  # fmt: skip
