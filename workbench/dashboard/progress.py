"""A runner stage shown as a Streamlit progress bar with counts and an ETA."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import streamlit as st
from streamlit.delta_generator import DeltaGenerator


@dataclass
class StreamlitStage:
    """Progress of one runner stage in a ``st.progress`` bar."""

    name: str
    bar: DeltaGenerator
    total: int = 0
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def set_total(self, total: int) -> None:
        self.total = total
        self._draw()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.started
        eta = ""
        if 0 < self.done < self.total:
            eta = f" · ETA {elapsed / self.done * (self.total - self.done):.0f} s"
        fraction = self.done / self.total if self.total else 0.0
        self.bar.progress(min(fraction, 1.0), text=f"{self.name}: {self.done} of {self.total or '?'}{eta}")


@contextmanager
def streamlit_stage(name: str) -> Iterator[StreamlitStage]:
    """A runner stage factory: one progress bar per stage, left at its final count."""
    yield StreamlitStage(name, st.empty())
