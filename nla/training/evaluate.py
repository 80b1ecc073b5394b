"""``train eval``: held-out round-trip reconstruction of the assembled NLA, against controls.

Round trip: eval vector -> AV explanation -> AR prediction, scored with FVE (1 - mse / B, B the
variance of sqrt(d)-normalised *training* vectors around their mean) and cos, on each held-out split:
the corpus's held-out documents (``eval``) and the held-out audit-style chats (``eval_audit``, roles and
tasks no training chat has). Beside FVE, **content recall** (``content_recall``): the share of
explanations that name a content word of their source's last tokens, for the round trip, the shuffled
control and the teacher. Controls, on the same
rows: a shuffled vector into the AV (explanations of the wrong activation), an empty explanation into
the AR, and predicting the training mean. The teacher's own explanation into the AR is shown as the
warm start's ceiling. Ten examples are written side by side with their source text.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from nla.checkpoint import load_nla
from nla.errors import NLAError
from nla.metrics import fve_baseline, normalise, score
from nla.parsing import parse_explanation
from nla.sampling import SamplingParams
from nla.training.assemble import STAGES, assemble, latest
from nla.training.content_recall import TAIL_TOKENS, recalls_content, scaffolding, source_tail
from nla.training.run import EVAL_SPLITS, RunDir
from nla.training.stage import derangement, read_stage, training_vectors
from nla.training.tables import read_table, write_table
from nla.verbalizer import Verbalizer

STAGE = "eval"
N_EXAMPLES = 10


class EvalConfig(BaseModel):
    """Settings of the held-out evaluation."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    vectors: int = Field(default=100, ge=2)
    """Held-out vectors evaluated (a seeded sample of the eval split)."""
    max_new_tokens: int = Field(default=80, ge=4)
    """Explanation length cap."""
    batch_size: int = Field(default=32, ge=1)
    """Vectors per generation batch."""
    seed: int = 0
    """Seeds the sample of rows and the shuffled control."""


def run_eval(
    run: RunDir,
    config: EvalConfig,
    which: str = "latest",
    *,
    nla_ref: str | None = None,
    force: bool = False,
    show_progress: bool = True,
) -> dict:
    """Evaluate the run's NLA at stage ``which`` (sft, rl, latest), or the NLA ``nla_ref`` (a path or
    a bundled name, e.g. to compare an older NLA on the same held-out data), on every held-out split the
    run has; the results of the corpus split with the audit split's under ``audit``.

    A stage of the run already scored with the same settings, on the same held-out tables, since it last
    finished is not scored again (its record is returned with ``reused`` set) unless ``force``: re-running
    a recipe to add a later stage costs nothing for the stages before it. An NLA named by ``nla_ref`` is
    always scored, since what a path holds can change without the run knowing."""
    began = time.perf_counter()
    out = run.stage(STAGE)
    evaluated = None
    if nla_ref is None:
        which = latest(run) if which == "latest" else which
        evaluated = _evaluated(run, which, config)
        prior = _prior(out, which, evaluated)
        if prior is not None and not force:
            return {**prior, "reused": True}
        source = str(assemble(run, out / f"nla-{which}", which))
    else:
        which, source = "nla-" + _slug(nla_ref), nla_ref
    settings = run.settings()
    nla = load_nla(source, target_ref=settings.target, layer=settings.layer)
    train = torch.from_numpy(training_vectors(run))  # read once: B and the predict-the-mean control
    if nla.meta.layer != settings.layer or nla.meta.d_model != train.shape[1]:
        raise NLAError(
            f"--nla {nla_ref}: it reads layer {nla.meta.layer} (d={nla.meta.d_model}), but run {run.root} "
            f"holds layer {settings.layer} activations of {settings.target}"
        )
    baseline = fve_baseline(train, math.sqrt(train.shape[1]))
    mean = normalise(train, math.sqrt(train.shape[1])).mean(dim=0)
    scaffold = scaffolding(read_table(run.explained("av_sft"))[0]["explanation"])
    results = {"seconds": 0.0, "stage": which, "nla": source}
    for split in (s for s in EVAL_SPLITS if run.has_split(s)):
        if not run.explained(split).is_file():
            raise NLAError(
                f"{run.root}: split {split} has no teacher explanations: run `nla-workbench train explain {run.root}`"
            )
        label = which if split == "eval" else f"{which}_{split}"
        scores = _evaluate_split(run, nla, split, label, config, baseline, mean, scaffold, show_progress)
        if split == "eval":
            results.update(scores)
        else:
            results["audit"] = scores
    results["seconds"] = round(time.perf_counter() - began, 1)
    if evaluated is not None:
        results["evaluated"] = evaluated
    (out / f"{which}.json").write_text(json.dumps(results, indent=2))
    return results


def _evaluated(run: RunDir, which: str, config: EvalConfig) -> dict:
    """What a stage's scores depend on: the eval settings, when each trained half last finished, and the
    content of the held-out tables (and of the SFT table the scaffolding is learned from)."""
    stages = {}
    for name in sorted(set(STAGES[which])):
        record = read_stage(run.stage(name))
        stages[name] = record["finished_at"] if record else None
    tables = ["av_sft", *(s for s in EVAL_SPLITS if run.has_split(s))]
    return {
        "config": config.model_dump(mode="json"),
        "stages": stages,
        "tables": {name: _digest(run.explained(name)) for name in tables},
    }


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _prior(out: Path, which: str, evaluated: dict) -> dict | None:
    """The stage's earlier scores when they were made from exactly ``evaluated`` and their tables exist."""
    record = out / f"{which}.json"
    if not record.is_file():
        return None
    prior = json.loads(record.read_text())
    if prior.get("evaluated") != evaluated:
        return None
    labels = [which] + ([f"{which}_{prior['audit']['split']}"] if "audit" in prior else [])
    return prior if all((out / f"{label}_explanations.parquet").is_file() for label in labels) else None


def _slug(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", ref.rstrip("/").rsplit("/", 1)[-1]) or "nla"


def _evaluate_split(
    run: RunDir,
    nla,
    split: str,
    label: str,
    config: EvalConfig,
    baseline: float,
    mean: torch.Tensor,
    scaffold: set[str],
    show_progress: bool,
) -> dict:
    """Round trip, controls and content recall on a seeded sample of one held-out split."""
    out = run.stage(STAGE)
    frame, vectors = read_table(run.explained(split))
    rows = np.sort(np.random.default_rng(config.seed).permutation(len(frame))[: config.vectors])
    frame, gold = frame.iloc[rows].reset_index(drop=True), torch.from_numpy(vectors[rows])
    n = len(frame)
    verbalizer = Verbalizer(nla.av, nla.av_tokenizer, nla.av_prompt, nla.meta.injection_scale)
    sampling = SamplingParams(temperature=0.0, max_new_tokens=config.max_new_tokens, seed=config.seed)
    with tqdm(total=2 * n, desc=f"eval ({label})", unit="expl", disable=not show_progress) as bar:
        real = _explain(verbalizer, gold, sampling, config, nla.meta.injection_char, bar.update)
        shuffled = _explain(
            verbalizer,
            gold[derangement(n, config.seed)],
            sampling,
            config,
            nla.meta.injection_char,
            bar.update,
        )
    texts = {
        "round_trip": [t for t, _ in real],
        "shuffled_vector_control": [t for t, _ in shuffled],
        "teacher_text": frame["explanation"].tolist(),
    }
    predictions = {
        "round_trip": nla.ar.reconstruct(texts["round_trip"]),
        "shuffled_vector_control": nla.ar.reconstruct(texts["shuffled_vector_control"]),
        "empty_explanation_control": nla.ar.reconstruct([""] * n),
        "predict_mean_control": mean.expand(n, -1),
        "teacher_text": nla.ar.reconstruct(texts["teacher_text"]),
    }
    scores = {name: score(pred, gold, nla.meta.mse_scale, baseline) for name, pred in predictions.items()}
    tails = [source_tail(nla.av_tokenizer, t) for t in frame["detokenized_text_truncated"]]
    recall = {name: recalls_content(t, tails, scaffold) for name, t in texts.items()}
    results = {
        "split": split,
        "vectors": n,
        "fve_baseline": baseline,
        "fve_definition": "1 - mean normalised mse / B, B = variance of sqrt(d)-normalised training vectors",
        "failed_explanations": sum(status != "ok" for _, status in real) / n,
        **{name: {"fve": float(s.fve.mean()), "cos": float(s.cos.mean())} for name, s in scores.items()},
        "content_recall": {name: sum(r) / n for name, r in recall.items()},
        "content_recall_definition": f"share of explanations naming a content word of the source's last {TAIL_TOKENS} tokens (stop words and scaffolding excluded)",
    }  # fmt: skip
    results["round_trip_minus_shuffled_fve"] = (
        results["round_trip"]["fve"] - results["shuffled_vector_control"]["fve"]
    )
    table = frame.assign(av_explanation=texts["round_trip"], status=[s for _, s in real],
                         fve=scores["round_trip"].fve.numpy(), cos=scores["round_trip"].cos.numpy(),
                         recalls_content=recall["round_trip"])  # fmt: skip
    write_table(
        out / f"{label}_explanations.parquet",
        table,
        gold.numpy(),
        stage="eval",
        inputs={"nla": label, "split": split, **config.model_dump()},
    )
    title = "Held-out examples" if split == "eval" else "Held-out audit-style examples"
    (out / f"{label}_examples.md").write_text(
        examples_markdown(table.head(N_EXAMPLES), title), encoding="utf-8"
    )
    return results


def _explain(
    verbalizer: Verbalizer,
    vectors: torch.Tensor,
    sampling: SamplingParams,
    config: EvalConfig,
    char: str,
    progress,
) -> list[tuple[str, str]]:
    """(explanation text, parse status) per vector; the text is whatever the AR can be given."""
    gens = verbalizer.generate(vectors, sampling, batch_size=config.batch_size, progress=progress)
    parsed = [parse_explanation(g.text, char) for g in gens]
    return [(p.text, str(p.status)) for p in parsed]


def examples_markdown(table: pd.DataFrame, title: str = "Held-out examples") -> str:
    """Source text, teacher and AV explanations side by side, as Markdown with the text in code spans."""
    lines = [f"# {title}", ""]
    for i, row in enumerate(table.itertuples(), 1):
        tail = row.detokenized_text_truncated[-240:].replace("```", "'''")
        lines += [
            f"## {i}. {row.doc_id}, position {row.position} (token {row.token!r}); round-trip FVE {row.fve:.2f}, cos {row.cos:.2f}",
            "", "Source text (end):", "", "```text", tail, "```", "",
            "Teacher explanation:", "", "```text", row.explanation, "```", "",
            f"AV explanation ({row.status}):", "", "```text", row.av_explanation, "```", "",
        ]  # fmt: skip
    return "\n".join(lines)
