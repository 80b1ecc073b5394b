"""The backend seam: vectors in, raw generations and reconstructed vectors out.

The in-process transformers backend is the default; a vLLM ``prompt_embeds`` backend or a Ray
executor implements the same two methods and slots in without touching callers."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from nla.sampling import SamplingParams
from nla.sidecar import NLAMeta
from nla.verbalizer import Generation, Progress


class NLABackend(ABC):
    """Runs one NLA's verbalizer and reconstructor."""

    meta: NLAMeta
    """The checked metadata of the NLA this backend runs."""
    checkpoint_id: str
    """Identifier of that NLA, for provenance and content-addressed results."""

    @abstractmethod
    def verbalize(
        self, vectors: torch.Tensor, sampling: SamplingParams, samples: int, progress: Progress | None = None
    ) -> list[Generation]:
        """``samples`` raw AV generations per vector, ordered by (vector, sample)."""

    @abstractmethod
    def reconstruct(self, explanations: list[str]) -> torch.Tensor:
        """AR predictions ``[n, d]`` for parsed explanation texts."""
