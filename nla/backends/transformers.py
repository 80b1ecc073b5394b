"""In-process transformers backend (CPU or GPU)."""

from __future__ import annotations

import weakref

import torch

from nla.backends.base import NLABackend
from nla.checkpoint.model import NLA
from nla.sampling import SamplingParams
from nla.verbalizer import Generation, Progress, Verbalizer

_VERBALIZERS: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple[object, ...], Verbalizer]] = (
    weakref.WeakKeyDictionary()
)
"""One verbalizer per loaded AV (and prefix-cache setting): a process that keeps an NLA loaded (the
dashboard's Explore page, a benchmark running several campaigns) computes the prompt prefix's KV cache
once, not once per run. Keyed by the AV module, everything the verbalizer reads from the NLA and the
weights' in-place version counters, so an AV trained in place gets a fresh prefix cache."""


def shared_verbalizer(nla: NLA, *, prefix_cache: bool = True) -> Verbalizer:
    """The verbalizer of ``nla``'s AV in this process, made on first use."""
    kept = _VERBALIZERS.setdefault(nla.av, {})
    weights = sum(p._version for p in nla.av.parameters())  # bumped by every in-place update (training)
    key = (prefix_cache, id(nla.av_tokenizer), nla.av_prompt, nla.meta.injection_scale, weights)
    if key not in kept:
        kept.clear()  # an older key is a stale prefix of weights that changed since
        kept[key] = Verbalizer(
            nla.av, nla.av_tokenizer, nla.av_prompt, nla.meta.injection_scale, prefix_cache=prefix_cache
        )
    return kept[key]


class TransformersBackend(NLABackend):
    """Runs a loaded :class:`NLA` in this process."""

    def __init__(self, nla: NLA, *, batch_size: int = 64, ar_batch_size: int = 32, prefix_cache: bool = True):
        self.nla = nla
        self.meta = nla.meta
        self.checkpoint_id = nla.id
        self.batch_size = batch_size
        self.ar_batch_size = ar_batch_size
        self.verbalizer = shared_verbalizer(nla, prefix_cache=prefix_cache)

    def verbalize(
        self, vectors: torch.Tensor, sampling: SamplingParams, samples: int, progress: Progress | None = None
    ) -> list[Generation]:
        return self.verbalizer.generate(
            vectors, sampling, samples=samples, batch_size=self.batch_size, progress=progress
        )

    def reconstruct(self, explanations: list[str]) -> torch.Tensor:
        return self.nla.ar.reconstruct(explanations, batch_size=self.ar_batch_size)
