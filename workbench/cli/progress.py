"""A rich progress bar with counts and ETA, fed by the engine's progress callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Interrupted(Exception):
    """Long work stopped by Ctrl-C; the message says how to go on (the CLI exits 130)."""


@dataclass
class ProgressTask:
    """Callbacks bound to one bar: ``set_total`` once, then ``advance`` as work completes."""

    progress: Progress
    task: TaskID

    def set_total(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)


@contextmanager
def progress_bar(console: Console, description: str) -> Iterator[ProgressTask]:
    """Show a bar on ``console`` while the block runs."""
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
    )  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        yield ProgressTask(progress, progress.add_task(description, total=None))
