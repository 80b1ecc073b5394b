"""``nla-workbench nla ...``: verbalize activations, build and export NLA checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from audits.provenance import weights_provenance
from nla.dtypes import torch_dtype
from nla.errors import InputError
from nla.resolve import DEFAULT_TARGET
from nla.sampling import SamplingParams
from nla.transcript import load_transcript, transcript_from_text
from workbench.cli.progress import progress_bar
from workbench.cli.text import terminal_safe
from workbench.results import check_writable, print_results, result_rows, write_rows

nla_app = typer.Typer(no_args_is_help=True, help="Run and manage Natural Language Autoencoders.")
console = Console()
err = Console(stderr=True)

TargetOpt = Annotated[str, typer.Option(help="Target model: local dir, Hub id, or embedded:<name>.")]
AuditTargetOpt = Annotated[
    str,
    typer.Option("--target", help="Target model: local dir, Hub id, embedded:<name>, or organism:<name>."),
]
DtypeOpt = Annotated[str, typer.Option(help="Weights dtype: float32, bfloat16 or float16.")]
DeviceOpt = Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")]
RemoteOpt = Annotated[bool, typer.Option(help="Allow model repositories to run their own code.")]


@nla_app.command()
def verbalize(
    target: AuditTargetOpt = DEFAULT_TARGET,
    adapter: Annotated[
        str | None, typer.Option(help="A peft (LoRA) adapter on the target: a directory (or a Hub id).")
    ] = None,
    checkpoint: Annotated[
        str,
        typer.Option(
            help="NLA: a pair directory (av/ + ar/), a Hub id prefix, 'default' (the newest bundled NLA "
            "for the target, else init), 'default@vN' (one bundled version) or 'init[:LAYER]' (untrained)."
        ),
    ] = "default",
    layer: Annotated[int | None, typer.Option(help="Layer for an 'init' NLA (default: 2/3 depth).")] = None,
    text: Annotated[str | None, typer.Option(help="A user message to read.")] = None,
    transcript: Annotated[Path | None, typer.Option(help="A chat JSON: [{role, content}, ...].")] = None,
    positions: Annotated[
        str, typer.Option(help="assistant | user | system | all | e.g. 12,13,40-45.")
    ] = "assistant",
    samples: Annotated[int, typer.Option(min=1, help="Explanations per activation.")] = 1,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 = greedy.")] = 1.0,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.95,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Cap on explanation length.")] = 72,
    seed: int = 0,
    reply_tokens: Annotated[
        int,
        typer.Option(min=0, help="When the chat ends with a user turn, let the target reply (0 = never)."),
    ] = 64,
    out: Annotated[Path | None, typer.Option(help="Write rows to a .jsonl or .parquet file.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Vectors per verbalizer batch.")] = 64,
    dtype: DtypeOpt = "float32",
    device: DeviceOpt = "cpu",
    trust_remote_code: RemoteOpt = False,
) -> None:
    """Explain the target's activations at the selected tokens and score each explanation with the AR."""
    if (text is None) == (transcript is None):
        raise InputError("give exactly one of --text or --transcript")
    if out is not None:
        check_writable(out, force=force)
    chat = transcript_from_text(text) if text is not None else load_transcript(transcript)
    sampling = SamplingParams(temperature, top_p, max_new_tokens, seed)
    from audits.organisms import resolve_target_model
    from nla.backends import TransformersBackend  # torch and the models: loaded once the input is good
    from nla.checkpoint import load_nla
    from nla.engine import NLAEngine
    from nla.pipeline import load_target, verbalize_transcript

    weights_dtype = torch_dtype(dtype, "--dtype")
    base, adapter = resolve_target_model(target, adapter)
    with console.status("loading target and NLA"):
        tgt = load_target(
            base, adapter=adapter, dtype=weights_dtype, device=device, trust_remote_code=trust_remote_code
        )
        nla = load_nla(
            checkpoint, target_ref=base, layer=layer, dtype=weights_dtype, device=device,
            trust_remote_code=trust_remote_code,
        )  # fmt: skip
        nla.check_target(tgt.model, tgt.identity)
    _describe(nla, tgt.identity)
    engine = NLAEngine(TransformersBackend(nla, batch_size=batch_size))
    with progress_bar(err, "verbalizing") as bar:
        chat, results = verbalize_transcript(
            tgt, engine, chat, positions=positions, samples=samples, sampling=sampling,
            reply_tokens=reply_tokens if chat.ends_with_user else 0,
            progress=bar.advance, on_total=bar.set_total,
        )  # fmt: skip
    if chat.messages[-1].role == "assistant":
        console.print(Text.assemble(("target reply: ", "bold"), terminal_safe(chat.messages[-1].content)))
    print_results(console, results)
    if out is not None:
        write_rows(
            result_rows(results, checkpoint_id=nla.id, layer=nla.meta.layer, untrained=nla.untrained), out
        )
        console.print(f"wrote {sum(len(r.explanations) for r in results)} rows to {out}")


def _describe(nla, target: str) -> None:
    meta = nla.meta
    baseline = "not set (FVE not reported)" if meta.fve_baseline is None else f"{meta.fve_baseline:.4f}"
    weights = weights_provenance(target)
    shown = (
        f"{target} ({weights['quantization'].split(' (')[0]}, dequantised to float32)" if weights else target
    )
    console.print(
        Text(f"target {shown} · NLA {nla.id} · layer {meta.layer} · d_model {meta.d_model} · "
             f"injection scale {meta.injection_scale:g} · FVE baseline B {baseline}")
    )  # fmt: skip
    if nla.untrained:
        console.print(
            Text("UNTRAINED NLA (stage: init): its explanations carry no information about the activations; "
                 "use it to exercise the pipeline, not to audit.", style="bold yellow")
        )  # fmt: skip


@nla_app.command("init")
def init_command(
    out: Annotated[Path, typer.Argument(help="Directory to write the compact NLA to.")],
    base: TargetOpt = DEFAULT_TARGET,
    layer: Annotated[int | None, typer.Option(help="Extraction layer K (default: 2/3 depth).")] = None,
    force: bool = False,
) -> None:
    """Build an untrained NLA (AV = base, AR = base truncated to K+1 blocks + identity head)."""
    from nla.checkpoint import init_nla

    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to overwrite it")
    with console.status("building the untrained NLA"):
        path = init_nla(base, layer, out)
    console.print(f"wrote untrained NLA to {path}")


@nla_app.command("export")
def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A compact NLA directory.")],
    out: Annotated[Path, typer.Argument(help="Directory for the released-format pair (av/ + ar/).")],
    force: bool = False,
) -> None:
    """Merge a compact NLA's adapters into full weights and write the released two-directory format."""
    from nla.checkpoint import export_released

    with console.status("exporting"):
        path = export_released(checkpoint, out, force=force)
    console.print(f"wrote released-format NLA to {path}")


@nla_app.command("baseline")
def baseline_command(
    checkpoint: Annotated[Path, typer.Argument(help="A local NLA directory (av/ + ar/).")],
    target: TargetOpt = DEFAULT_TARGET,
    texts: Annotated[
        Path | None, typer.Option(help="Reference JSON: [{text} | {messages}]; default: the bundled set.")
    ] = None,
) -> None:
    """Measure the FVE baseline B on reference activations and store it in the NLA's sidecars."""
    from nla.checkpoint import load_nla
    from nla.checkpoint.baseline import measure_baseline, store_baseline
    from nla.pipeline import load_target
    from nla.reference import load_reference_texts

    items = load_reference_texts(texts)
    with console.status("measuring the FVE baseline"):
        nla = load_nla(str(checkpoint))
        tgt = load_target(target)
        nla.check_target(tgt.model, target)
        value, count = measure_baseline(tgt, nla.meta.layer, nla.meta.mse_scale, items)
    store_baseline(checkpoint, value, count, f"{target}; {texts or 'bundled reference texts'}")
    console.print(
        f"B = {value:.4f} from {count} reference vectors at layer {nla.meta.layer}; stored in {checkpoint}"
    )
