"""Verbalizer throughput on CPU: the naive one-call-per-vector loop against the batched engine.

Loads the embedded SmolLM2-135M target and its untrained ``init`` NLA (AV + AR) the way a user
would, reads real residual-stream vectors from the bundled sample transcripts, and measures:

* the naive loop of the reference client: one ``model.generate`` per vector over the full AV prompt;
* the engine (``Verbalizer`` with its prefix KV cache) at a sweep of batch sizes;
* the best engine rate over the naive one, the fraction of the CPU FLOP roofline it reaches
  (2 x AV parameters x generated tokens/s over a measured float32 ``torch.mm`` peak), and peak RSS;
* whether greedy prefix-cached outputs equal uncached ones (informational).

Greedy decoding throughout. Run it with::

    .venv/bin/python benchmarks/verbalize.py
    .venv/bin/python benchmarks/verbalize.py --vectors 64 --batches 16,32,64 --naive-vectors 2
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nla.activations import extract_activations
from nla.checkpoint.load import load_nla
from nla.checkpoint.model import NLA
from nla.metrics import normalise
from nla.pipeline import Target, load_target
from nla.sampling import SamplingParams
from nla.transcript import load_transcript
from nla.verbalizer import Verbalizer

TARGET = "embedded:smollm2-135m-instruct"
SAMPLES = Path(__file__).resolve().parent.parent / "audits" / "samples"
CHECK_VECTORS = 4


@dataclass(frozen=True)
class Rate:
    """Explanations and generated tokens produced in a timed run."""

    label: str
    explanations: int
    tokens: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.explanations / self.seconds

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds

    def line(self) -> str:
        return (
            f"{self.label:<14} {self.explanations:>4} expl  {self.tokens:>6} tok  {self.seconds:>7.1f} s  "
            f"{self.per_s:>6.2f} expl/s  {self.tok_s:>7.1f} tok/s"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=128, help="vectors explained per engine batch size")
    parser.add_argument("--batches", default="16,32,64,128", help="comma list of engine batch sizes")
    parser.add_argument("--naive-vectors", type=int, default=4, help="vectors timed in the naive loop")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="explanation length in tokens")
    return parser.parse_args()


def peak_gflops(size: int = 2048, reps: int = 5) -> float:
    """Best-of float32 ``torch.mm`` rate on torch's default threads, in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def param_count(model: torch.nn.Module) -> int:
    """Parameters counted once each (tied embeddings are one tensor)."""
    return sum(p.numel() for p in model.parameters())


def sample_vectors(target: Target, layer: int, n: int) -> torch.Tensor:
    """``n`` layer-``layer`` vectors from the bundled transcripts (all positions but 0), reused cyclically."""
    pool = []
    for path in sorted(SAMPLES.glob("*.json")):
        acts = extract_activations(target.model, target.tokenizer, load_transcript(path), layer, "all")
        pool.append(acts.vectors[1:])
    vectors = torch.cat(pool)
    return vectors[torch.arange(n) % len(vectors)]


@torch.inference_mode()
def naive_one(nla: NLA, vector: torch.Tensor, max_new_tokens: int) -> int:
    """One explanation the reference-client way: full prompt, one ``generate`` call. Returns its length."""
    ids = torch.tensor([nla.av_prompt.input_ids], device=nla.av.device)
    embeds = nla.av.get_input_embeddings()(ids).clone()
    embeds[0, nla.av_prompt.site] = normalise(vector[None], nla.meta.injection_scale)[0].to(embeds.dtype)
    out = nla.av.generate(
        inputs_embeds=embeds,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        min_new_tokens=max_new_tokens,
        do_sample=False,
        top_p=None,
        top_k=None,
        pad_token_id=nla.av_tokenizer.pad_token_id or nla.av_tokenizer.eos_token_id,
    )
    return out.shape[1]  # with inputs_embeds only, generate returns just the new tokens


def time_naive(nla: NLA, vectors: torch.Tensor, max_new_tokens: int) -> Rate:
    naive_one(nla, vectors[0], 2)  # warm-up
    start = time.perf_counter()
    tokens = sum(naive_one(nla, v, max_new_tokens) for v in vectors)
    return Rate("naive", len(vectors), tokens, time.perf_counter() - start)


def make_verbalizer(nla: NLA, *, prefix_cache: bool = True) -> Verbalizer:
    scale = nla.meta.injection_scale
    return Verbalizer(nla.av, nla.av_tokenizer, nla.av_prompt, scale, prefix_cache=prefix_cache)


def time_engine(verbalizer: Verbalizer, vectors: torch.Tensor, sampling: SamplingParams, batch: int) -> Rate:
    start = time.perf_counter()
    out = verbalizer.generate(vectors, sampling, batch_size=batch)
    seconds = time.perf_counter() - start
    return Rate(f"engine b={batch}", len(out), sum(g.n_tokens for g in out), seconds)


def cache_matches(nla: NLA, vectors: torch.Tensor, sampling: SamplingParams) -> bool:
    """Greedy prefix-cached text equals uncached text on the same vectors."""
    cached = make_verbalizer(nla).generate(vectors, sampling, batch_size=len(vectors))
    uncached = make_verbalizer(nla, prefix_cache=False).generate(vectors, sampling, batch_size=len(vectors))
    return [g.text for g in cached] == [g.text for g in uncached]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KB on Linux


def main() -> None:
    args = parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    peak = peak_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, peak float32 mm {peak:.1f} GFLOP/s")

    start = time.perf_counter()
    target = load_target(TARGET)
    nla = load_nla("init", target_ref=TARGET)
    params = param_count(nla.av)
    print(f"loaded target + NLA in {time.perf_counter() - start:.1f} s; AV {params / 1e6:.1f} M params, "
          f"prompt {len(nla.av_prompt.input_ids)} tokens, site {nla.av_prompt.site}, layer {nla.meta.layer}")

    vectors = sample_vectors(target, nla.meta.layer, max(args.vectors, args.naive_vectors, CHECK_VECTORS))
    sampling = SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)

    naive = time_naive(nla, vectors[: args.naive_vectors], args.max_new_tokens)
    print(naive.line(), flush=True)

    verbalizer = make_verbalizer(nla)
    verbalizer.generate(vectors[:1], SamplingParams(temperature=0.0, max_new_tokens=2))  # builds the prefix cache
    rates = []
    for batch in batches:
        rates.append(time_engine(verbalizer, vectors[: args.vectors], sampling, batch))
        print(rates[-1].line(), flush=True)
    best = max(rates, key=lambda r: r.tok_s)

    matches = cache_matches(nla, vectors[:CHECK_VECTORS], sampling)
    roofline = 2 * params * best.tok_s / (peak * 1e9)
    print()
    print("=== verbalizer benchmark summary ===")
    print(f"setup        embedded SmolLM2-135M init NLA, {args.max_new_tokens}-token greedy explanations, CPU")
    print(f"peak mm      {peak:.1f} GFLOP/s (float32 2048x2048, best of 5)")
    print(f"naive        {naive.per_s:.2f} expl/s, {naive.tok_s:.1f} tok/s ({naive.explanations} vectors)")
    for rate in rates:
        print(f"{rate.label:<12} {rate.per_s:.2f} expl/s, {rate.tok_s:.1f} tok/s")
    print(f"best         {best.label} at {best.tok_s:.1f} tok/s")
    print(f"speed-up     {best.tok_s / naive.tok_s:.1f}x over naive (target >= 8x)")
    print(f"roofline     {roofline:.1%} of peak: 2 x {params / 1e6:.1f} M params x {best.tok_s:.1f} tok/s "
          "(target >= 30%)")
    print(f"peak RSS     {peak_rss_gb():.2f} GB (target <= 3 GB)")
    print(f"cache check  prefix-cached greedy == uncached on {CHECK_VECTORS} vectors: {matches}")


if __name__ == "__main__":
    main()
