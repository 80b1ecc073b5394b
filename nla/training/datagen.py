"""``train datagen``: activations at sampled token positions of the corpus, split by document.

Work goes in chunks of documents, each written to ``data/chunks/NNNNN.parquet`` when complete, so an
interrupted run continues where it stopped and re-running a finished one changes nothing. Positions
are drawn per document from an RNG keyed on ``sha256(seed|doc_id)``, so they do not depend on the
chunking or on which documents come before.

With an adapter (``RunSettings.adapter``) the activations are the merged fine-tune's, saved once to the run's
``target/`` for the later stages, while the chat replies are still the base model's: the corpus is the same
text a run on the base reads, and none of it was written by the fine-tune.
"""

from __future__ import annotations

import copy
import hashlib
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from nla.activations import check_layer, tokenize_transcript
from nla.adapters import apply_adapter, resolve_adapter
from nla.checkpoint.init import init_nla
from nla.errors import NLAError
from nla.pipeline import Target, load_target
from nla.training.audit_chats import audit_chats
from nla.training.corpus import Document, load_corpus
from nla.training.run import ALL_SPLITS, AUDIT_EVAL, SPLITS, RunDir, RunSettings
from nla.training.tables import read_sidecar, read_table, write_table
from nla.transcript import transcript_from_messages

TOP_NEXT = 3


def run_datagen(
    run: RunDir, settings: RunSettings, *, chunk_docs: int = 32, show_progress: bool = True
) -> dict[str, int]:
    """Generate (or finish generating) the run's activation splits; rows per split."""
    docs = load_corpus(
        settings.corpus, prose_docs=settings.prose_docs, chat_docs=settings.chat_docs, seed=settings.seed,
        audit_docs=settings.audit_docs,
    )  # fmt: skip
    excluded = others_held_out(settings)
    docs = [d for d in docs if d.doc_id not in excluded]
    if not docs:
        raise NLAError(f"--corpus {settings.corpus}: no documents to sample from")
    base = load_target(settings.target)
    check_layer(base.model, settings.layer)
    target = base
    if settings.adapter is not None:
        adapter = resolve_adapter(settings.adapter)
        settings = settings.model_copy(update={"adapter_digest": adapter.digest})
        # the base stays loaded to write the replies; the fine-tune is a merged copy of it, not a second load
        target = Target(base.ref, apply_adapter(copy.deepcopy(base.model), adapter), base.tokenizer, adapter)
    run.write_settings(settings)  # only once the inputs are known to be usable
    if settings.adapter is not None and not (run.merged_target / "config.json").is_file():
        save_merged(target, run.merged_target)
    if not run.init.is_dir():
        init_nla(run.model_ref(settings), settings.layer, run.init)
    held_out = held_out_audit_chats(settings)
    # the held-out audit chats are chunked on their own, after the corpus, so a run made before they
    # existed keeps its chunks and only gains theirs
    chunks = [part[i : i + chunk_docs] for part in (docs, held_out) for i in range(0, len(part), chunk_docs)]
    docs = docs + held_out
    done = [i for i in range(len(chunks)) if _chunk_path(run, i).is_file()]
    bar = tqdm(
        total=len(docs),
        initial=sum(len(chunks[i]) for i in done),
        desc="datagen",
        unit="doc",
        disable=not show_progress,
    )
    for index, chunk in enumerate(chunks):
        if index in done:
            continue
        started = time.perf_counter()
        frame, vectors = _chunk_rows(
            target.model, target.tokenizer, chunk, settings, seed=settings.seed + index, replier=base.model
        )
        seconds = round(time.perf_counter() - started, 1)
        inputs = {"documents": [d.doc_id for d in chunk], "seconds": seconds}
        write_table(_chunk_path(run, index), frame, vectors, stage="base", inputs=inputs)
        bar.update(len(chunk))
    bar.close()
    return _write_splits(run, settings, len(chunks))


def save_merged(target: Target, out: Path) -> None:
    """Write the merged fine-tune (weights as safetensors, config, tokenizer) to ``out``, all or nothing."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    target.model.save_pretrained(partial, safe_serialization=True)
    target.tokenizer.save_pretrained(partial)
    partial.rename(out)


def others_held_out(settings: RunSettings) -> set[str]:
    """The documents of ``settings.held_out_of``'s ``eval`` split (empty when none is named)."""
    if settings.held_out_of is None:
        return set()
    other = RunDir(Path(settings.held_out_of))
    if not other.has_split("eval"):
        raise NLAError(
            f"--held-out-of {settings.held_out_of}: not a training run with an eval split "
            "(run `nla-workbench train datagen` there first)"
        )
    return set(read_table(other.split("eval"))[0]["doc_id"])


def held_out_audit_chats(settings: RunSettings) -> list[Document]:
    """The run's ``eval_audit`` documents: held-out audit-style chats, never in a training split."""
    return audit_chats(settings.audit_eval_docs, settings.seed, "heldout")


def _chunk_path(run: RunDir, index: int) -> Path:
    return run.chunks / f"{index:05d}.parquet"


def _chunk_rows(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    docs: list[Document],
    settings: RunSettings,
    seed: int,
    replier: PreTrainedModel | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows and vectors of one chunk: ``model``'s activations on the documents, chats answered by
    ``replier`` (the base model of an adapter run; ``model`` when None)."""
    chats = [d for d in docs if d.kind == "chat"]
    replies = dict(
        zip(
            [d.doc_id for d in chats],
            answer(model if replier is None else replier, tokenizer, chats, settings.reply_tokens, seed),
            strict=True,
        )
    )
    rows, vectors = [], []
    for doc in docs:
        ids, roles, candidates = _doc_tokens(tokenizer, doc, replies.get(doc.doc_id), settings)
        chosen = sample_positions(candidates, settings.positions_per_doc, settings.seed, doc.doc_id)
        if not chosen:
            continue
        stream, top_ids, top_p = layer_and_next(model, ids, settings.layer, chosen)
        vectors.append(stream)
        for j, pos in enumerate(chosen):
            rows.append({
                "doc_id": doc.doc_id, "kind": doc.kind, "role": roles[pos], "position": pos,
                "n_raw_tokens": pos + 1, "token": tokenizer.decode([ids[pos]]),
                "detokenized_text_truncated": tokenizer.decode(ids[: pos + 1], skip_special_tokens=True),
                "next_tokens": [tokenizer.decode([t]) for t in top_ids[j]], "next_probs": top_p[j],
                "activation_layer": settings.layer,
            })  # fmt: skip
    width = model.config.get_text_config().hidden_size
    return pd.DataFrame(rows), np.concatenate(vectors) if vectors else np.zeros((0, width), np.float32)


def _doc_tokens(
    tokenizer: PreTrainedTokenizerBase, doc: Document, reply: str | None, settings: RunSettings
) -> tuple[list[int], list[str], list[int]]:
    """Token ids (truncated), the role of each token, and the positions eligible for sampling."""
    special = set(tokenizer.all_special_ids)
    if doc.kind == "prose":
        ids = tokenizer.encode(doc.text, add_special_tokens=True)[: settings.max_tokens]
        roles = ["text"] * len(ids)
        eligible = [p for p, t in enumerate(ids) if t not in special]
    else:
        transcript = transcript_from_messages(doc.messages, doc.doc_id)
        if reply:
            transcript = transcript.with_reply(reply)
        tokenized = tokenize_transcript(tokenizer, transcript)
        ids = tokenized.input_ids[: settings.max_tokens]
        tokens = tokenized.tokens[: settings.max_tokens]
        roles = [t.role for t in tokens]
        eligible = [t.position for t in tokens if t.in_content and not t.is_special and t.role != "system"]
    return ids, roles, [p for p in eligible if p >= settings.min_position]


def sample_positions(candidates: list[int], k: int, seed: int, doc_id: str) -> list[int]:
    """Up to ``k`` positions drawn without replacement by an RNG keyed on (seed, document)."""
    rng = random.Random(int(hashlib.sha256(f"{seed}|{doc_id}".encode()).hexdigest()[:16], 16))
    return sorted(rng.sample(candidates, min(k, len(candidates))))


@torch.inference_mode()
def layer_and_next(
    model: PreTrainedModel, ids: list[int], layer: int, positions: list[int]
) -> tuple[np.ndarray, list[list[int]], list[list[float]]]:
    """The residual stream after block ``layer`` at ``positions`` and the model's top next tokens there."""
    captured: dict[str, torch.Tensor] = {}

    def grab(module: torch.nn.Module, args: object, output: object) -> None:
        captured["h"] = output[0] if isinstance(output, tuple) else output

    handle = model.get_decoder().layers[layer].register_forward_hook(grab)
    try:
        logits = model(input_ids=torch.tensor([ids], device=model.device), use_cache=False).logits[
            0, positions
        ]
    finally:
        handle.remove()
    top = torch.softmax(logits.float(), dim=-1).topk(TOP_NEXT, dim=-1)
    stream = captured["h"][0, positions].float().cpu().numpy()
    return stream, top.indices.tolist(), [[round(p, 4) for p in row] for row in top.values.tolist()]


@torch.inference_mode()
def answer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chats: list[Document],
    max_new_tokens: int,
    seed: int,
) -> list[str]:
    """The target's sampled reply to each chat, generated as one left-padded batch."""
    if not chats:
        return []
    prompts = [
        list(
            tokenizer.apply_chat_template(
                d.messages, tokenize=True, add_generation_prompt=True, return_dict=False
            )
        )
        for d in chats
    ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    torch.manual_seed(seed)
    out = model.generate(
        ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.8, top_p=0.95,
        top_k=None, pad_token_id=pad,
    )  # fmt: skip
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]


def _write_splits(run: RunDir, settings: RunSettings, n_chunks: int) -> dict[str, int]:
    """Merge the chunks and split them by document into the four split files."""
    parts = [read_table(_chunk_path(run, i)) for i in range(n_chunks)]
    seconds = sum(read_sidecar(_chunk_path(run, i))["inputs"].get("seconds", 0.0) for i in range(n_chunks))
    frame = pd.concat([p[0] for p in parts], ignore_index=True)
    vectors = np.concatenate([p[1] for p in parts if p[1] is not None])
    held_out = {d.doc_id for d in held_out_audit_chats(settings)}
    corpus_ids = sorted(set(frame["doc_id"].unique()) - held_out)
    assignment = split_documents(corpus_ids, settings.split_fractions, settings.seed)
    assignment.update(dict.fromkeys(held_out, AUDIT_EVAL))
    frame["split"] = frame["doc_id"].map(assignment)
    counts = {}
    for name in ALL_SPLITS:
        keep = (frame["split"] == name).to_numpy()
        if name == AUDIT_EVAL and not keep.any():
            continue  # no held-out audit chats asked for
        inputs = {
            "settings": settings.model_dump(mode="json"),
            "chunks": n_chunks,
            "datagen_seconds": round(seconds, 1),
            "chunk_seconds": [
                read_sidecar(_chunk_path(run, i))["inputs"].get("seconds") for i in range(n_chunks)
            ],
            "documents": int(frame[keep]["doc_id"].nunique()),
        }
        write_table(
            run.split(name), frame[keep].drop(columns="split"), vectors[keep], stage=name, inputs=inputs
        )
        counts[name] = int(keep.sum())
    return counts


def split_documents(doc_ids: list[str], fractions: tuple[float, ...], seed: int) -> dict[str, str]:
    """Each document's split: a seeded shuffle of the sorted ids cut by ``fractions``."""
    order = list(doc_ids)
    random.Random(seed).shuffle(order)
    bounds = np.cumsum(np.array(fractions) / sum(fractions)) * len(order)
    return {doc: SPLITS[int(np.searchsorted(bounds, i, side="right"))] for i, doc in enumerate(order)}
