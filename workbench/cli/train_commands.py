"""``nla-workbench train ...``: build an NLA for a target model, stage by stage, in one run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from nla.errors import InputError
from nla.resolve import DEFAULT_TARGET

train_app = typer.Typer(
    no_args_is_help=True, help="Train an NLA: datagen, explain, ar-sft, av-sft, rl, eval, export."
)
console = Console()
RunArg = Annotated[Path, typer.Argument(help="The run directory made by `train datagen`.")]
Steps = Annotated[int | None, typer.Option(help="Total optimizer steps (a re-run continues up to it).")]
Lr = Annotated[float | None, typer.Option(help="Peak learning rate.")]
Batch = Annotated[int | None, typer.Option(help="Rows per step.")]
Rank = Annotated[int | None, typer.Option(help="LoRA rank.")]
SaveEvery = Annotated[int | None, typer.Option(help="Checkpoint interval in steps.")]
Device = Annotated[str | None, typer.Option(help="Torch device, e.g. cpu or cuda.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]


def _given(**options: Any) -> dict[str, Any]:
    """The options the user set (unset ones keep the config defaults)."""
    return {k: v for k, v in options.items() if v is not None}


def _print(result: dict[str, Any]) -> None:
    console.print_json(json.dumps(result, default=str))


def _run(path: Path):
    from nla.training.run import RunDir

    return RunDir(path)


@train_app.command("datagen")
def datagen(
    out: Annotated[Path, typer.Option(help="Run directory to create (or resume).")],
    target: Annotated[
        str,
        typer.Option(
            help="Target model: embedded alias, local path, Hub id, or organism:<name> (a shipped model "
            "organism: its base plus its adapter)."
        ),
    ] = DEFAULT_TARGET,
    adapter: Annotated[
        Path | None,
        typer.Option(
            help="A peft adapter directory merged into the target: train the NLA on that fine-tune "
            "(its activations; the corpus text stays the base model's)."
        ),
    ] = None,
    layer: Annotated[int, typer.Option(help="Layer K: the residual stream after block K.")] = 20,
    corpus: Annotated[
        str, typer.Option(help="'builtin' or a .jsonl/.txt file or a directory of .txt files.")
    ] = "builtin",
    prose_docs: Annotated[int | None, typer.Option(help="Built-in corpus: prose documents.")] = None,
    chat_docs: Annotated[int | None, typer.Option(help="Built-in corpus: chats the target answers.")] = None,
    audit_docs: Annotated[
        int | None, typer.Option(help="Built-in corpus: audit-style chats the target answers.")
    ] = None,
    audit_eval_docs: Annotated[
        int | None, typer.Option(help="Held-out audit-style chats for the eval_audit split.")
    ] = None,
    held_out_of: Annotated[
        Path | None,
        typer.Option(
            help="Leave this other run's held-out documents out of the corpus (compare NLAs on them)."
        ),
    ] = None,
    positions_per_doc: Annotated[int | None, typer.Option(help="Activations sampled per document.")] = None,
    min_position: Annotated[int | None, typer.Option(help="Earliest token position sampled.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for corpus choice, positions and split.")] = None,
    quiet: Quiet = False,
) -> None:
    """Sample activations from the corpus and split them by document into AV-SFT / AR-SFT / RL / eval."""
    from audits.organisms.catalog import resolve_target_model
    from nla.training.datagen import run_datagen
    from nla.training.run import RunSettings

    target, adapter_dir = resolve_target_model(target, str(adapter) if adapter else None)
    options = _given(
        adapter=str(Path(adapter_dir).expanduser().resolve()) if adapter_dir else None,
        prose_docs=prose_docs,
        chat_docs=chat_docs,
        audit_docs=audit_docs,
        audit_eval_docs=audit_eval_docs,
        held_out_of=str(held_out_of) if held_out_of else None,
        positions_per_doc=positions_per_doc,
        min_position=min_position,
        seed=seed,
    )
    settings = RunSettings(target=target, layer=layer, corpus=corpus, **options)
    _print({"rows": run_datagen(_run(out), settings, show_progress=not quiet), "run": str(out)})


@train_app.command("explain")
def explain(
    run: RunArg,
    teacher: Annotated[
        str,
        typer.Option(
            help="heuristic, heuristic-lens, local:<model>, anthropic[:<model>] or openai[:<model>]."
        ),
    ] = "heuristic",
    quiet: Quiet = False,
) -> None:
    """Warm-start explanations of each text prefix (cached by prefix text)."""
    from nla.training.explain import run_explain
    from nla.training.teachers import make_teacher

    run_dir = _run(run)
    settings = run_dir.settings()
    chosen = make_teacher(teacher, run_dir.model_ref(settings), settings.layer)
    _print(run_explain(run_dir, chosen, show_progress=not quiet))


@train_app.command("ar-sft")
def ar_sft(run: RunArg, steps: Steps = None, batch_size: Batch = None, lr: Lr = None, lora_rank: Rank = None,
           save_every: SaveEvery = None, device: Device = None, quiet: Quiet = False) -> None:  # fmt: skip
    """Train the reconstructor on teacher explanations (resumable)."""
    from nla.training.ar_sft import ARSFTConfig, run_ar_sft

    config = ARSFTConfig(
        **_given(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            lora_rank=lora_rank,
            save_every=save_every,
            device=device,
        )
    )
    _print(run_ar_sft(_run(run), config, show_progress=not quiet)["metrics"])


@train_app.command("av-sft")
def av_sft(run: RunArg, steps: Steps = None, batch_size: Batch = None, lr: Lr = None, lora_rank: Rank = None,
           save_every: SaveEvery = None, device: Device = None, quiet: Quiet = False) -> None:  # fmt: skip
    """Train the verbalizer on teacher explanations with the vector injected (resumable)."""
    from nla.training.av_sft import AVSFTConfig, run_av_sft

    config = AVSFTConfig(
        **_given(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            lora_rank=lora_rank,
            save_every=save_every,
            device=device,
        )
    )
    _print(run_av_sft(_run(run), config, show_progress=not quiet)["metrics"])


@train_app.command("rl")
def rl(
    run: RunArg,
    steps: Steps = None,
    vectors_per_step: Annotated[int | None, typer.Option(help="Vectors (groups) per step.")] = None,
    group_size: Annotated[int | None, typer.Option(help="Explanations sampled per vector.")] = None,
    kl_coef: Annotated[
        float | None, typer.Option(help="Weight of the KL loss to the SFT verbalizer.")
    ] = None,
    av_lr: Annotated[float | None, typer.Option(help="Verbalizer learning rate.")] = None,
    ar_lr: Annotated[float | None, typer.Option(help="Reconstructor learning rate.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Explanation length cap.")] = None,
    save_every: SaveEvery = None,
    device: Device = None,
    quiet: Quiet = False,
) -> None:
    """GRPO on the verbalizer with rewards from the live, jointly trained reconstructor (resumable)."""
    from nla.training.grpo import RLConfig, run_rl

    options = _given(steps=steps, vectors_per_step=vectors_per_step, group_size=group_size, kl_coef=kl_coef,
                     av_lr=av_lr, ar_lr=ar_lr, max_new_tokens=max_new_tokens, save_every=save_every, device=device)  # fmt: skip
    _print(run_rl(_run(run), RLConfig(**options), show_progress=not quiet)["metrics"])


@train_app.command("eval")
def evaluate(
    run: RunArg,
    stage: Annotated[str, typer.Option(help="latest, sft or rl.")] = "latest",
    vectors: Annotated[int | None, typer.Option(help="Held-out vectors to evaluate per split.")] = None,
    nla: Annotated[
        str | None,
        typer.Option(
            help="Evaluate this NLA (a directory or 'default') on the run's held-out data instead of the run's own."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Score the stage again even if it was scored as it is now.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Held-out round-trip FVE / cos against shuffled-vector, empty-explanation and mean controls, and
    content recall, on the corpus's held-out documents and the held-out audit-style chats. A stage already
    scored since it last finished, with the same settings and held-out data, is reported, not re-scored."""
    from nla.training.evaluate import EvalConfig, run_eval

    config = EvalConfig(**_given(vectors=vectors))
    results = run_eval(_run(run), config, _stage(stage), nla_ref=nla, force=force, show_progress=not quiet)
    if results.get("reused"):
        console.print(
            f"stage {results['stage']} was already scored as it is now ({results['seconds']} s then); "
            "reporting that record (--force scores it again)"
        )
    _print(results)


@train_app.command("export")
def export(
    run: RunArg,
    out: Annotated[Path, typer.Option(help="Directory to write the NLA to.")],
    stage: Annotated[str, typer.Option(help="latest, sft or rl.")] = "latest",
    merge: Annotated[
        bool, typer.Option("--merge", help="Merge adapters into full weights (released layout).")
    ] = False,
    half: Annotated[
        bool, typer.Option("--half", help="Compact form: store adapters and head in float16.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out.")] = False,
) -> None:
    """Write the trained NLA with its model card: compact (adapters + head + sidecars) or, with
    --merge, the released layout."""
    from nla.training.export import run_export

    path = run_export(_run(run), out, _stage(stage), merge=merge, half=half, force=force)
    console.print(f"wrote {path}")


def _stage(stage: str) -> str:
    if stage not in ("latest", "sft", "rl"):
        raise InputError(f"--stage {stage!r}: use latest, sft or rl")
    return stage
