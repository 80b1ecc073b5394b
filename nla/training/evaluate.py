"""``train eval``: held-out round-trip reconstruction of the assembled NLA, against controls.

Round trip: eval vector -> AV explanation -> AR prediction, scored with FVE (1 - mse / B, B the
variance of sqrt(d)-normalised *training* vectors around their mean) and cos. Controls, on the same
rows: a shuffled vector into the AV (explanations of the wrong activation), an empty explanation into
the AR, and predicting the training mean. The teacher's own explanation into the AR is shown as the
warm start's ceiling. Ten examples are written side by side with their source text.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from nla.checkpoint import load_nla
from nla.metrics import normalise, score
from nla.parsing import parse_explanation
from nla.sampling import SamplingParams
from nla.training.assemble import assemble, latest
from nla.training.run import RunDir
from nla.training.stage import derangement, training_baseline, training_vectors
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


def run_eval(run: RunDir, config: EvalConfig, which: str = "latest", *, show_progress: bool = True) -> dict:
    """Evaluate the run's NLA at stage ``which`` (sft, rl, latest); the results."""
    which = latest(run) if which == "latest" else which
    began = time.perf_counter()
    out = run.stage(STAGE)
    nla = load_nla(str(assemble(run, out / f"nla-{which}", which)))
    frame, vectors = read_table(run.explained("eval"))
    rows = np.sort(np.random.default_rng(config.seed).permutation(len(frame))[: config.vectors])
    frame, gold = frame.iloc[rows].reset_index(drop=True), torch.from_numpy(vectors[rows])
    n, baseline = len(frame), training_baseline(run)
    verbalizer = Verbalizer(nla.av, nla.av_tokenizer, nla.av_prompt, nla.meta.injection_scale)
    sampling = SamplingParams(temperature=0.0, max_new_tokens=config.max_new_tokens, seed=config.seed)
    with tqdm(total=2 * n, desc=f"eval ({which})", unit="expl", disable=not show_progress) as bar:
        real = _explain(verbalizer, gold, sampling, config, nla.meta.injection_char, bar.update)
        shuffled = _explain(
            verbalizer,
            gold[derangement(n, config.seed)],
            sampling,
            config,
            nla.meta.injection_char,
            bar.update,
        )
    mean = normalise(torch.from_numpy(training_vectors(run)), math.sqrt(gold.shape[1])).mean(dim=0)
    predictions = {
        "round_trip": nla.ar.reconstruct([t for t, _ in real]),
        "shuffled_vector_control": nla.ar.reconstruct([t for t, _ in shuffled]),
        "empty_explanation_control": nla.ar.reconstruct([""] * n),
        "predict_mean_control": mean.expand(n, -1),
        "teacher_text": nla.ar.reconstruct(frame["explanation"].tolist()),
    }
    scores = {name: score(pred, gold, nla.meta.mse_scale, baseline) for name, pred in predictions.items()}
    results = {
        "seconds": round(time.perf_counter() - began, 1),
        "stage": which,
        "vectors": n,
        "fve_baseline": baseline,
        "fve_definition": "1 - mean normalised mse / B, B = variance of sqrt(d)-normalised training vectors",
        "failed_explanations": sum(status != "ok" for _, status in real) / n,
        **{name: {"fve": float(s.fve.mean()), "cos": float(s.cos.mean())} for name, s in scores.items()},
    }
    results["round_trip_minus_shuffled_fve"] = (
        results["round_trip"]["fve"] - results["shuffled_vector_control"]["fve"]
    )
    table = frame.assign(av_explanation=[t for t, _ in real], status=[s for _, s in real],
                         fve=scores["round_trip"].fve.numpy(), cos=scores["round_trip"].cos.numpy())  # fmt: skip
    write_table(
        out / f"{which}_explanations.parquet",
        table,
        gold.numpy(),
        stage="eval",
        inputs={"nla": str(out / f"nla-{which}"), **config.model_dump()},
    )
    (out / f"{which}.json").write_text(json.dumps(results, indent=2))
    (out / f"{which}_examples.md").write_text(examples_markdown(table.head(N_EXAMPLES)), encoding="utf-8")
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


def examples_markdown(table: pd.DataFrame) -> str:
    """Source text, teacher and AV explanations side by side, as Markdown with the text in code spans."""
    lines = ["# Held-out examples", ""]
    for i, row in enumerate(table.itertuples(), 1):
        tail = row.detokenized_text_truncated[-240:].replace("```", "'''")
        lines += [
            f"## {i}. {row.doc_id}, position {row.position} (token {row.token!r}); round-trip FVE {row.fve:.2f}, cos {row.cos:.2f}",
            "", "Source text (end):", "", "```text", tail, "```", "",
            "Teacher explanation:", "", "```text", row.explanation, "```", "",
            f"AV explanation ({row.status}):", "", "```text", row.av_explanation, "```", "",
        ]  # fmt: skip
    return "\n".join(lines)
