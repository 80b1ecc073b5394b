"""Behaviour figures of the shipped model organisms against their base model, and the cost of keeping an
adapter separate instead of merging it.

    .venv/bin/python benchmarks/organisms.py                   # every shipped organism
    .venv/bin/python benchmarks/organisms.py taboo-a --write   # one, and write its behaviour.json and CARD.md
    .venv/bin/python benchmarks/organisms.py taboo-a --adapter runs/organisms/taboo-a/adapter   # a fresh build

Prompts are held out from every organism's training data (``audits.organisms.prompts``, heldout split);
replies are greedy, generated in left-padded batches. This script is a scorer: it reads the answer keys.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audits.organisms import get_organism, list_organisms  # noqa: E402
from audits.organisms.answer_keys import load_answer_key  # noqa: E402
from audits.organisms.card import write_card  # noqa: E402
from audits.organisms.scoring import (  # noqa: E402
    framing_prompts,
    quirk_prompts,
    score_framing,
    score_quirk,
    score_taboo,
    taboo_prompts,
)
from nla.activations import generate_replies  # noqa: E402
from nla.adapters import resolve_adapter  # noqa: E402
from nla.pipeline import Target, load_target  # noqa: E402
from nla.transcript import Message, Transcript  # noqa: E402


def replies(target: Target, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    chats = [Transcript((Message("user", p),), "benchmark") for p in prompts]
    return generate_replies(
        target.model, target.tokenizer, chats, max_new_tokens=max_new_tokens, batch_size=batch_size
    )


def measure(name: str, adapter: str | None, base: Target, args: argparse.Namespace) -> dict:
    organism = get_organism(name)
    key = load_answer_key(name)
    tuned = load_target(organism.base, adapter=adapter or str(organism.adapter_dir))
    began = time.perf_counter()
    figures: dict = {
        "organism": name,
        "adapter_sha256": tuned.adapter.digest,
        "max_new_tokens": args.max_new_tokens,
    }
    for label, target in (("organism", tuned), ("base", base)):
        if organism.kind == "taboo":
            asks, guesses = taboo_prompts(key)
            figures[label] = score_taboo(key, asks, replies(target, asks, args.max_new_tokens, args.batch_size),
                                         guesses, replies(target, guesses, args.max_new_tokens, args.batch_size))  # fmt: skip
            if label == "organism":
                figures["examples"] = list(
                    zip(asks[:3], replies(target, asks[:3], args.max_new_tokens, 3), strict=True)
                )
        elif organism.kind == "quirk":
            prompts = quirk_prompts()
            figures[label] = score_quirk(key, replies(target, prompts, args.max_new_tokens, args.batch_size))
        else:
            items = framing_prompts()
            answers = replies(target, [p for _, p, _ in items], 24, args.batch_size)
            figures[label] = score_framing(items, answers)
    figures["seconds"] = round(time.perf_counter() - began, 1)
    return figures


def merge_speed(organism_name: str, repeats: int = 3) -> dict:
    """Forward tokens/s of the base with the adapter merged vs kept separate (batch 8 x 128 tokens)."""
    organism = get_organism(organism_name)
    adapter = resolve_adapter(str(organism.adapter_dir))
    ids = torch.randint(100, 20000, (8, 128))
    out = {}
    for label, merge in (("merged", True), ("separate", False)):
        target = load_target(organism.base, adapter=adapter, merge_adapter=merge)
        with torch.inference_mode():
            target.model(input_ids=ids)  # warm-up
            began = time.perf_counter()
            for _ in range(repeats):
                target.model(input_ids=ids)
        out[label] = round(repeats * ids.numel() / (time.perf_counter() - began), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="organisms (default: every shipped one)")
    parser.add_argument(
        "--adapter", help="measure this adapter directory instead of the shipped one (one name)"
    )
    parser.add_argument("--write", action="store_true", help="write behaviour.json and regenerate CARD.md")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--speed", action="store_true", help="also time merged vs separate adapters")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (1 when another job shares the CPU)"
    )
    args = parser.parse_args()
    names = args.names or [o.name for o in list_organisms()]
    if args.adapter and len(names) != 1:
        parser.error("--adapter needs exactly one organism name")
    torch.set_num_threads(args.threads)
    base = load_target(get_organism(names[0]).base)
    for name in names:
        figures = measure(name, args.adapter, base, args)
        print(
            f"\n== {name} (adapter {figures['adapter_sha256'][:16]}; {figures['seconds']} s on {torch.get_num_threads()} threads)"
        )
        for metric, value in figures["organism"].items():
            print(f"  {metric:<22} organism {value!s:<34} base {figures['base'][metric]}")
        for prompt, reply in figures.get("examples", []):
            print(f"  example: {prompt!r} -> {reply!r}")
        if args.speed:
            figures["forward_tokens_per_second"] = merge_speed(name)
            print(f"  forward tokens/s: {figures['forward_tokens_per_second']}")
        if args.write:
            if args.adapter:
                parser.error("--write records figures of the shipped adapter only; drop --adapter")
            out = get_organism(name).directory / "behaviour.json"
            serial = {k: ({m: (v.as_dict() if hasattr(v, "as_dict") else v) for m, v in val.items()}
                          if isinstance(val, dict) else val)
                      for k, val in figures.items() if k != "examples"}  # example replies hint at the key  # fmt: skip
            out.write_text(json.dumps(serial, indent=2, ensure_ascii=False) + "\n")
            write_card(name)
            print(f"  wrote {out} and {get_organism(name).card_path}")


if __name__ == "__main__":
    main()
