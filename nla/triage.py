"""Triage: decide cheaply which tokens deserve an expensive verbalization.

Verbalizing a token (running the AV) costs a generation; a transcript has thousands of tokens. Triage
runs the AR in reverse to rank tokens first. A *probe* names a concept with positive texts (explanations
the concept would produce) and negative texts (look-alikes that must not count). The AR turns every text
into a predicted activation; each prediction is normalised to the checkpoint's ``mse_scale`` and the
probe's direction is the mean of the positive predictions minus the mean of the negative ones, made
unit-length. Subtracting the look-alikes removes what the texts share (style, length, topic words) and
keeps what separates the concept from its near misses.

A token's score for a probe is the projection of its normalised activation on the direction,
z-scored against the projections of reference activations (``nla.reference``): raw projections of
different probes live on different scales, z-scores say "how unusual for this probe" and can be
compared and combined across probes. Scoring costs one dot product per token per probe, done for a
whole transcript as one matrix product, with no generation.

Whether a high score actually predicts that the AV would say the concept is an empirical question: the
AR's reverse use is not what it was trained for. Its quality must be measured, not assumed:
``benchmarks/triage.py`` measures the recall of top-k triage against exhaustive verbalization.
``select_top_k`` therefore also draws seeded random tokens from the rest, so that what triage misses
stays visible in every run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from nla.errors import NLAError
from nla.metrics import check_vectors, normalise

STD_FLOOR = 1e-8
"""Smallest ``ref_std`` used, so that a direction orthogonal to all reference activations cannot
divide by zero."""


@dataclass(frozen=True)
class Probe:
    """Texts describing one concept, and look-alike texts that must not count."""

    name: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]

    def __post_init__(self) -> None:
        for field in ("positive", "negative"):
            value = getattr(self, field)
            if isinstance(value, str):
                raise NLAError(f"probe {self.name!r}: {field} must be a sequence of texts, not one string")
            object.__setattr__(self, field, tuple(value))


@dataclass(frozen=True)
class ProbeDirection:
    """A probe's unit direction in activation space, with the reference statistics that z-score it."""

    name: str
    direction: torch.Tensor
    """``[d]`` unit vector, float32."""
    ref_mean: float
    """Mean projection of normalised reference activations on ``direction``."""
    ref_std: float
    """Standard deviation of those projections (> 0)."""


def _check_reference(reference: torch.Tensor, d_model: int) -> None:
    check_vectors(reference, d_model, "triage reference")
    if reference.shape[0] < 2:
        raise NLAError(f"triage reference: need at least 2 reference vectors, got {reference.shape[0]}")


def probe_directions(
    reconstruct: Callable[[list[str]], torch.Tensor],
    probes: Sequence[Probe],
    reference: torch.Tensor,
    scale: float,
) -> list[ProbeDirection]:
    """One direction per probe from AR predictions (positives minus look-alikes), with its reference
    statistics. All texts of all probes go through ``reconstruct`` in one call."""
    names = [p.name for p in probes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise NLAError(f"probe name(s) {duplicates} appear more than once")
    for probe in probes:
        if not probe.positive or not probe.negative:
            missing = "positive" if not probe.positive else "negative"
            raise NLAError(f"probe {probe.name!r} has no {missing} texts; a direction needs both")
    if not probes:
        return []
    texts = [t for p in probes for t in (*p.positive, *p.negative)]
    pred = reconstruct(texts)
    if pred.ndim != 2 or pred.shape[0] != len(texts):
        raise NLAError(f"reconstruct returned shape {list(pred.shape)} for {len(texts)} texts")
    pred = normalise(pred, scale)
    d_model = pred.shape[1]
    _check_reference(reference, d_model)
    ref = normalise(reference, scale)
    out, start = [], 0
    for probe in probes:
        n_pos, n_neg = len(probe.positive), len(probe.negative)
        pos, neg = pred[start : start + n_pos], pred[start + n_pos : start + n_pos + n_neg]
        start += n_pos + n_neg
        diff = pos.mean(dim=0) - neg.mean(dim=0)
        norm = diff.norm()
        if not torch.isfinite(diff).all() or not torch.isfinite(norm) or norm <= 0:
            raise NLAError(
                f"probe {probe.name!r}: its positive and negative texts give a degenerate direction "
                "(zero or non-finite); make the look-alikes differ from the positives"
            )
        direction = (diff / norm).contiguous()
        proj = ref @ direction
        out.append(
            ProbeDirection(probe.name, direction, float(proj.mean()), max(float(proj.std()), STD_FLOOR))
        )
    return out


def triage_scores(vectors: torch.Tensor, directions: Sequence[ProbeDirection], scale: float) -> torch.Tensor:
    """``[n, n_probes]`` z-scores of every vector on every probe, as one matrix product (float32)."""
    if not directions:
        raise NLAError("triage needs at least one probe direction")
    d_model = directions[0].direction.shape[0]
    if any(d.direction.shape != (d_model,) for d in directions):
        raise NLAError("probe directions have different widths")
    check_vectors(vectors, d_model, "triage")
    matrix = torch.stack([d.direction.float() for d in directions]).to(vectors.device)
    mean = torch.tensor([d.ref_mean for d in directions], dtype=torch.float32, device=vectors.device)
    std = torch.tensor([d.ref_std for d in directions], dtype=torch.float32, device=vectors.device)
    return ((normalise(vectors, scale) @ matrix.T - mean) / std).float()


def triage_score_one(vector: torch.Tensor, direction: ProbeDirection, scale: float) -> float:
    """The z-score of one ``[d]`` vector on one probe, computed directly."""
    check_vectors(
        vector.reshape(1, -1) if vector.ndim == 1 else vector, direction.direction.shape[0], "triage"
    )
    v = vector.float().flatten()
    v = v * (scale / v.norm())
    return (
        float(torch.dot(v, direction.direction.float().to(v.device))) - direction.ref_mean
    ) / direction.ref_std


def _generator(seed: int, key: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1))


def select_top_k(
    scores: torch.Tensor, k: int, n_random: int, seed: int, key: str
) -> tuple[list[int], list[int]]:
    """Rows to verbalize: the ``k`` rows with the highest max-over-probes score (ties to the lower
    index) and ``n_random`` rows drawn from the rest, reproducibly per ``(seed, key)``. Both lists
    are sorted ascending and capped by the rows available."""
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise NLAError(
            f"triage scores must have shape [n, n_probes] with n_probes >= 1, got {list(scores.shape)}"
        )
    if k < 0 or n_random < 0:
        raise NLAError(f"k and n_random must be >= 0, got k={k}, n_random={n_random}")
    if torch.isnan(scores).any():
        raise NLAError("triage scores contain NaN")
    combined = scores.float().cpu().max(dim=1).values
    order = torch.sort(-combined, stable=True).indices.tolist()
    top = sorted(order[:k])
    rest = sorted(order[k:])
    n_draw = min(n_random, len(rest))
    picks = torch.randperm(len(rest), generator=_generator(seed, key))[:n_draw].tolist()
    return top, sorted(rest[i] for i in picks)
