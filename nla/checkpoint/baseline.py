"""Measure the FVE baseline B for an NLA on reference activations and store it in its sidecars."""

from __future__ import annotations

from pathlib import Path

from nla.checkpoint.layout import AR_DIR, AV_DIR
from nla.errors import CheckpointError
from nla.metrics import fve_baseline
from nla.pipeline import Target
from nla.reference import reference_vectors
from nla.sidecar import SIDECAR, read_sidecar, write_sidecar


def measure_baseline(
    target: Target, layer: int, mse_scale: float, items: list[dict] | None = None
) -> tuple[float, int]:
    """B and the number of reference vectors it was computed on."""
    vectors = reference_vectors(target.model, target.tokenizer, layer, items)
    return fve_baseline(vectors, mse_scale), len(vectors)


def store_baseline(pair_dir: Path, value: float, n_vectors: int, source: str) -> None:
    """Write ``metrics.fve_baseline`` into both sidecars of a local NLA directory, keeping every
    other field as it is."""
    paths = [Path(pair_dir) / role / SIDECAR for role in (AV_DIR, AR_DIR)]
    sidecars = [read_sidecar(path) for path in paths]  # both must read before either is written
    for path, raw in zip(paths, sidecars, strict=True):
        raw["metrics"] = {
            **(raw.get("metrics") or {}),
            "fve_baseline": value,
            "fve_baseline_vectors": n_vectors,
            "fve_baseline_source": source,
            "fve_baseline_definition": "mean per-element variance of sqrt(d)-normalised gold vectors",
        }
        try:
            write_sidecar(path, raw)
        except OSError as exc:
            raise CheckpointError(f"cannot write {path}: {exc}") from exc
