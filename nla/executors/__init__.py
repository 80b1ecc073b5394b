"""Executors: where the engine explains batches of vectors (see :mod:`nla.executors.base`).

In-process is the default. Ray is an optional extra, imported only when a Ray executor is asked
for, so importing the runner or the CLI never imports Ray."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nla.executors.base import (
    BatchResult,
    EngineSpec,
    Executor,
    ExecutorError,
    InProcessExecutor,
)

if TYPE_CHECKING:
    from nla.executors.ray import RayExecutor

EXECUTORS = ("in-process", "ray")
RAY_INSTALL = "pip install 'nla-workbench[ray]'"


def ray_executor(address: str | None = None, actors: int | None = None, threads: int = 1) -> RayExecutor:
    """A :class:`~nla.executors.ray.RayExecutor`, or a clear error when Ray is not installed."""
    try:
        from nla.executors.ray import RayExecutor
    except ModuleNotFoundError as exc:
        if exc.name != "ray" and not (exc.name or "").startswith("ray."):
            raise
        raise ExecutorError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from exc
    return RayExecutor(address, actors, threads)


def make_executor(kind: str, address: str | None = None, actors: int | None = None) -> Executor:
    """The executor the CLI's ``--executor`` names; ``address`` and ``actors`` are Ray's."""
    if kind not in EXECUTORS:
        raise ExecutorError(f"--executor {kind!r}: choose {' or '.join(EXECUTORS)}")
    if kind == "ray":
        return ray_executor(address, actors)
    if address is not None or actors is not None:
        raise ExecutorError("--address and --actors apply to --executor ray only")
    return InProcessExecutor()


__all__ = [
    "EXECUTORS",
    "RAY_INSTALL",
    "BatchResult",
    "EngineSpec",
    "Executor",
    "ExecutorError",
    "InProcessExecutor",
    "make_executor",
    "ray_executor",
]
