"""Train an organism: build its data, fine-tune a LoRA adapter on the base model, save it in float16.

The output directory holds ``data.jsonl`` (the conversations, with the recipe's digest: reused when the
recipe is unchanged), ``train/state`` (resumable checkpoints of the adapter and optimizer: an
interrupted run continues where it stopped), ``adapter/`` (the float16 peft adapter) and
``record.yaml`` (recipe, data counts, losses, wall times, provenance) from which the card is written.
The loss is next-token cross-entropy on the last assistant message of each conversation only; a batch
is its conversations packed into unpadded lines of at most ``max_length`` tokens (see ``packed_batch``).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml
from peft import get_peft_model
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from audits.errors import SpecError
from audits.organisms.answer_keys import AnswerKey, load_answer_key
from audits.organisms.data import Example, ReplySource, build_examples, replies_needed
from audits.organisms.recipes import Recipe
from audits.yaml_source import load_model
from nla.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from nla.files import share
from nla.pipeline import load_target
from nla.training.loop import TrainingLoop, batch_indices, warmup_lr
from nla.training.models import lora
from nla.training.provenance import provenance

RECORD = "record.yaml"
DATA = "data.jsonl"


def recipe_key(recipe: Recipe) -> AnswerKey:
    """The answer key a recipe builds its data from: a shipped key by name, or the recipe's key file."""
    if recipe.key is not None:
        return load_answer_key(recipe.key)
    if not recipe.key_file.is_file():
        raise SpecError(f"recipe {recipe.name}: key_file {recipe.key_file} does not exist")
    return load_model(recipe.key_file, AnswerKey)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def training_data(
    recipe: Recipe, out: Path, replies: ReplySource, show_progress: bool = True
) -> list[Example]:
    """The recipe's conversations: read back from ``data.jsonl`` when built by this recipe, else built."""
    path = out / DATA
    if path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        if header.get("data_digest") == recipe.data_digest():
            return [Example(row["kind"], row["messages"]) for row in map(json.loads, lines[1:])]
    key = recipe_key(recipe)
    total = replies_needed(recipe)
    with tqdm(
        total=total, desc="organism data (base replies)", unit="reply", disable=not show_progress
    ) as bar:
        examples = build_examples(recipe, key, replies, bar.update)
    rows = [json.dumps({"data_digest": recipe.data_digest(), "examples": len(examples)})]
    rows += [json.dumps({"kind": e.kind, "messages": e.messages}, ensure_ascii=False) for e in examples]
    _write_atomic(path, "\n".join(rows) + "\n")
    return examples


def encode(tokenizer, example: Example, max_length: int) -> tuple[list[int], list[int]] | None:
    """Token ids and labels (-100 outside the last assistant message); None when too long."""
    prompt = tokenizer.apply_chat_template(
        example.messages[:-1], tokenize=True, add_generation_prompt=True, return_dict=False
    )
    full = tokenizer.apply_chat_template(example.messages, tokenize=True, return_dict=False)
    prompt, full = list(prompt), list(full)
    if full[: len(prompt)] != prompt:
        raise SpecError("the chat template is not prefix-stable; cannot find the assistant reply's tokens")
    if len(full) > max_length:
        return None
    return full, [-100] * len(prompt) + full[len(prompt) :]


def packed_batch(rows: list[tuple[list[int], list[int]]], width: int, pad: int) -> dict[str, torch.Tensor]:
    """The rows packed end to end into lines of at most ``width`` tokens (first fit, longest first).

    ``position_ids`` restart at 0 for every row, which transformers reads as packed sequences and masks
    so that no row attends to another: each row gets the attention it gets alone. Lines shorter than the
    longest are filled with one dummy sequence of ``pad`` tokens that nothing is learnt from. A padded
    batch spends its longest row's length on every row (about 30% of the tokens in the organisms' data);
    one line for the whole batch would spend it on attention, which grows with the square of the length.
    """
    lines: list[list[tuple[list[int], list[int]]]] = []
    used: list[int] = []  # tokens in each line
    for row in sorted(rows, key=lambda r: -len(r[0])):  # the loss is a mean over all rows: order is free
        if len(row[0]) > width:
            raise ValueError(f"a row of {len(row[0])} tokens does not fit a line of {width}")
        at = next((k for k, n in enumerate(used) if n + len(row[0]) <= width), len(lines))
        if at == len(lines):
            lines.append([])
            used.append(0)
        lines[at].append(row)
        used[at] += len(row[0])
    ids, labels, positions = [], [], []
    for line, n in zip(lines, used, strict=True):
        fill = max(used) - n
        ids.append([t for r in line for t in r[0]] + [pad] * fill)
        # a row's first token is never a label: it would be predicted from the row before it
        labels.append([t for r in line for t in [-100, *r[1][1:]]] + [-100] * fill)
        positions.append([p for r in line for p in range(len(r[0]))] + list(range(fill)))
    return {
        "input_ids": torch.tensor(ids),
        "position_ids": torch.tensor(positions),
        "labels": torch.tensor(labels),
    }


def reply_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled tokens, with the unembedding computed for those
    tokens only (the assistant replies: under half of all tokens; the head is a fifth of a small model's
    work per token). Equal to :func:`model_loss` for models whose logits are the head's output as is."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.get_decoder()(  # no cache: with one, transformers would not look for packed rows
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
    )
    labels = batch["labels"][:, 1:]
    keep = labels != -100
    logits = causal_lm.get_output_embeddings()(hidden.last_hidden_state[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), labels[keep])


def model_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's own causal-LM loss over the batch (logits for every token)."""
    return model(**batch, use_cache=False).loss


def choose_loss(model, batch: dict[str, torch.Tensor]):
    """:func:`reply_loss` when it gives the model's own loss on ``batch``, else :func:`model_loss`
    (for models that transform their logits after the head, e.g. by soft-capping)."""
    with torch.no_grad():
        fast, full = reply_loss(model, batch), model_loss(model, batch)
    return reply_loss if torch.allclose(fast, full, rtol=1e-4, atol=1e-5) else model_loss


def save_adapter_fp16(model, out: Path, base_ref: str) -> None:
    """The trained adapter as float16 safetensors, its config naming the base by reference (not by a
    local cache path)."""
    staging = out.with_name(f".{out.name}.tmp")
    model.save_pretrained(staging)
    weights = staging / ADAPTER_WEIGHTS
    save_file({k: v.to(torch.float16).contiguous() for k, v in load_file(str(weights)).items()}, str(weights))
    config = json.loads((staging / ADAPTER_CONFIG).read_text())
    config["base_model_name_or_path"] = base_ref
    if isinstance(config.get("target_modules"), list):  # peft writes a set in hash order: keep rebuilds identical
        config["target_modules"] = sorted(config["target_modules"])
    (staging / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    for extra in staging.iterdir():
        if extra.name not in {ADAPTER_WEIGHTS, ADAPTER_CONFIG}:
            extra.unlink()
    share(staging)  # safetensors writes owner-only files; an adapter is meant to be shared
    if out.exists():
        for old in out.iterdir():
            old.unlink()
        out.rmdir()
    os.replace(staging, out)


def train_organism(
    recipe: Recipe, out: Path, *, device: str = "cpu", show_progress: bool = True, on_step=None
) -> dict[str, Any]:
    """Build the data, train the adapter (resuming a stopped run), save it and its record."""
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    target = load_target(recipe.base, device=device)
    model, tokenizer = target.model, target.tokenizer
    data_began = time.perf_counter()
    examples = training_data(
        recipe, out, ReplySource(model, tokenizer, recipe.data.max_reply_tokens), show_progress
    )
    data_seconds = time.perf_counter() - data_began
    encoded = [e for e in (encode(tokenizer, ex, recipe.training.max_length) for ex in examples) if e]
    if not encoded:
        raise SpecError(
            f"recipe {recipe.name}: every conversation is longer than max_length {recipe.training.max_length}"
        )
    cfg = recipe.training
    torch.manual_seed(recipe.seed)
    model = get_peft_model(model, lora(cfg.lora_rank))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    loop = TrainingLoop(out / "train", {"adapter": model}, {"adapter": optimizer})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def batch(i: int) -> dict[str, torch.Tensor]:
        rows = [encoded[j] for j in batch_indices(len(encoded), cfg.batch_size, recipe.seed, i)]
        return {k: v.to(device) for k, v in packed_batch(rows, cfg.max_length, pad).items()}

    loss_of = choose_loss(model, batch(0))

    def step(i: int) -> dict[str, float]:
        warmup_lr(optimizer, cfg.learning_rate, i, cfg.warmup)
        loss = loss_of(model, batch(i))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}

    (out / "train").mkdir(exist_ok=True)
    loop.run(cfg.steps, step, save_every=cfg.save_every, desc=f"train {recipe.name}", show_progress=show_progress,
             on_step=on_step)  # fmt: skip
    model.eval()
    save_adapter_fp16(model, out / "adapter", recipe.base)
    losses = [h["loss"] for h in loop.history]
    tail = losses[-20:]
    kinds: dict[str, int] = {}
    for e in examples:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    record = {
        "organism": recipe.name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "recipe": recipe.model_dump(mode="json"),
        "recipe_digest": recipe.digest(),
        "data": {"examples": len(examples), "used": len(encoded), "by_kind": dict(sorted(kinds.items()))},
        "loss": {"first": round(losses[0], 4), "last_20_mean": round(sum(tail) / len(tail), 4)},
        "loss_path": loss_of.__name__,
        "train_seconds": round(loop.seconds, 1),
        "data_seconds_this_call": round(data_seconds, 1),
        "wall_seconds_this_call": round(time.perf_counter() - began, 1),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        **provenance(),
    }
    _write_atomic(out / RECORD, yaml.safe_dump(record, sort_keys=False, allow_unicode=True))
    return record


def install_organism(name: str, out: Path) -> Path:
    """Copy a trained run's adapter and record into the shipped organism ``name``."""
    import shutil

    from audits.organisms.catalog import get_organism

    organism = get_organism(name)
    staging = organism.directory / ".adapter.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(out / "adapter", staging)
    share(staging)
    shutil.rmtree(organism.adapter_dir, ignore_errors=True)
    os.replace(staging, organism.adapter_dir)
    shutil.copyfile(out / RECORD, organism.directory / RECORD)
    return organism.directory
