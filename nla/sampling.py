"""Sampling parameters for the activation verbalizer."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from nla.errors import InputError


@dataclass(frozen=True)
class SamplingParams:
    """How explanations are sampled. ``temperature == 0`` means greedy decoding."""

    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 48
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise InputError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        """True when decoding takes the arg-max token at every step."""
        return self.temperature == 0

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict, for provenance records and content-addressed keys."""
        return asdict(self)
