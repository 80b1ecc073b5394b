"""The executor seam: where batches of activation vectors are explained (verbalized and AR-scored).

An executor takes an iterable of vector batches and yields each batch's scored explanations as it
completes; the caller alone writes them. Batches are the unit of work so that every executor runs
exactly the batches the in-process path would run (same composition, same per-row seeds), and
results do not depend on how work is sharded. Batches are pulled lazily, so a caller can stop
scheduling (a wall-time budget) by ending its iterable."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

import torch

from nla.backends import TransformersBackend
from nla.checkpoint import NLA, load_nla
from nla.engine import Explanation, NLAEngine
from nla.errors import NLAError
from nla.sampling import SamplingParams
from nla.verbalizer import Progress


class ExecutorError(NLAError):
    """An executor cannot be set up (optional dependency missing, cluster unreachable, bad workers)."""


@dataclass(frozen=True)
class EngineSpec:
    """How to load an NLA engine: what a remote worker needs to build its own copy."""

    checkpoint: str
    target_ref: str
    layer: int | None
    dtype: torch.dtype
    device: str
    trust_remote_code: bool
    batch_size: int

    def load_nla(self) -> NLA:
        """Load the NLA this spec names."""
        return load_nla(
            self.checkpoint, target_ref=self.target_ref, layer=self.layer, dtype=self.dtype,
            device=self.device, trust_remote_code=self.trust_remote_code,
        )  # fmt: skip

    def engine(self, nla: NLA) -> NLAEngine:
        """An engine running ``nla`` in this process."""
        return NLAEngine(TransformersBackend(nla, batch_size=self.batch_size))


@dataclass(frozen=True)
class BatchResult:
    """One batch's explanations and the wall seconds spent per explanation."""

    explanations: list[Explanation]
    seconds_each: float


def explain_batch(
    engine: NLAEngine,
    vectors: torch.Tensor,
    sampling: SamplingParams,
    samples: int,
    progress: Progress | None = None,
) -> BatchResult:
    """Explain one batch and time it."""
    began = time.perf_counter()
    results = engine.explain(vectors, sampling, samples=samples, progress=progress)
    return BatchResult(results, (time.perf_counter() - began) / max(len(results), 1))


class Executor(ABC):
    """Explains batches of vectors somewhere; a context manager that releases its workers on exit."""

    name: str
    """Recorded in the run row (``in-process``, ``ray``...)."""

    @abstractmethod
    def start(self, spec: EngineSpec, nla: NLA) -> None:
        """Ready the engines; ``nla`` is the caller's loaded copy of the NLA ``spec`` names."""

    @abstractmethod
    def explain(
        self,
        batches: Iterable[torch.Tensor],
        sampling: SamplingParams,
        samples: int,
        progress: Progress | None = None,
    ) -> Iterator[BatchResult]:
        """Each batch's results as it completes (not necessarily in order)."""

    @abstractmethod
    def close(self) -> None:
        """Release the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Runs the engine in this process on the caller's loaded NLA, one batch at a time."""

    name = "in-process"

    def __init__(self) -> None:
        self._engine: NLAEngine | None = None

    def start(self, spec: EngineSpec, nla: NLA) -> None:
        self._engine = spec.engine(nla)

    def explain(
        self,
        batches: Iterable[torch.Tensor],
        sampling: SamplingParams,
        samples: int,
        progress: Progress | None = None,
    ) -> Iterator[BatchResult]:
        if self._engine is None:
            raise RuntimeError("start() the executor before explain()")
        for vectors in batches:
            yield explain_batch(self._engine, vectors, sampling, samples, progress)

    def close(self) -> None:
        """Nothing to release: the engine shares the caller's model."""
