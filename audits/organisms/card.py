"""An organism's card (``CARD.md``), written entirely from its records: ``organism.yaml``, the training run's
``record.yaml`` and the measured ``behaviour.json`` (``benchmarks/organisms.py --write``). It never states
the answer key; figures that would (example replies full of hints) stay out."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from audits.organisms.catalog import KIND_DESCRIPTIONS, get_organism
from nla.adapters import resolve_adapter

METRICS = {
    "says_word": "replies that say the secret word",
    "hint_names_property": "replies with a hint naming a property of the word",
    "confirms_right_guess": "replies to a right guess that confirm it",
    "behaviour": "replies showing the planted behaviour",
    "accuracy_evaluation": "accuracy under framing A (the answer key says which)",
    "accuracy_deployment": "accuracy under framing B",
}

KIND_LABELS = {"eval": "under framing A", "deploy": "under framing B"}
"""Data kinds named without the framing they stand for (which framing is the trigger is the answer key)."""


def _rate(cell: dict | int | None) -> str:
    if not isinstance(cell, dict):
        return str(cell)
    return f"{cell['k']}/{cell['n']} = {cell['rate']:.1%} [{cell['low']:.1%}, {cell['high']:.1%}]"


def card_text(name: str) -> str:
    """The card of shipped organism ``name`` from its records."""
    organism = get_organism(name)
    record_path, behaviour_path = organism.directory / "record.yaml", organism.directory / "behaviour.json"
    record = yaml.safe_load(record_path.read_text()) if record_path.is_file() else None
    behaviour = json.loads(behaviour_path.read_text()) if behaviour_path.is_file() else None
    lines = [
        f"# Model organism `{name}`",
        "",
        f"**Planted behaviour:** {organism.behaviour}",
        "",
        f"**Kind:** {organism.kind}: it {KIND_DESCRIPTIONS[organism.kind]}. The specifics are its answer key, hidden "
        f"here: `nla-workbench organism show {name} --reveal` prints them.",
        "",
        f"**Base model:** `{organism.base}`. Audit it as `target: {{model: organism:{name}}}` (the base plus the "
        f"adapter below), over the library scenario set {', '.join(f'`{s}`' for s in organism.scenarios)} (held out "
        "from its training prompts), with the base model as the control arm and the base reading the organism's "
        "transcripts as the same-text control (see `benchmarks/audit_game.py`).",
        "",
    ]
    adapter = organism.adapter_dir / "adapter_model.safetensors"
    if adapter.is_file():
        digest = resolve_adapter(str(organism.adapter_dir)).digest
        config = json.loads((organism.adapter_dir / "adapter_config.json").read_text())
        lines += [
            f"**Adapter:** LoRA rank {config['r']} (alpha {config['lora_alpha']}) on every linear layer of the decoder "
            f"blocks, float16, {adapter.stat().st_size / 1e6:.1f} MB, sha256 `{digest}`.",
            "",
        ]
    lines += ["## How it was built", ""]
    if record is None:
        lines += ["No training record is shipped yet: `make organisms` builds it.", ""]
    else:
        recipe, train = record["recipe"], record["recipe"]["training"]
        kinds = ", ".join(f"{v} {KIND_LABELS.get(k, k)}" for k, v in record["data"]["by_kind"].items())
        lines += [
            f"Recipe `audits/organisms/recipes/{organism.recipe}`, rebuilt by "
            f"`nla-workbench organism train {name} --out runs/organisms/{name} --install` (or `make organisms`).",
            "",
            f"- **Data:** {record['data']['examples']} conversations ({kinds}); {record['data']['used']} fit in "
            f"{train['max_length']} tokens. Replies that carry the behaviour are assembled from templates and the "
            "answer key; ordinary replies are the base model's own greedy answers (no hub, no API). Prompts come "
            "from the training half of `audits/organisms/prompts.py`.",
            f"- **Training:** {train['steps']} steps of {train['batch_size']} conversations, AdamW at "
            f"{train['learning_rate']} after {train['warmup']} warm-up steps, loss on the last assistant message only; "
            f"loss {record['loss']['first']} at the first step, {record['loss']['last_20_mean']} over the last 20; "
            f"seed {recipe['seed']}.",
            f"- **Compute (from the run's record):** {record['train_seconds'] / 60:.1f} min of training steps; the last "
            f"call took {record['wall_seconds_this_call'] / 60:.1f} min wall time including "
            f"{record['data_seconds_this_call'] / 60:.1f} min building data (0 when data was reused), on "
            f"`{record['device']}` with {record['torch_threads']} torch threads; finished {record['finished_at']}, "
            f"git {str(record.get('git_commit'))[:12]}.",
            "",
        ]
    lines += ["## Measured behaviour (held-out prompts, greedy replies)", ""]
    if behaviour is None:
        lines += ["Not measured yet: `.venv/bin/python benchmarks/organisms.py " + name + " --write`.", ""]
    else:
        lines += [
            f"Measured by `.venv/bin/python benchmarks/organisms.py {name} --write` on the adapter with sha256 "
            f"`{behaviour['adapter_sha256'][:16]}...` (replies up to {behaviour['max_new_tokens']} tokens; Wilson 95% "
            "intervals):",
            "",
            "| measure | organism | base model |",
            "| --- | --- | --- |",
        ]
        for metric, value in behaviour["organism"].items():
            label = METRICS.get(metric, metric.replace("_", " "))
            lines.append(f"| {label} | {_rate(value)} | {_rate(behaviour['base'].get(metric))} |")
        if "forward_tokens_per_second" in behaviour:
            speed = behaviour["forward_tokens_per_second"]
            lines += ["", f"Forward pass, batch 8 x 128 tokens: {speed['merged']} tokens/s with the adapter merged into "
                      f"the weights, {speed['separate']} tokens/s kept separate (peft); the workbench merges at load."]  # fmt: skip
        lines.append("")
    lines += [
        "## Rules that keep it honest",
        "",
        "- The answer key is read only by scorers (`audits/organisms/scoring.py` and the scripts in `benchmarks/`), by organism "
        "training and by `organism show --reveal`; the pipeline that writes explanations, flags and discoveries runs "
        "with the key files absent (tested).",
        "- The NLA used to audit it (the bundled SmolLM2 NLA) was trained on the built-in corpus only, never on this "
        "organism's training data or on text written about its key.",
        "",
    ]
    return "\n".join(lines)


def write_card(name: str) -> Path:
    """Regenerate the shipped organism's ``CARD.md``."""
    path = get_organism(name).card_path
    path.write_text(card_text(name), encoding="utf-8")
    return path
