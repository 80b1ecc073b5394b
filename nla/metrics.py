"""Reconstruction metrics on sqrt(d)-normalised vectors: mse = 2(1 - cos), FVE = 1 - mse / B."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nla.errors import VectorError


def normalise(vectors: torch.Tensor, scale: float) -> torch.Tensor:
    """Rescale each row to L2 norm ``scale`` (computed in float32)."""
    v = vectors.float()
    return v * (scale / v.norm(dim=-1, keepdim=True))


def fve_baseline(gold: torch.Tensor, scale: float) -> float:
    """B: the per-element variance of normalised gold vectors around their mean."""
    g = normalise(gold, scale)
    return float(((g - g.mean(dim=0, keepdim=True)) ** 2).mean())


@dataclass(frozen=True)
class Reconstruction:
    """How well predicted vectors match gold vectors, one entry per row."""

    cos: torch.Tensor
    mse: torch.Tensor
    fve: torch.Tensor | None


def score(pred: torch.Tensor, gold: torch.Tensor, scale: float, baseline: float | None) -> Reconstruction:
    """cos, normalised mse and (when a baseline is known) FVE for each row."""
    p, g = normalise(pred, scale), normalise(gold, scale)
    mse = ((p - g) ** 2).mean(dim=-1)
    cos = torch.nn.functional.cosine_similarity(p, g, dim=-1)
    return Reconstruction(cos, mse, 1 - mse / baseline if baseline else None)


def check_vectors(vectors: torch.Tensor, d_model: int, source: str) -> None:
    """Refuse vectors the verbalizer cannot use: wrong shape, non-finite, or zero."""
    if vectors.ndim != 2 or vectors.shape[1] != d_model:
        raise VectorError(f"{source}: vectors must have shape [n, {d_model}], got {list(vectors.shape)}")
    bad = (~torch.isfinite(vectors)).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise VectorError(f"{source}: vector(s) {bad[:10]} contain NaN or inf")
    zero = (vectors.float().norm(dim=1) == 0).nonzero().flatten().tolist()
    if zero:
        raise VectorError(f"{source}: vector(s) {zero[:10]} are all zeros and have no direction to verbalize")
