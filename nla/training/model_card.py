"""``MODEL_CARD.md`` for a trained NLA: data, settings, wall time per stage, held-out FVE with its
controls, and examples, all read from the run directory's records."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nla.training.run import ALL_SPLITS, AUDIT_EVAL, SPLITS, RunDir, RunSettings
from nla.training.stage import read_stage
from nla.training.tables import read_sidecar

CARD = "MODEL_CARD.md"
LEVERS_MD = "levers.md"
"""A run's lever table (``benchmarks/nla_levers.py --card-run``), shown in its card when present."""
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
LENS_NOTE = (
    "- This NLA's teacher was `heuristic-lens`: its likely next tokens are what the target's own "
    "unembedding reads from this layer's vector (the logit lens), so the third feature describes the "
    "vector itself, not only the text."
)
CONTROLS = (
    ("round_trip", "round trip (AV explanation -> AR)"),
    ("shuffled_vector_control", "control: shuffled vector into the AV"),
    ("empty_explanation_control", "control: empty explanation into the AR"),
    ("predict_mean_control", "control: predict the training mean"),
    ("teacher_text", "reference: teacher explanation into the AR"),
)


def model_card(run: RunDir, which: str) -> str:
    """The card for the run's NLA at stage ``which``."""
    settings, teacher = run.settings(), _teacher_id(run)
    lines = [
        f"# NLA for {_target_name(settings)}, layer {settings.layer}",
        "",
        "An activation verbalizer (AV) and reconstructor (AR) trained with `nla-workbench train` on a "
        "CPU. Its explanations are hypotheses about the activation: read them with their fidelity "
        "(FVE / cos) and check them against the transcript.",
        "",
        "## Data",
        "",
        *_data_lines(run, settings, teacher),
        "",
        "## Stages (settings and wall time)",
        "",
        "| stage | steps | wall time (s) | key settings | result |",
        "|---|---|---|---|---|",
        *_stage_rows(run),
        "",
        *compute_section(compute_records(run)),
        "",
        *_eval_lines(run),
    ]
    levers = run.root / LEVERS_MD
    if levers.is_file():
        lines += [
            "## Levers (measured one at a time at a reduced budget)",
            "",
            levers.read_text("utf-8").strip(),
            "",
        ]
    lens = _teacher_kind(teacher) == "heuristic-lens"
    lines += ["## How to read it", "", HOW_TO_READ[0], *([LENS_NOTE] if lens else []), *HOW_TO_READ[1:]]
    for suffix in ("", f"_{AUDIT_EVAL}"):  # the corpus's held-out examples, then the audit-style chats'
        examples = run.stage("eval") / f"{_resolved(run, which)}{suffix}_examples.md"
        if examples.is_file():
            lines += ["", _nested(examples.read_text("utf-8"))]
    return "\n".join(lines) + "\n"


def _nested(examples: str) -> str:
    """The examples file one heading level down, to sit inside the card."""
    return _EXAMPLE_HEADING.sub(r"### \1", re.sub(r"^# ", "## ", examples, count=1))


def _resolved(run: RunDir, which: str) -> str:
    from nla.training.assemble import latest

    return latest(run) if which == "latest" else which


def _target_name(settings: RunSettings) -> str:
    """The target as the card names it: a fine-tune by its base and its adapter's hash."""
    if settings.adapter is None:
        return settings.target
    return f"{settings.target} + adapter {(settings.adapter_digest or '')[:16]}"


def _adapter_lines(run: RunDir, settings: RunSettings) -> list[str]:
    """What an adapter run trained on, and where its compact form finds the fine-tune."""
    if settings.adapter is None:
        return []
    return [
        f"- target: the fine-tune {settings.adapter} (sha256 {settings.adapter_digest}) merged into "
        f"{settings.target}; activations are the fine-tune's, the corpus text (chat replies included) is "
        "the base model's, so no text the fine-tune wrote was trained on",
        f"- the compact form names the merged fine-tune at {run.merged_target.resolve()}; "
        "`train export --merge` writes a copy that does not need the run directory",
    ]


def _data_lines(run: RunDir, settings: RunSettings, teacher: str | None) -> list[str]:
    first = read_sidecar(run.split(SPLITS[0]))["inputs"]
    names = [n for n in ALL_SPLITS if run.has_split(n)]
    rows = {name: read_sidecar(run.split(name)) for name in names}
    audit = (
        f" and {settings.audit_docs} audit-style chats (system prompts with roles and goals, emails, tool "
        "results, evaluation and deployment framings) it answers"
        if settings.audit_docs
        else " (no audit-style chats)"
    )
    corpus = (
        f"built-in: {settings.prose_docs} prose documents from the Debian `fortunes` package (BSD fortune-mod "
        f"data files), {settings.chat_docs} chats in which the target answers prompts we wrote{audit}"
        if settings.corpus == "builtin"
        else f"`{settings.corpus}`"
    )
    split = ", ".join(
        f"{n}: {rows[n]['row_count']} vectors / {rows[n]['inputs']['documents']} docs" for n in names
    )
    return [
        *_adapter_lines(run, settings),
        f"- corpus: {corpus}",
        f"- positions: up to {settings.positions_per_doc} per document at token index >= "
        f"{settings.min_position}, special and system-prompt tokens skipped, per-document seeded RNG",
        f"- split by document: {split}",
        f"- held-out audit-style chats (`{AUDIT_EVAL}`): {settings.audit_eval_docs} chats whose roles and "
        "tasks no training chat has (`nla/training/audit_chats.py`), never trained on",
        f"- datagen wall time: {first.get('datagen_seconds', 'not recorded')} s",
        f"- warm-start teacher: {_teacher_line(teacher)}",
    ]


TEACHER_FORMATS = {
    "heuristic-lens": "topic words, the last words verbatim, the final token with the next tokens the "
    "layer's logit lens reads from the vector itself",
    "heuristic": "topic words, the last words verbatim, the target's top next tokens",
}


def _teacher_id(run: RunDir) -> str | None:
    """The id of the teacher that wrote the warm-start explanations, from the explain sidecar."""
    path = run.explained(SPLITS[0])
    return str(read_sidecar(path)["inputs"].get("teacher", "not recorded")) if path.is_file() else None


def _teacher_kind(teacher: str | None) -> str | None:
    """``heuristic`` or ``heuristic-lens`` for those teachers' ids (``heuristic-lens-v1:...``), else None."""
    return next((k for k in TEACHER_FORMATS if (teacher or "").startswith(k + "-v")), None)


def _teacher_line(teacher: str | None) -> str:
    """The card's teacher line: its id and, for a heuristic teacher, its format."""
    if teacher is None:
        return "see `explain/` sidecars"
    kind = _teacher_kind(teacher)
    return f"`{teacher}`" + (f" ({TEACHER_FORMATS[kind]})" if kind else "")


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


@dataclass(frozen=True)
class ComputeRecord:
    """One stage's recorded wall time, and its units (chunks, steps) with their median time when recorded."""

    stage: str
    seconds: float | None
    units: int | None = None
    unit: str = "step"
    median: float | None = None
    """Median seconds per unit: per-unit times are recorded from this version on."""

    @property
    def estimate(self) -> float | None:
        """Units x median: the stage's time had it never waited (a shared CPU, a pause)."""
        return self.units * self.median if self.units and self.median is not None else None


def compute_records(run: RunDir) -> list[ComputeRecord]:
    """Wall times of every stage, read from the run's records (split sidecars, stage.yaml, step history,
    eval results)."""
    inputs = read_sidecar(run.split(SPLITS[0]))["inputs"]
    chunks = [c for c in inputs.get("chunk_seconds") or [] if c is not None]
    records = [ComputeRecord("datagen", inputs.get("datagen_seconds"), inputs.get("chunks"), "chunk",
                             float(np.median(chunks)) if chunks else None)]  # fmt: skip
    for name in ("ar_sft", "av_sft", "rl"):
        record = read_stage(run.stage(name))
        if not record:
            continue
        history = run.stage(name) / "state" / "history.parquet"
        steps = pd.read_parquet(history) if history.is_file() else pd.DataFrame()
        median = float(steps["step_seconds"].median()) if "step_seconds" in steps else None
        records.append(ComputeRecord(name, record["train_seconds"], record["steps"], "step", median))
    for which in ("sft", "rl"):
        path = run.stage("eval") / f"{which}.json"
        if path.is_file():
            records.append(ComputeRecord(f"eval ({which})", json.loads(path.read_text()).get("seconds")))
    return records


def compute_section(records: list[ComputeRecord]) -> list[str]:
    """The card's compute section: each stage's recorded wall time and, where per-unit times were recorded,
    units x median unit time, so time the run spent waiting (a CPU shared with other work, a pause)
    shows as the difference."""

    def seconds(value: float | None) -> str:
        return "not recorded" if value is None else f"{value:,.1f}"

    lines = ["## Compute (wall time, from the run's records)", "",
             "| stage | recorded (s) | units | median per unit (s) | units x median (s) |", "|---|---|---|---|---|"]  # fmt: skip
    for r in records:
        units = f"{r.units} {r.unit}s" if r.units else "-"
        lines.append(
            f"| {r.stage} | {seconds(r.seconds)} | {units} | {seconds(r.median)} | {seconds(r.estimate)} |"
        )
    recorded = sum(r.seconds for r in records if r.seconds is not None)
    missing = [r.stage for r in records if r.seconds is None]
    lines += ["", f"Recorded in all: {recorded:,.0f} s ({recorded / 3600:.1f} h)"
              + (f", not counting {', '.join(missing)} (no time recorded)." if missing else ".")]  # fmt: skip
    timed = [r for r in records if r.estimate is not None]
    if timed:
        estimate = sum(r.estimate if r.estimate is not None else (r.seconds or 0.0) for r in records)
        lines.append(
            f"At each stage's median unit time ({', '.join(r.stage for r in timed)}; the other stages as "
            f"recorded): {estimate:,.0f} s ({estimate / 3600:.1f} h). "
            + (
                "The difference is time the run waited."
                if estimate <= recorded
                else "It exceeds the recorded time because units differ in size (datagen's prose chunks run "
                "faster than its chat chunks), so the median overstates the rest: no waiting shows."
            )
        )
    else:
        lines.append(
            "Per-unit times were not recorded by this run, so its waiting time cannot be told apart."
        )
    return lines


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
            f"### after {which.upper()} (greedy explanations)",
            "",
            f"FVE = {results['fve_definition']} (B = {results['fve_baseline']:.4f}). "
            "Content recall = share of explanations naming a content word of the source's last 32 tokens "
            "(stop words and the format's scaffolding excluded).",
            "",
            *_split_table(results, results.get("audit")),
            "",
        ]
    return lines


def _split_table(corpus: dict[str, Any], audit: dict[str, Any] | None) -> list[str]:
    """One row per measure, one column group per held-out split (corpus documents, audit chats)."""
    splits = [("corpus held-out", corpus)] + ([("audit-style held-out", audit)] if audit else [])
    head = " | ".join(f"{name}: FVE | cos | content recall" for name, _ in splits)
    counts = ", ".join(f"{name} {r['vectors']}" for name, r in splits)
    failed = ", ".join(f"{name} {r['failed_explanations']:.1%}" for name, r in splits)
    lines = [
        f"Vectors: {counts}. Failed (unparsable) explanations: {failed}.",
        "",
        f"| | {head} |",
        "|---|" + "---|---|---|" * len(splits),
    ]
    for key, label in CONTROLS:
        cells = " | ".join(
            f"{r[key]['fve']:.3f} | {r[key]['cos']:.3f} | {_recall(r, key)}" for _, r in splits
        )
        lines.append(f"| {label} | {cells} |")
    margins = ", ".join(f"{name} {r['round_trip_minus_shuffled_fve']:.3f}" for name, r in splits)
    return [*lines, "", f"Round trip minus shuffled-vector control (FVE): {margins}."]


def _recall(results: dict[str, Any], key: str) -> str:
    value = results.get("content_recall", {}).get(key)
    return "-" if value is None else f"{value:.2f}"
