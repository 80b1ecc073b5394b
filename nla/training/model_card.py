"""``MODEL_CARD.md`` for a trained NLA: data, settings, wall time per stage, held-out FVE with its
controls, and examples, all read from the run directory's records."""

from __future__ import annotations

import json
import re
from typing import Any

from nla.training.run import SPLITS, RunDir
from nla.training.stage import read_stage
from nla.training.tables import read_sidecar

CARD = "MODEL_CARD.md"
_EXAMPLE_HEADING = re.compile(r"^## (\d+\. )", re.M)
HOW_TO_READ = [
    "- The explanations follow the warm-start teacher's format. With the `heuristic` teacher that is "
    "three short features: the kind of text and topic words, the last words of the text as the AV "
    "reads them from the vector, and the final token with the likely next tokens.",
    "- Quoted words are the AV's reading of the activation, not a copy of the transcript: at this model "
    "size they are often near-misses or confabulated. Compare them with the transcript shown beside "
    "them, and weigh each explanation by its FVE / cos.",
    "- FVE is measured on held-out documents of the training corpus; on other text (for example the "
    "audit scenarios) expect it to be lower, and prefer themes that recur across samples and tokens.",
    "- Words of a theme (say, 'test' or 'secret') in an explanation usually mean the text or the "
    "predicted next words contained them; that is a lead to check, never a finding by itself.",
]
CONTROLS = (
    ("round_trip", "round trip (AV explanation -> AR)"),
    ("shuffled_vector_control", "control: shuffled vector into the AV"),
    ("empty_explanation_control", "control: empty explanation into the AR"),
    ("predict_mean_control", "control: predict the training mean"),
    ("teacher_text", "reference: teacher explanation into the AR"),
)


def model_card(run: RunDir, which: str) -> str:
    """The card for the run's NLA at stage ``which``."""
    settings = run.settings()
    lines = [
        f"# NLA for {settings.target}, layer {settings.layer}",
        "",
        "An activation verbalizer (AV) and reconstructor (AR) trained with `nla-workbench train` on a "
        "CPU. Its explanations are hypotheses about the activation: read them with their fidelity "
        "(FVE / cos) and check them against the transcript.",
        "",
        "## Data",
        "",
        *_data_lines(run),
        "",
        "## Stages (settings and wall time)",
        "",
        "| stage | steps | wall time (s) | key settings | result |",
        "|---|---|---|---|---|",
        *_stage_rows(run),
        "",
        *_eval_lines(run),
    ]
    lines += ["## How to read it", "", *HOW_TO_READ]
    examples = run.stage("eval") / f"{_resolved(run, which)}_examples.md"
    if examples.is_file():
        lines += ["", _nested(examples.read_text("utf-8"))]
    return "\n".join(lines) + "\n"


def _nested(examples: str) -> str:
    """The examples file one heading level down, to sit inside the card."""
    return _EXAMPLE_HEADING.sub(r"### \1", examples.replace("# Held-out examples", "## Held-out examples", 1))


def _resolved(run: RunDir, which: str) -> str:
    from nla.training.assemble import latest

    return latest(run) if which == "latest" else which


def _data_lines(run: RunDir) -> list[str]:
    settings = run.settings()
    first = read_sidecar(run.split(SPLITS[0]))["inputs"]
    rows = {name: read_sidecar(run.split(name)) for name in SPLITS}
    corpus = (
        f"built-in: {settings.prose_docs} prose documents from the Debian `fortunes` package (BSD fortune-mod "
        f"data files) and {settings.chat_docs} chats in which the target answers prompts we wrote"
        if settings.corpus == "builtin"
        else f"`{settings.corpus}`"
    )
    split = ", ".join(
        f"{n}: {rows[n]['row_count']} vectors / {rows[n]['inputs']['documents']} docs" for n in SPLITS
    )
    return [
        f"- corpus: {corpus}",
        f"- positions: up to {settings.positions_per_doc} per document at token index >= "
        f"{settings.min_position}, special and system-prompt tokens skipped, per-document seeded RNG",
        f"- split by document: {split}",
        f"- datagen wall time: {first.get('datagen_seconds', 'not recorded')} s",
        "- warm-start teacher: see `explain/` sidecars (heuristic: topic words, the last words verbatim, "
        "the target's top next tokens)",
    ]


def _stage_rows(run: RunDir) -> list[str]:
    keys = {
        "ar_sft": ("lr", "batch_size", "lora_rank"),
        "av_sft": ("lr", "batch_size", "lora_rank"),
        "rl": ("vectors_per_step", "group_size", "kl_coef", "av_lr", "ar_lr", "max_new_tokens"),
    }
    rows = []
    for name, shown in keys.items():
        record = read_stage(run.stage(name))
        if not record:
            continue
        config = ", ".join(f"{k}={record['config'][k]}" for k in shown)
        rows.append(
            f"| {name} | {record['steps']} | {record['train_seconds']} | {config} | {_result(record['metrics'])} |"
        )
    return rows


def _result(metrics: dict[str, Any]) -> str:
    shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
    return ", ".join(f"{k} {v:.3f}" for k, v in shown.items())


def _eval_lines(run: RunDir) -> list[str]:
    lines = ["## Held-out evaluation", ""]
    for which in ("sft", "rl"):
        path = run.stage("eval") / f"{which}.json"
        if not path.is_file():
            continue
        results = json.loads(path.read_text())
        lines += [
            f"### after {which.upper()} ({results['vectors']} held-out vectors, greedy explanations)",
            "",
            f"FVE = {results['fve_definition']} (B = {results['fve_baseline']:.4f}). "
            f"Failed (unparsable) explanations: {results['failed_explanations']:.1%}.",
            "",
            "| | FVE | cos |",
            "|---|---|---|",
            *(f"| {label} | {results[k]['fve']:.3f} | {results[k]['cos']:.3f} |" for k, label in CONTROLS),
            "",
            f"Round trip minus shuffled-vector control: {results['round_trip_minus_shuffled_fve']:.3f} FVE.",
            "",
        ]
    return lines
