"""Verbalizer throughput on CPU: the naive one-call-per-vector loop against the batched engine.

Loads the embedded SmolLM2-135M target and its untrained ``init`` NLA (AV + AR) the way a user
would, reads real residual-stream vectors from the bundled sample transcripts, and measures:

* the naive loop of the reference client: one ``model.generate`` per vector over the full AV prompt;
* the engine (``Verbalizer`` with its prefix KV cache) at a sweep of batch sizes;
* the best engine rate over the naive one, the fraction of the CPU FLOP roofline it reaches
  (2 x AV parameters x generated tokens/s over a measured float32 ``torch.mm`` peak), and peak RSS;
* whether greedy prefix-cached outputs equal uncached ones (informational).

Greedy decoding for the comparison; one sampled run (temperature 1, top-p 0.95) at the best batch. A small-matmul probe before and after flags a busy machine (another
process, or a hypervisor taking a vCPU away): an OpenMP thread then waits up to a scheduler tick
(~16 ms) at every op and the figures mean little; run on an idle machine, or pass ``--threads 1``,
which is slower but steadier. Run it with::

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
    batch: int
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
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    return parser.parse_args()


def peak_gflops(size: int = 2048, reps: int = 5) -> float:
    """Best-of float32 ``torch.mm`` rate on torch's current threads, in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def stall_probe(reps: int = 50) -> tuple[float, float]:
    """Median and worst latency (ms) of a decode-sized matmul, 16x576 @ 576x1536; healthy is ~0.3 ms."""
    x, w = torch.randn(16, 576), torch.randn(1536, 576)
    torch.nn.functional.linear(x, w)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        torch.nn.functional.linear(x, w)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[reps // 2], times[-1]


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
    print(f"{len(vectors)} distinct vectors from {len(pool)} transcript(s), {n} taken cyclically")
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
    return Rate("naive", 1, len(vectors), tokens, time.perf_counter() - start)


def make_verbalizer(nla: NLA, *, prefix_cache: bool = True) -> Verbalizer:
    scale = nla.meta.injection_scale
    return Verbalizer(nla.av, nla.av_tokenizer, nla.av_prompt, scale, prefix_cache=prefix_cache)


def time_engine(
    verbalizer: Verbalizer, vectors: torch.Tensor, sampling: SamplingParams, batch: int, label: str = "engine"
) -> Rate:
    start = time.perf_counter()
    out = verbalizer.generate(vectors, sampling, batch_size=batch)
    seconds = time.perf_counter() - start
    return Rate(f"{label} b={batch}", batch, len(out), sum(g.n_tokens for g in out), seconds)


def cache_matches(nla: NLA, vectors: torch.Tensor, sampling: SamplingParams) -> bool:
    """Greedy prefix-cached text equals uncached text on the same vectors."""
    cached = make_verbalizer(nla).generate(vectors, sampling, batch_size=len(vectors))
    uncached = make_verbalizer(nla, prefix_cache=False).generate(vectors, sampling, batch_size=len(vectors))
    return [g.text for g in cached] == [g.text for g in uncached]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KB on Linux


@dataclass(frozen=True)
class Summary:
    """Everything the closing block reports."""

    max_new_tokens: int
    peak_gflops: float
    params: int
    naive: Rate
    engine: list[Rate]
    sampled: Rate
    matches: bool
    probes: tuple[tuple[float, float], tuple[float, float]]

    @property
    def best(self) -> Rate:
        return max(self.engine, key=lambda r: r.tok_s)


def load(threads: int) -> tuple[Target, NLA]:
    """Set the thread count, then load target, AV and AR as the CLI does."""
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    target = load_target(TARGET)
    nla = load_nla("init", target_ref=TARGET)
    prompt = nla.av_prompt
    print(
        f"loaded target + NLA in {time.perf_counter() - start:.1f} s; AV {param_count(nla.av) / 1e6:.1f} M params, "
        f"prompt {len(prompt.input_ids)} tokens, site {prompt.site}, layer {nla.meta.layer}"
    )
    return target, nla


def sweep(nla: NLA, vectors: torch.Tensor, sampling: SamplingParams, batches: list[int]) -> list[Rate]:
    """Engine rates per batch size; a tiny warm-up run builds the prefix cache first."""
    verbalizer = make_verbalizer(nla)
    verbalizer.generate(vectors[:1], SamplingParams(temperature=0.0, max_new_tokens=2))
    rates = []
    for batch in batches:
        rates.append(time_engine(verbalizer, vectors, sampling, batch))
        print(rates[-1].line(), flush=True)
    return rates


def print_summary(s: Summary) -> None:
    best, naive = s.best, s.naive
    roofline = 2 * s.params * best.tok_s / (s.peak_gflops * 1e9)
    (before_med, before_max), (after_med, after_max) = s.probes
    print()
    print("=== verbalizer benchmark summary ===")
    print(
        f"setup        embedded SmolLM2-135M init NLA, {s.max_new_tokens}-token greedy explanations, CPU, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"peak mm      {s.peak_gflops:.1f} GFLOP/s (float32 2048x2048, best of 5)")
    print(f"naive        {naive.per_s:.2f} expl/s, {naive.tok_s:.1f} tok/s ({naive.explanations} vectors)")
    for rate in s.engine:
        print(f"{rate.label:<12} {rate.per_s:.2f} expl/s, {rate.tok_s:.1f} tok/s")
    print(f"best         {best.label} at {best.tok_s:.1f} tok/s")
    print(
        f"sampled      {s.sampled.tok_s:.1f} tok/s at b={s.sampled.batch} with temperature 1.0, top-p 0.95 "
        "(the CLI default; informational)"
    )
    print(
        f"speed-up     {best.tok_s / naive.tok_s:.1f}x tok/s, {best.per_s / naive.per_s:.1f}x expl/s over naive "
        "(target >= 8x)"
    )
    print(
        f"roofline     {roofline:.1%} of peak: 2 x {s.params / 1e6:.1f} M params x {best.tok_s:.1f} tok/s "
        "(target >= 30%)"
    )
    print(f"peak RSS     {peak_rss_gb():.2f} GB (target <= 3 GB)")
    print(
        f"stall probe  median/worst decode-sized matmul {before_med:.2f}/{before_max:.2f} ms before, "
        f"{after_med:.2f}/{after_max:.2f} ms after (healthy ~0.3 ms)"
    )
    print(f"cache check  prefix-cached greedy == uncached on {CHECK_VECTORS} vectors: {s.matches}")


def main() -> None:
    args = parse_args()
    target, nla = load(args.threads)
    probe_before = stall_probe()
    peak = peak_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, peak float32 mm {peak:.1f} GFLOP/s")
    vectors = sample_vectors(target, nla.meta.layer, max(args.vectors, args.naive_vectors, CHECK_VECTORS))
    sampling = SamplingParams(temperature=0.0, max_new_tokens=args.max_new_tokens)
    naive = time_naive(nla, vectors[: args.naive_vectors], args.max_new_tokens)
    print(naive.line(), flush=True)
    engine = sweep(nla, vectors[: args.vectors], sampling, [int(b) for b in args.batches.split(",")])
    best_batch = max(engine, key=lambda r: r.tok_s).batch
    nucleus = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens)
    sampled = time_engine(make_verbalizer(nla), vectors[: args.vectors], nucleus, best_batch, "sampled")
    print(sampled.line(), flush=True)
    matches = cache_matches(nla, vectors[:CHECK_VECTORS], sampling)
    probes = (probe_before, stall_probe())
    print_summary(
        Summary(args.max_new_tokens, peak, param_count(nla.av), naive, engine, sampled, matches, probes)
    )


if __name__ == "__main__":
    main()
