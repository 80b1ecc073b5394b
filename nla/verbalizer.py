"""The activation verbalizer (AV): batched generation with each vector injected at the marker slot.

Every AV prompt is token-for-token identical; only the embedding row at the marker differs. So the
KV cache of the prefix before the marker is computed once and shared by every batch, each batch
pre-fills only the marker and what follows it, and finished rows leave the batch as they end.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from nla.metrics import normalise
from nla.parsing import CLOSE_TAG
from nla.prompts import AVPrompt
from nla.sampling import SamplingParams

_TOP_K = (256, 4096)  # candidate widths tried before a full-vocabulary sort
Progress = Callable[[int], None]
"""Called with the number of explanations that just finished."""


@dataclass(frozen=True)
class Generation:
    """One sampled AV output for one vector."""

    vector_index: int
    sample_index: int
    text: str
    n_tokens: int
    finish: str
    """``stop`` (closing tag), ``eos`` or ``length``."""
    token_ids: tuple[int, ...] = ()
    """The generated token ids (training scores exactly these)."""


def vector_digest(vector: torch.Tensor) -> str:
    """Content address of a vector (its float32 bytes)."""
    return hashlib.sha256(vector.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


def _row_seed(seed: int, digest: str, sample_index: int) -> int:
    """A per-(vector, sample) seed, so sampled text does not depend on batch composition."""
    return int(hashlib.sha256(f"{seed}|{digest}|{sample_index}".encode()).hexdigest()[:15], 16)


class Verbalizer:
    """Turns activation vectors into raw AV generations."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompt: AVPrompt,
        injection_scale: float,
        *,
        prefix_cache: bool = True,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.injection_scale = injection_scale
        self.use_prefix_cache = prefix_cache
        self._prefix: DynamicCache | None = None
        ids = torch.tensor(prompt.input_ids, device=model.device)
        with torch.inference_mode():
            self._prompt_embeds = model.get_input_embeddings()(ids[None])[0]
        self._eos = _eos_ids(model, tokenizer)
        self._close_window = len(tokenizer.encode(CLOSE_TAG, add_special_tokens=False)) + 2

    @torch.inference_mode()
    def generate(
        self,
        vectors: torch.Tensor,
        sampling: SamplingParams,
        *,
        samples: int = 1,
        batch_size: int = 64,
        progress: Progress | None = None,
    ) -> list[Generation]:
        """``samples`` generations per vector, ordered by (vector, sample)."""
        digests = [vector_digest(v) for v in vectors]
        rows = [(v, s) for v in range(len(vectors)) for s in range(samples)]
        out: list[Generation] = []
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            seeds = [_row_seed(sampling.seed, digests[v], s) for v, s in batch]
            injected = vectors[[v for v, _ in batch]]
            token_lists, finishes = self._generate_batch(injected, sampling, seeds, progress)
            for (v, s), toks, finish in zip(batch, token_lists, finishes, strict=True):
                text = self.tokenizer.decode(toks, skip_special_tokens=True)
                out.append(Generation(v, s, text, len(toks), finish, tuple(toks)))
        return out

    def _inputs(self, injected: torch.Tensor) -> tuple[torch.Tensor, DynamicCache]:
        """Input embeddings for one batch and the cache they extend."""
        site, batch = self.prompt.site, injected.shape[0]
        rows = normalise(injected, self.injection_scale).to(self._prompt_embeds.dtype)
        start = site if self.use_prefix_cache else 0
        embeds = self._prompt_embeds[start:].expand(batch, -1, -1).clone()
        embeds[:, site - start] = rows.to(embeds.device)
        if not self.use_prefix_cache:
            return embeds, DynamicCache(config=self.model.config)
        cache = copy.deepcopy(self._prefix_cache())
        cache.batch_repeat_interleave(batch)
        return embeds, cache

    def _prefix_cache(self) -> DynamicCache:
        if self._prefix is None:
            self._prefix = DynamicCache(config=self.model.config)
            prefix = self._prompt_embeds[: self.prompt.site][None]
            self.model(inputs_embeds=prefix, past_key_values=self._prefix, use_cache=True, logits_to_keep=1)
        return self._prefix

    def _generate_batch(
        self, injected: torch.Tensor, sampling: SamplingParams, seeds: list[int], progress: Progress | None
    ) -> tuple[list[list[int]], list[str]]:
        embeds, cache = self._inputs(injected)
        logits = self.model(
            inputs_embeds=embeds, past_key_values=cache, use_cache=True, logits_to_keep=1
        ).logits
        n = injected.shape[0]
        generators = None if sampling.greedy else [_generator(s, logits.device) for s in seeds]
        tokens: list[list[int]] = [[] for _ in range(n)]
        finish: list[str] = ["length"] * n
        active = list(range(n))  # batch row -> original row
        pending_drop: list[int] = []  # batch rows finished but still in the cache
        for step in range(sampling.max_new_tokens):
            picks = _pick(logits[:, -1], sampling, generators, active).tolist()
            for b, (row, tok) in enumerate(zip(active, picks, strict=True)):
                if row < 0:
                    continue
                tokens[row].append(tok)
                ended = self._ended(tokens[row])
                if ended or step + 1 == sampling.max_new_tokens:
                    finish[row] = ended or "length"
                    pending_drop.append(b)
                    active[b] = -1
                    if progress:
                        progress(1)
            alive = [b for b, row in enumerate(active) if row >= 0]
            if not alive:
                break
            next_ids = torch.tensor(picks, device=logits.device)[:, None]
            if len(pending_drop) * 4 >= len(active):  # compact once a quarter of the rows are done
                keep = torch.tensor(alive, device=logits.device)
                cache.batch_select_indices(keep)
                next_ids = next_ids[keep]
                active = [active[b] for b in alive]
                pending_drop = []
            logits = self.model(input_ids=next_ids, past_key_values=cache, use_cache=True).logits
        return tokens, finish

    def _ended(self, tokens: list[int]) -> str | None:
        if tokens[-1] in self._eos:
            return "eos"
        tail = self.tokenizer.decode(tokens[-self._close_window :])
        return "stop" if CLOSE_TAG in tail else None


def _generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _pick(
    logits: torch.Tensor,
    sampling: SamplingParams,
    generators: list[torch.Generator] | None,
    active: list[int],
) -> torch.Tensor:
    """Next token per batch row: arg-max, or a seeded temperature / top-p draw.

    A draw is one uniform number per row from that row's own generator, looked up in the row's
    cumulative nucleus distribution."""
    if generators is None:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1:
        sorted_p, order = _nucleus_candidates(probs, sampling.top_p)
        sorted_p = sorted_p.masked_fill(sorted_p.cumsum(dim=-1) - sorted_p > sampling.top_p, 0.0)
    else:
        sorted_p, order = probs, None
    cdf = sorted_p.cumsum(dim=-1)
    draws = torch.stack(
        [
            torch.rand((), generator=generators[row], device=cdf.device) if row >= 0 else cdf.new_zeros(())
            for row in active
        ]
    )
    index = torch.searchsorted(cdf, (draws * cdf[:, -1])[:, None]).clamp(max=cdf.shape[-1] - 1)
    return (index if order is None else order.gather(-1, index)).squeeze(-1)


def _nucleus_candidates(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities in descending order with their token ids, cut to the first top-k that holds
    ``top_p`` of the mass in every row (a full sort, ~20x slower, only when none does)."""
    for k in _TOP_K:
        if k < probs.shape[-1]:
            values, order = probs.topk(k, dim=-1)
            if bool((values.sum(dim=-1) >= top_p).all()):
                return values, order
    return probs.sort(dim=-1, descending=True)


def _eos_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return {i for i in ids if i is not None}
