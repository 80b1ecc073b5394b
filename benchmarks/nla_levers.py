"""NLA training levers, measured one at a time on the same held-out data (issue 18's lever table).

    .venv/bin/python benchmarks/nla_levers.py --data runs/v1data --lever baseline
    .venv/bin/python benchmarks/nla_levers.py --data runs/v1data --lever data-v2
    .venv/bin/python benchmarks/nla_levers.py --data runs/v1data --table          # print saved results
    .venv/bin/python benchmarks/nla_levers.py --data runs/v1data --nla default     # score a shipped NLA

``--data`` is a training run (``train datagen`` + ``train explain``) whose held-out splits every lever
is scored on: its ``eval`` documents and its held-out audit-style chats (``eval_audit``). A lever that
changes the data builds its own run with ``held_out_of`` pointing at ``--data``, so none of those
documents is ever trained on. Each lever then trains AR-SFT and AV-SFT at the same reduced budget
(``--ar-steps`` / ``--av-steps``, far below ``make bundled-nla``'s) and is scored with ``train eval``'s
measures: round-trip FVE against the shuffled-vector control, and content recall. So the table
compares levers with each other at a small budget; it does not predict the full recipe's figures.
Stage minutes come from the stages' own records; nothing else should run beside it.

Levers (``LEVERS``):
* ``baseline``: the data run's own training splits (today's recipe: 300 prose documents and 300 chats,
  6 positions each, heuristic teacher), trained at the reduced budget;
* ``data-v2``: many more documents with fewer positions each (900 prose, 400 chats, 2 positions), plus
  300 audit-style chats from the training family (system prompts with roles and goals, emails, tool
  results, evaluation and deployment framings): less correlated examples, closer to audit transcripts;
* ``lens-teacher``: the baseline's data, with the ``heuristic-lens`` teacher: the final feature's likely
  next tokens are the layer-K logit lens of the vector itself instead of the model's output.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nla.training.ar_sft import ARSFTConfig, run_ar_sft  # noqa: E402
from nla.training.assemble import assemble  # noqa: E402
from nla.training.av_sft import AVSFTConfig, run_av_sft  # noqa: E402
from nla.training.datagen import run_datagen  # noqa: E402
from nla.training.evaluate import EvalConfig, run_eval  # noqa: E402
from nla.training.explain import run_explain  # noqa: E402
from nla.training.model_card import LEVERS_MD  # noqa: E402
from nla.training.run import RunDir  # noqa: E402
from nla.training.stage import read_stage  # noqa: E402
from nla.training.tables import read_sidecar  # noqa: E402
from nla.training.teachers import make_teacher  # noqa: E402

LEVERS = {
    "baseline": {"data": None, "teacher": "heuristic"},
    "data-v2": {
        "data": {"prose_docs": 900, "chat_docs": 400, "audit_docs": 300, "positions_per_doc": 2},
        "teacher": "heuristic",
    },
    "lens-teacher": {"data": None, "teacher": "heuristic-lens"},
}
RESULTS = "levers.json"


def lever_run(data: RunDir, lever: str) -> RunDir:
    """The run a lever trains in: a copy of the data run's data, or its own datagen."""
    root = data.root.parent / f"{data.root.name}-lever-{lever}"
    run = RunDir(root)
    changes, teacher = LEVERS[lever]["data"], LEVERS[lever]["teacher"]
    if changes is None:
        if not run.settings_file.is_file():
            root.mkdir(parents=True)
            for part in ("run.yaml", "init", "data"):
                source = data.root / part
                (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / part)
    else:
        settings = data.settings().model_copy(update={**changes, "held_out_of": str(data.root)})
        run_datagen(run, settings)
    settings = run.settings()
    run_explain(run, make_teacher(teacher, run.model_ref(settings), settings.layer))
    return run


def measure(
    data: RunDir, lever: str, ar_steps: int, av_steps: int, vectors: int, max_new_tokens: int = 80
) -> dict:
    """Train one lever at the reduced budget and score it on the data run's held-out splits."""
    began = time.perf_counter()
    run = lever_run(data, lever)
    data_seconds = time.perf_counter() - began
    run_ar_sft(run, ARSFTConfig(steps=ar_steps))
    run_av_sft(run, AVSFTConfig(steps=av_steps))
    nla_dir = assemble(run, run.stage("eval") / f"nla-{lever}-sft", "sft")
    config = EvalConfig(vectors=vectors, max_new_tokens=max_new_tokens)
    scores = run_eval(data, config, nla_ref=str(nla_dir))
    train_rows = {name: read_sidecar(run.explained(name))["row_count"] for name in ("av_sft", "ar_sft")}
    datagen_seconds = read_sidecar(run.split("av_sft"))["inputs"].get("datagen_seconds")
    return {
        "lever": lever,
        "settings": LEVERS[lever],
        "ar_steps": ar_steps,
        "av_steps": av_steps,
        "train_rows": train_rows,
        "minutes": {
            "datagen (recorded)": None if LEVERS[lever]["data"] is None else round(datagen_seconds / 60, 1),
            "ar_sft": round(read_stage(run.stage("ar_sft"))["train_seconds"] / 60, 1),
            "av_sft": round(read_stage(run.stage("av_sft"))["train_seconds"] / 60, 1),
            "eval": round(scores["seconds"] / 60, 1),
            "this call (wall)": round((time.perf_counter() - began) / 60, 1),
            "data step of this call": round(data_seconds / 60, 1),
        },
        "av_sft_heldout": read_stage(run.stage("av_sft"))["metrics"],
        "scores": scores,
    }


def per_row(data: RunDir, stage: str, split: str) -> pd.DataFrame | None:
    """The round trip's rows on one split (FVE, parse status) as ``train eval`` wrote them."""
    suffix = "" if split == "eval" else f"_{split}"
    path = data.stage("eval") / f"{stage}{suffix}_explanations.parquet"
    return pd.read_parquet(path, columns=["doc_id", "position", "fve", "status"]) if path.is_file() else None


def split_cell(data: RunDir, stage: str, scores: dict | None, split: str) -> str:
    """Round-trip FVE +- 1.96 SE (shuffled control), failed share, FVE of the parsed explanations only."""
    if not scores:
        return "-"
    cell = f"{scores['round_trip']['fve']:.3f} ({scores['shuffled_vector_control']['fve']:.3f})"
    rows = per_row(data, stage, split)
    if rows is None:
        return cell
    se = 1.96 * rows["fve"].std(ddof=1) / math.sqrt(len(rows))
    ok = rows[rows["status"] == "ok"]["fve"]
    parsed = f"{ok.mean():.3f}" if len(ok) else "-"
    return f"{scores['round_trip']['fve']:.3f} ± {se:.3f} ({scores['shuffled_vector_control']['fve']:.3f}); failed {1 - len(ok) / len(rows):.0%}; parsed only {parsed}"


def paired_delta(data: RunDir, stage: str, baseline: str, split: str) -> str:
    """Mean per-row FVE difference to the baseline on the same held-out rows, +- 1.96 SE."""
    ours, theirs = per_row(data, stage, split), per_row(data, baseline, split)
    if ours is None or theirs is None or stage == baseline:
        return "-"
    both = ours.merge(theirs, on=["doc_id", "position"], suffixes=("", "_base"))
    diff = both["fve"] - both["fve_base"]
    return f"{diff.mean():+.3f} ± {1.96 * diff.std(ddof=1) / math.sqrt(len(diff)):.3f}"


def table(results: dict[str, dict], data: RunDir) -> str:
    """One Markdown row per lever (and per scored NLA)."""
    lines = [
        "| lever | train vectors (AV/AR) | corpus: round-trip FVE ± 95% (shuffled); failed; parsed only | "
        "audit-style: same | FVE vs baseline, paired (corpus / audit) | content recall corpus / audit "
        "(shuffled) | AV held-out loss real / shuffled | minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = results.get("baseline", {}).get("scores", {}).get("stage")
    for name, r in results.items():
        s, a = r["scores"], r["scores"].get("audit")
        recall = f"{s['content_recall']['round_trip']:.2f} / " + (
            f"{a['content_recall']['round_trip']:.2f}" if a else "-"
        )
        recall += f" ({s['content_recall']['shuffled_vector_control']:.2f} / " + (
            f"{a['content_recall']['shuffled_vector_control']:.2f})" if a else "-)"
        )
        rows = r.get("train_rows")
        rows = f"{rows['av_sft']} / {rows['ar_sft']}" if rows else "-"
        av = r.get("av_sft_heldout")
        loss = f"{av['heldout_loss_real']:.2f} / {av['heldout_loss_shuffled']:.2f}" if av else "-"
        minutes = ", ".join(f"{k} {v}" for k, v in (r.get("minutes") or {}).items() if v is not None) or "-"
        cells = f"{split_cell(data, s['stage'], s, 'eval')} | {split_cell(data, s['stage'], a, 'eval_audit')}"
        delta = (
            " / ".join(paired_delta(data, s["stage"], base, sp) for sp in ("eval", "eval_audit"))
            if base
            else "-"
        )
        cells += f" | {delta}"
        lines.append(f"| {name} | {rows} | {cells} | {recall} | {loss} | {minutes} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="training run whose held-out splits score")
    parser.add_argument(
        "--lever", choices=sorted(LEVERS), nargs="*", default=[], help="train and score levers"
    )
    parser.add_argument(
        "--nla", help="score an existing NLA (a directory, 'default' or 'default@vN') instead"
    )
    parser.add_argument("--label", help="the --nla row's name in the table (default: 'nla <ref>')")
    parser.add_argument("--ar-steps", type=int, default=100)
    parser.add_argument("--av-steps", type=int, default=200)
    parser.add_argument("--vectors", type=int, default=100, help="held-out vectors per split")
    parser.add_argument("--table", action="store_true", help="print the saved results")
    parser.add_argument(
        "--card-run", type=Path,
        help=f"also write the table to this training run's {LEVERS_MD}, which its model card then shows",
    )  # fmt: skip
    args = parser.parse_args()
    data = RunDir(args.data)
    path = data.root / RESULTS
    results = json.loads(path.read_text()) if path.is_file() else {}
    for lever in args.lever:  # saved after each, so a later lever's failure keeps the earlier ones
        results[lever] = measure(data, lever, args.ar_steps, args.av_steps, args.vectors)
        path.write_text(json.dumps(results, indent=2, default=str))
    if args.nla:
        began = time.perf_counter()
        scores = run_eval(data, EvalConfig(vectors=args.vectors), nla_ref=args.nla)
        results[args.label or f"nla {args.nla}"] = {
            "scores": scores,
            "minutes": {"eval": round((time.perf_counter() - began) / 60, 1)},
        }
    if not (args.lever or args.nla or args.table):
        parser.error("give --lever, --nla or --table")
    if args.nla:
        path.write_text(json.dumps(results, indent=2, default=str))
    text = table(results, data)
    print(text)
    if args.card_run:
        (RunDir(args.card_run).root / LEVERS_MD).write_text(card_text(results, text, args.data), "utf-8")


def card_text(results: dict[str, dict], text: str, data: Path) -> str:
    """The table with what it was measured on and with (from the saved results), for a model card."""
    budgets = sorted({(r["ar_steps"], r["av_steps"]) for r in results.values() if "ar_steps" in r})
    budget = " or ".join(f"AR-SFT {ar} and AV-SFT {av} steps" for ar, av in budgets) or "-"
    vectors = sorted({r["scores"]["vectors"] for r in results.values()})
    return (
        f"Measured by `benchmarks/nla_levers.py --data {data}` on that run's held-out vectors "
        f"({' or '.join(map(str, vectors))} per split, greedy explanations). Each lever row trained "
        f"{budget}, no RL; a row named after an NLA scores that NLA as trained (full recipe). Paired = "
        f"mean per-vector FVE difference to the baseline row on the same vectors, ± 1.96 SE.\n\n{text}\n"
    )


if __name__ == "__main__":
    main()
