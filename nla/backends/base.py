"""The backend seam: vectors in, raw generations and reconstructed vectors out.

The in-process transformers backend is the default; a vLLM ``prompt_embeds`` backend would implement
the same two methods and slot in without touching callers. Distribution sits one level up:
``nla.executors`` runs whole engines (backend + parsing + AR scoring), in-process or one per Ray actor."""

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
