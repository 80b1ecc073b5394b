"""In-process transformers backend (CPU or GPU)."""

from __future__ import annotations

import torch

from nla.backends.base import NLABackend
from nla.checkpoint.model import NLA
from nla.sampling import SamplingParams
from nla.verbalizer import Generation, Progress, Verbalizer


class TransformersBackend(NLABackend):
    """Runs a loaded :class:`NLA` in this process."""

    def __init__(self, nla: NLA, *, batch_size: int = 64, ar_batch_size: int = 32, prefix_cache: bool = True):
        self.nla = nla
        self.meta = nla.meta
        self.checkpoint_id = nla.id
        self.batch_size = batch_size
        self.ar_batch_size = ar_batch_size
        self.verbalizer = Verbalizer(
            nla.av, nla.av_tokenizer, nla.av_prompt, nla.meta.injection_scale, prefix_cache=prefix_cache
        )

    def verbalize(
        self, vectors: torch.Tensor, sampling: SamplingParams, samples: int, progress: Progress | None = None
    ) -> list[Generation]:
        return self.verbalizer.generate(
            vectors, sampling, samples=samples, batch_size=self.batch_size, progress=progress
        )

    def reconstruct(self, explanations: list[str]) -> torch.Tensor:
        return self.nla.ar.reconstruct(explanations, batch_size=self.ar_batch_size)
