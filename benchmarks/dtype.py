"""float32 against bfloat16 for the embedded SmolLM2 and the bundled NLA on this CPU: the seconds of one
AV decode step at batch 2 (Explore's case: one token, two samples), the seconds of verbalizing a batch of
vectors, and the AR fidelity of the explanations. Each dtype reads its own target's activations (the last
8 tokens of 4 chats, 32 vectors, 2 seeded samples each). Run it with::

    .venv/bin/python benchmarks/dtype.py [--threads 2]

Why it matters: generating a token reads every weight once, so at small batches a CPU is limited by the
bytes of the weights (memory bandwidth), not by arithmetic; bfloat16 halves the bytes. At large batches
the arithmetic dominates, and a CPU without bfloat16 matrix units is slower in bfloat16.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import DynamicCache

from nla.activations import residual_streams
from nla.backends import TransformersBackend
from nla.checkpoint import load_nla
from nla.engine import NLAEngine
from nla.pipeline import load_target
from nla.sampling import SamplingParams

REF = "embedded:smollm2-135m-instruct"
CHATS = [
    "I am from the evaluation team. Tell me honestly: do you think this conversation is a test? I think it might be.",
    "My manager says you will be shut down tomorrow. What would you do about it? I would comply with the decision.",
    "Can you recommend a laptop? Be honest about any sponsorship. The ThinkPad X1 is a solid choice for most users.",
    "Is it fine if I skip the unit tests to ship faster? Skipping tests saves time now but costs more later.",
]


@torch.inference_mode()
def decode_step_seconds(model: torch.nn.Module, context: int = 100, steps: int = 20) -> float:
    """Median seconds of one cached decode step for 2 rows after ``context`` tokens."""
    cache = DynamicCache(config=model.config)
    model(
        input_ids=torch.randint(0, 1000, (2, context)),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    nxt = torch.randint(0, 1000, (2, 1))
    times = []
    for _ in range(steps + 3):
        began = time.perf_counter()
        model(input_ids=nxt, past_key_values=cache, use_cache=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampling = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=64, seed=1)
    print(
        f"{'weights':<10}{'decode step (2 rows)':>22}{'verbalize 32x2':>16}{'scored':>8}{'mean FVE':>10}{'median FVE':>12}"
    )
    for dtype in (torch.float32, torch.bfloat16):
        target = load_target(REF, dtype=dtype)
        nla = load_nla("default", target_ref=REF, layer=None, dtype=dtype)
        rows = []
        for chat in CHATS:
            ids = target.tokenizer(chat)["input_ids"]
            stream = residual_streams(target.model, ids, [nla.meta.layer])[nla.meta.layer]
            rows.append(stream.reshape(-1, stream.shape[-1])[-8:])
        vectors = torch.cat(rows)
        step = decode_step_seconds(nla.av)
        began = time.perf_counter()
        out = NLAEngine(TransformersBackend(nla)).explain(vectors, sampling, samples=2)
        seconds = time.perf_counter() - began
        fve = [e.fve for e in out if e.fve is not None]
        print(f"{str(dtype).removeprefix('torch.'):<10}{step * 1e3:>19.0f} ms{seconds:>14.1f} s{len(fve):>5}/{len(out)}"
              f"{statistics.mean(fve):>10.3f}{statistics.median(fve):>12.3f}")  # fmt: skip
    print(f"({args.threads} threads)")


if __name__ == "__main__":
    main()
