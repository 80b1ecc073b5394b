"""Ray executor: batches of vectors sharded over an actor pool, one NLA engine per actor.

Each actor loads its own NLA from an :class:`EngineSpec` (a GPU each when the cluster has GPUs,
otherwise one CPU and one torch thread each) and explains whole batches, AR scoring included.
The driver hands a batch to whichever actor is free and yields results as they complete, so
results stream back and the caller stays the only writer: with SQLite no worker ever touches the
store, and resume/idempotence work exactly as in-process. Whole batches (not single vectors) are
the unit so every batch matches the in-process one and greedy/seeded output is identical.

This module imports Ray; import it only through :func:`nla.executors.ray_executor`."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import ray
import torch
from ray.exceptions import RayActorError
from transformers.utils import logging as hf_logging

from nla.checkpoint import NLA
from nla.executors.base import BatchResult, EngineSpec, Executor, ExecutorError, explain_batch
from nla.sampling import SamplingParams
from nla.verbalizer import Progress

CONNECT_TIMEOUT_S = 5.0
"""A Ray driver retries an unreachable address for minutes; a plain TCP probe fails in seconds."""


@dataclass(frozen=True)
class WorkerInfo:
    """What one actor loaded and how it runs."""

    checkpoint_id: str
    device: str
    threads: int


class _EngineWorker:
    """Actor body: one loaded NLA engine."""

    def __init__(self, spec: EngineSpec, threads: int) -> None:
        hf_logging.disable_progress_bar()
        torch.set_num_threads(threads)
        self.spec = spec
        self.nla = spec.load_nla()
        self.engine = spec.engine(self.nla)

    def info(self) -> WorkerInfo:
        return WorkerInfo(self.nla.id, self.spec.device, torch.get_num_threads())

    def explain(self, vectors: torch.Tensor, sampling: SamplingParams, samples: int) -> BatchResult:
        return explain_batch(self.engine, vectors, sampling, samples)


class RayExecutor(Executor):
    """Explains batches on a pool of Ray actors; the caller keeps writing results."""

    name = "ray"

    def __init__(self, address: str | None = None, actors: int | None = None, threads: int = 1) -> None:
        """Connect to the cluster at ``address`` (or start a local one); fails fast when it is unreachable.

        ``actors`` defaults to one per GPU in the cluster, or 2 on a CPU-only cluster; ``threads``
        is the torch threads (and Ray CPUs) each CPU actor gets."""
        if actors is not None and actors < 1:
            raise ExecutorError(f"--actors must be >= 1, got {actors}")
        self._started_ray = _connect(address)
        self.gpus = int(ray.cluster_resources().get("GPU", 0))
        self.actors = actors or self.gpus or 2
        self.threads = threads
        self.workers: list[WorkerInfo] = []
        self._pool: list = []
        self._spec: EngineSpec | None = None

    def start(self, spec: EngineSpec, nla: NLA) -> None:
        """Start the actor pool, or keep the running one when it already serves ``spec``."""
        if not self._pool or spec != self._spec:
            self._kill_pool()
            self._check_resources()
            self._pool, self._spec = self._spawn(spec), spec
        loaded = {w.checkpoint_id for w in self.workers}
        if loaded != {nla.id}:
            raise ExecutorError(f"Ray actors loaded {sorted(loaded)}, but this run uses {nla.id}")

    def _spawn(self, spec: EngineSpec) -> list:
        """One actor per slot, each loaded (load errors surface here, not mid-run)."""
        options = {"num_gpus": 1} if self.gpus else {"num_cpus": self.threads}
        worker_spec = replace(spec, device="cuda" if self.gpus else "cpu")
        remote = ray.remote(_EngineWorker).options(**options)
        pool = [remote.remote(worker_spec, self.threads) for _ in range(self.actors)]
        try:
            self.workers = ray.get([actor.info.remote() for actor in pool])
        except RayActorError as exc:
            for actor in pool:
                ray.kill(actor)
            raise ExecutorError(f"a Ray actor could not load NLA {spec.checkpoint!r}: {exc}") from exc
        return pool

    def _check_resources(self) -> None:
        """Refuse a pool the cluster cannot place (the actors would wait forever)."""
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if self.gpus and self.actors > self.gpus:
            raise ExecutorError(f"--actors {self.actors} needs a GPU each; the cluster has {self.gpus}")
        if not self.gpus and self.actors * self.threads > cpus:
            raise ExecutorError(
                f"--actors {self.actors} x {self.threads} thread(s) needs {self.actors * self.threads} CPUs; "
                f"the cluster has {cpus}"
            )

    def explain(
        self,
        batches: Iterable[torch.Tensor],
        sampling: SamplingParams,
        samples: int,
        progress: Progress | None = None,
    ) -> Iterator[BatchResult]:
        if not self._pool:
            raise RuntimeError("start() the executor before explain()")
        todo, idle = iter(batches), list(self._pool)
        in_flight: dict = {}  # object ref -> the actor computing it
        while True:
            while idle and (vectors := next(todo, None)) is not None:
                actor = idle.pop()
                in_flight[actor.explain.remote(vectors, sampling, samples)] = actor
            if not in_flight:
                return
            [done], _ = ray.wait(list(in_flight), num_returns=1)
            idle.append(in_flight.pop(done))
            result: BatchResult = ray.get(done)
            if progress:
                progress(len(result.explanations))
            yield result

    def close(self) -> None:
        self._kill_pool()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def _kill_pool(self) -> None:
        for actor in self._pool:
            ray.kill(actor)
        self._pool, self._spec, self.workers = [], None, []


def _connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (None: start a local one); True when this call started Ray."""
    if address and address != "auto":
        _probe(address)
    if ray.is_initialized():
        if address:
            raise ExecutorError(
                f"this process is already connected to a Ray cluster; cannot also join {address}"
            )
        return False
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ExecutorError(f"could not connect to a Ray cluster at {address}: {exc}") from exc
    return True


def _probe(address: str) -> None:
    """Fail in seconds when nothing listens at ``[ray://]host:port``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ExecutorError(f"Ray address {address!r}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ExecutorError(f"could not reach a Ray cluster at {address}: {exc}") from exc
